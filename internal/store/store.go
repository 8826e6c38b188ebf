// Package store holds the registry's state: instances and derived service
// summaries in copy-on-write B-trees, the encoding of registry ops as log
// entries, and the state machine that applies them. It implements
// registry.State for reads and, through Log, registry.Applier for writes.
//
// Readers see only published views, which are never written once
// published: the applier works on its own trees and, after each batch,
// publishes lazy clones of them (a clone is O(1); the trees then share
// their nodes and each copies a node only when it writes it).
//
// It does not know how entries are made durable or replicated (raftlog
// does), and it never calls out: after each applied batch it wakes the
// watchers of exactly the keys the batch touched.
package store

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/btree"

	"github.com/rosterhq/roster/internal/registry"
)

// degree is the B-trees' minimum degree: nodes hold 15 to 31 items (the
// root fewer). After each publish the applier's first write to a node
// copies it, so the node size bounds what a write copies; 16 copies little
// while keeping the trees shallow (four levels hold ~100,000 instances).
const degree = 16

// Store is the registry state. Reads run concurrently with the one
// applier; every read sees a consistent snapshot.
type Store struct {
	cur atomic.Pointer[view] // published; never written
	// mu serializes the writers (ApplyBatch, Restore), which own w.
	mu      sync.Mutex
	w       *view
	hub     *hub
	pending pendingOps
	// intern is the writers' too: it makes repeated values share memory.
	intern *interner
}

var _ registry.State = (*Store)(nil)

// view is the whole state: the applier's, which it writes, or a published
// one, which nobody writes.
type view struct {
	// instances by (Service, ID).
	instances *btree.BTreeG[*registry.Instance]
	// active holds the keys of the instances that have an active (not
	// TTL) check. Keys rather than instances: it changes only when the set
	// does, not with every status change.
	active *btree.BTreeG[registry.Key]
	// repo holds the instances whose Repo is set, by (Repo, Service, ID).
	repo *btree.BTreeG[*registry.Instance]
	// services by Name, tombstones included.
	services *btree.BTreeG[*serviceRow]

	last        uint64 // last applied write
	servicesIdx uint64 // last change to any service
	checksIdx   uint64 // last change to check definitions
}

// serviceRow is one service's derived summary. A row whose Instances is 0
// is a tombstone: it keeps the service's index after its last instance is
// gone, so a watcher of the service sees the removal and a later
// re-creation moves the index forward, never back. Rows are immutable once
// in a tree: a change inserts a new row.
type serviceRow struct {
	registry.ServiceSummary
}

func newView() *view {
	return &view{
		instances: btree.NewG(degree, byKey),
		active:    btree.NewG(degree, keyLess),
		repo:      btree.NewG(degree, byRepo),
		services:  btree.NewG(degree, func(a, b *serviceRow) bool { return a.Name < b.Name }),
	}
}

// clone returns a copy of v in O(1). Clone writes to the tree it clones,
// so only the applier's view is ever cloned, never a published one.
func (v *view) clone() *view {
	c := *v
	c.instances = v.instances.Clone()
	c.active = v.active.Clone()
	c.repo = v.repo.Clone()
	c.services = v.services.Clone()
	return &c
}

func keyLess(a, b registry.Key) bool {
	if c := strings.Compare(a.Service, b.Service); c != 0 {
		return c < 0
	}
	return a.ID < b.ID
}

func byKey(a, b *registry.Instance) bool {
	if c := strings.Compare(a.Service, b.Service); c != 0 {
		return c < 0
	}
	return a.ID < b.ID
}

func byRepo(a, b *registry.Instance) bool {
	if c := strings.Compare(a.Repo, b.Repo); c != 0 {
		return c < 0
	}
	return byKey(a, b)
}

// pivots are search keys for the instance trees, reused so that a lookup
// does not allocate an Instance.
var pivots = sync.Pool{New: func() any { return new(registry.Instance) }}

func pivot(service, id, repo string) *registry.Instance {
	p := pivots.Get().(*registry.Instance)
	p.Service, p.ID, p.Repo = service, id, repo
	return p
}

func release(p *registry.Instance) {
	p.Service, p.ID, p.Repo = "", "", ""
	pivots.Put(p)
}

func (v *view) instance(k registry.Key) *registry.Instance {
	p := pivot(k.Service, k.ID, "")
	in, _ := v.instances.Get(p)
	release(p)
	return in
}

func (v *view) service(name string) *serviceRow {
	row, _ := v.services.Get(&serviceRow{registry.ServiceSummary{Name: name}})
	return row
}

// New returns an empty store.
func New() *Store {
	s := &Store{hub: newHub(), w: newView(), intern: newInterner()}
	s.cur.Store(s.w.clone())
	return s
}

func (s *Store) read() *view { return s.cur.Load() }

// Instance implements registry.State.
func (s *Store) Instance(key registry.Key) (*registry.Instance, error) {
	if in := s.read().instance(key); in != nil {
		return in, nil
	}
	return nil, registry.ErrNotFound
}

// Instances implements registry.State.
func (s *Store) Instances(service string) (uint64, []*registry.Instance) {
	v := s.read()
	row := v.service(service)
	if row == nil || row.Instances == 0 {
		if row == nil {
			return 0, nil
		}
		return row.ModifyIndex, nil
	}
	out := make([]*registry.Instance, 0, row.Instances)
	p := pivot(service, "", "")
	v.instances.AscendGreaterOrEqual(p, func(in *registry.Instance) bool {
		if in.Service != service {
			return false
		}
		out = append(out, in)
		return true
	})
	release(p)
	return row.ModifyIndex, out
}

// ServiceIndex implements registry.State.
func (s *Store) ServiceIndex(service string) uint64 {
	if row := s.read().service(service); row != nil {
		return row.ModifyIndex
	}
	return 0
}

// InstancesByRepo returns every instance whose Repo is repo, from an index.
func (s *Store) InstancesByRepo(repo string) []*registry.Instance {
	if repo == "" {
		return nil // not indexed
	}
	var out []*registry.Instance
	p := pivot("", "", repo)
	s.read().repo.AscendGreaterOrEqual(p, func(in *registry.Instance) bool {
		if in.Repo != repo {
			return false
		}
		out = append(out, in)
		return true
	})
	release(p)
	return out
}

// Services implements registry.State.
func (s *Store) Services() (uint64, []registry.ServiceSummary) {
	v := s.read()
	var out []registry.ServiceSummary
	v.services.Ascend(func(r *serviceRow) bool {
		if r.Instances > 0 {
			out = append(out, r.ServiceSummary)
		}
		return true
	})
	return v.servicesIdx, out
}

// Checks implements registry.State. Probed checks come from an index of
// the instances that have them; TTL and maintenance checks from a scan of
// every instance: the lease table asks only at start and now and then, and
// an index would cost every registration a tree insert.
func (s *Store) Checks(typ registry.CheckType) (uint64, []registry.CheckRef) {
	var out []registry.CheckRef
	idx := s.EachCheck(typ, func(k registry.Key, c *registry.Check) bool {
		out = append(out, registry.CheckRef{Key: k, Check: *c})
		return true
	})
	return idx, out
}

// EachCheck implements registry.State. Probed types come from the index
// of instances with active checks; others scan every instance.
func (s *Store) EachCheck(typ registry.CheckType, fn func(registry.Key, *registry.Check) bool) uint64 {
	v := s.read()
	visit := func(in *registry.Instance) bool {
		for i := range in.Checks {
			if c := &in.Checks[i]; c.Type == typ && !fn(in.Key(), c) {
				return false
			}
		}
		return true
	}
	if !typ.Probed() {
		v.instances.Ascend(visit)
	} else {
		v.active.Ascend(func(k registry.Key) bool { return visit(v.instance(k)) })
	}
	return v.checksIdx
}

// LastIndex implements registry.State.
func (s *Store) LastIndex() uint64 { return s.read().last }

// Watch implements registry.State.
func (s *Store) Watch(key string) (<-chan struct{}, func()) { return s.hub.Watch(key) }

// Stats are sizes for metrics.
type Stats struct {
	Instances, Services, Watchers int
}

// Stats counts instances and services; O(services).
func (s *Store) Stats() Stats {
	var st Stats
	s.read().services.Ascend(func(r *serviceRow) bool {
		if r.Instances > 0 {
			st.Services++
			st.Instances += r.Instances
		}
		return true
	})
	st.Watchers = s.hub.watchers()
	return st
}
