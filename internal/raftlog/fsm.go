package raftlog

import (
	"fmt"
	"io"
	"runtime/debug"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/rosterhq/roster/internal/store"
)

// fsm adapts the store to raft's BatchingFSM. raft calls Apply/ApplyBatch
// and Restore from its FSM goroutine, one call at a time, and Snapshot
// from the same goroutine; Persist runs later on another goroutine while
// applies continue, which is safe because a store snapshot is immutable.
type fsm struct {
	st *store.Store

	// applied is closed (and cleared) after each batch or restore, when
	// someone waits for the store to reach an index (see Node.WaitApplied).
	mu      sync.Mutex
	applied chan struct{}
}

// changed returns a channel closed at the next batch or restore. Take it
// before reading the store's index, so no batch slips between.
func (f *fsm) changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applied == nil {
		f.applied = make(chan struct{})
	}
	return f.applied
}

func (f *fsm) notify() {
	f.mu.Lock()
	if f.applied != nil {
		close(f.applied)
		f.applied = nil
	}
	f.mu.Unlock()
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	entries := make([]store.Entry, 0, len(logs))
	pos := make([]int, 0, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			if err := verifyEntry(l); err != nil {
				// Applying it, or skipping it, would serve a state that
				// no other replica has: stop. Open checks the log on
				// disk at start, so this is corruption since then, or
				// in transit.
				panic(fmt.Sprintf("raftlog: refusing to apply a corrupt entry: %v", err))
			}
			entries = append(entries, store.Entry{Index: l.Index, Data: l.Data})
			pos = append(pos, i)
		}
	}
	for i, r := range f.st.ApplyBatch(entries) {
		out[pos[i]] = r
	}
	f.notify()
	return out
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{sn: f.st.Snapshot()}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	defer f.notify()
	if err := f.st.Restore(rc); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	// Reading a snapshot leaves garbage the size of the registry; give
	// it back now rather than holding twice the memory until the runtime
	// gets round to it. Restores are rare (start-up, an operator's restore).
	debug.FreeOSMemory()
	return nil
}

type fsmSnapshot struct{ sn *store.Snapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.sn.Persist(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
