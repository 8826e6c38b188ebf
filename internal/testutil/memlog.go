package testutil

import (
	"context"
	"sync"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// MemLog is an in-process registry.Applier for tests: it encodes each op
// as the replicated log would and applies it to the store at the next
// index, one write at a time. The first write gets index 2, as with raft,
// whose index 1 is the bootstrap configuration.
type MemLog struct {
	st  *store.Store
	mu  sync.Mutex
	idx uint64
}

var _ registry.Applier = (*MemLog)(nil)

// NewMemLog returns a MemLog writing to st.
func NewMemLog(st *store.Store) *MemLog { return &MemLog{st: st, idx: 1} }

// Apply implements registry.Applier.
func (l *MemLog) Apply(ctx context.Context, op registry.Op) (registry.ApplyResult, error) {
	if err := ctx.Err(); err != nil {
		return registry.ApplyResult{}, err
	}
	b, err := store.Encode(op)
	if err != nil {
		return registry.ApplyResult{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.idx++
	r := l.st.ApplyBatch([]store.Entry{{Index: l.idx, Data: b}})[0]
	return r.Result, r.Err
}

// NewMemLogAt returns a MemLog writing to st whose first write gets index
// first, for tests that pin indexes as a new one-node raft log gives
// them: its own entries come first, and its first write gets index 4.
func NewMemLogAt(st *store.Store, first uint64) *MemLog {
	return &MemLog{st: st, idx: max(first, 1) - 1}
}

// NewRegistry returns a registry over a new in-memory store written
// through a MemLog, and the store.
func NewRegistry() (*registry.Service, *store.Store) {
	st := store.New()
	return registry.New(registry.Config{State: st, Log: NewMemLog(st)}), st
}
