package raftlog

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/rosterhq/roster/internal/registry"
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
		{fmt.Errorf("raftlog: gave up waiting: %w", context.DeadlineExceeded), registry.KindOutcomeUnknown},
		{fmt.Errorf("raftlog: gave up waiting: %w", context.Canceled), registry.KindOutcomeUnknown},
		{mapErr(raft.ErrEnqueueTimeout), registry.KindInternal},
	} {
		if got := registry.KindOf(inFlight(tc.err)); got != tc.want {
			t.Errorf("inFlight(%v) is %v, want %v", tc.err, got, tc.want)
		}
	}
}
