// Package store holds the registry's state: a go-memdb database of
// instances and derived service summaries, the encoding of registry ops as
// log entries, and the state machine that applies them. It implements
// registry.State for reads and, through Log, registry.Applier for writes.
//
// It does not know how entries are made durable or replicated (raftlog
// does), and it never calls out: after each applied batch it wakes the
// watchers of exactly the keys the batch touched.
package store

import (
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"

	"github.com/rosterhq/roster/internal/registry"
)

// Store is the registry state. Reads run concurrently with the one
// applier; every read sees a consistent snapshot.
type Store struct {
	db      atomic.Pointer[memdb.MemDB]
	hub     *hub
	pending pendingOps
}

var _ registry.State = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	s := &Store{hub: newHub()}
	s.db.Store(newDB())
	return s
}

func newDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		panic(fmt.Sprintf("store schema: %v", err)) // a programmer error
	}
	return db
}

func (s *Store) read() *memdb.Txn { return s.db.Load().Txn(false) }

// Instance implements registry.State.
func (s *Store) Instance(key registry.Key) (*registry.Instance, error) {
	raw, err := s.read().First(tableInstances, "id", key.Service, key.ID)
	if err != nil {
		return nil, fmt.Errorf("read instance: %w", err)
	}
	if raw == nil {
		return nil, registry.ErrNotFound
	}
	return raw.(*registry.Instance), nil
}

// Instances implements registry.State.
func (s *Store) Instances(service string) (uint64, []*registry.Instance) {
	txn := s.read()
	row := serviceOf(txn, service)
	if row == nil || row.Instances == 0 {
		if row == nil {
			return 0, nil
		}
		return row.ModifyIndex, nil
	}
	out := make([]*registry.Instance, 0, row.Instances)
	it, err := txn.Get(tableInstances, "id_prefix", service)
	if err != nil {
		panic(err) // only an unknown index errs
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*registry.Instance))
	}
	return row.ModifyIndex, out
}

// InstancesByRepo returns every instance whose Repo is repo, from an index.
func (s *Store) InstancesByRepo(repo string) []*registry.Instance {
	it, err := s.read().Get(tableInstances, "repo", repo)
	if err != nil {
		panic(err)
	}
	var out []*registry.Instance
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*registry.Instance))
	}
	return out
}

// Services implements registry.State.
func (s *Store) Services() (uint64, []registry.ServiceSummary) {
	txn := s.read()
	it, err := txn.Get(tableServices, "id")
	if err != nil {
		panic(err)
	}
	var out []registry.ServiceSummary
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if r := raw.(*serviceRow); r.Instances > 0 {
			out = append(out, r.ServiceSummary)
		}
	}
	return indexOf(txn, idxServices), out
}

// Checks implements registry.State. Active checks come from an index of
// the instances that have them; TTL checks from a scan of every instance:
// the lease table asks only at start and now and then, and an index would
// cost every registration a tree insert.
func (s *Store) Checks(typ registry.CheckType) (uint64, []registry.CheckRef) {
	txn := s.read()
	var (
		it  memdb.ResultIterator
		err error
	)
	if typ == registry.CheckTTL {
		it, err = txn.Get(tableInstances, "id")
	} else {
		it, err = txn.Get(tableInstances, "active", true)
	}
	if err != nil {
		panic(err)
	}
	var out []registry.CheckRef
	for raw := it.Next(); raw != nil; raw = it.Next() {
		in := raw.(*registry.Instance)
		for _, c := range in.Checks {
			if c.Type == typ {
				out = append(out, registry.CheckRef{Key: in.Key(), Check: c})
			}
		}
	}
	return indexOf(txn, idxChecks), out
}

// LastIndex implements registry.State.
func (s *Store) LastIndex() uint64 { return indexOf(s.read(), idxLast) }

// Watch implements registry.State.
func (s *Store) Watch(key string) (<-chan struct{}, func()) { return s.hub.Watch(key) }

// Stats are sizes for metrics.
type Stats struct {
	Instances, Services, Watchers int
}

// Stats counts instances and services; O(services).
func (s *Store) Stats() Stats {
	txn := s.read()
	it, err := txn.Get(tableServices, "id")
	if err != nil {
		panic(err)
	}
	var st Stats
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if r := raw.(*serviceRow); r.Instances > 0 {
			st.Services++
			st.Instances += r.Instances
		}
	}
	st.Watchers = s.hub.watchers()
	return st
}

func serviceOf(txn *memdb.Txn, name string) *serviceRow {
	raw, err := txn.First(tableServices, "id", name)
	if err != nil {
		panic(err)
	}
	if raw == nil {
		return nil
	}
	return raw.(*serviceRow)
}

func indexOf(txn *memdb.Txn, key string) uint64 {
	raw, err := txn.First(tableIndex, "id", key)
	if err != nil {
		panic(err)
	}
	if raw == nil {
		return 0
	}
	return raw.(*indexRow).Value
}
