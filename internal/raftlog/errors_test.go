package raftlog

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// TestInFlightKinds: an entry raft refused before appending is a definite
// failure; one that may be in the log is of unknown outcome, whatever
// else it is.
func TestInFlightKinds(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want registry.Kind
	}{
		{mapErr(raft.ErrNotLeader), registry.KindNotLeader},
		{mapErr(raft.ErrLeadershipTransferInProgress), registry.KindNotLeader},
		{mapErr(raft.ErrLeadershipLost), registry.KindOutcomeUnknown},
		{mapErr(raft.ErrRaftShutdown), registry.KindOutcomeUnknown},
		{errClosed, registry.KindOutcomeUnknown},
		{raft.ErrAbortedByRestore, registry.KindOutcomeUnknown},
		{fmt.Errorf("raftlog: gave up waiting: %w", context.DeadlineExceeded), registry.KindOutcomeUnknown},
		{fmt.Errorf("raftlog: gave up waiting: %w", context.Canceled), registry.KindOutcomeUnknown},
		{mapErr(raft.ErrEnqueueTimeout), registry.KindInternal},
	} {
		if got := registry.KindOf(inFlight(tc.err)); got != tc.want {
			t.Errorf("inFlight(%v) is %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestLastCommand: the read index is the last command at or before the
// commit index: no-ops, barriers and configuration entries never reach
// the store, so an index of theirs could never be waited for.
func TestLastCommand(t *testing.T) {
	logs := raft.NewInmemStore()
	types := []raft.LogType{raft.LogConfiguration, raft.LogNoop, raft.LogCommand, raft.LogCommand, raft.LogNoop, raft.LogBarrier, raft.LogConfiguration}
	for i, typ := range types {
		if err := logs.StoreLog(&raft.Log{Index: uint64(i + 1), Term: 1, Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	n := &Node{entries: logs, fsm: &fsm{st: store.New()}}
	for _, tc := range []struct{ commit, want uint64 }{
		{0, 0}, {1, 0}, {2, 0}, {3, 3}, {4, 4}, {5, 4}, {6, 4}, {7, 4},
	} {
		got, err := n.lastCommand(tc.commit)
		if err != nil || got != tc.want {
			t.Errorf("lastCommand(%d) = %d, %v; want %d", tc.commit, got, err, tc.want)
		}
	}
	// Compacted below the first entry: the store's index, which holds
	// the snapshot (a follower must reach it, not wait for nothing).
	if err := logs.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	if got, err := n.lastCommand(7); err != nil || got != n.fsm.st.LastIndex() {
		t.Errorf("after compaction lastCommand(7) = %d, %v; want the store's %d", got, err, n.fsm.st.LastIndex())
	}
}
