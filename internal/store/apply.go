package store

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rosterhq/roster/internal/registry"
)

// Entry is one committed log entry handed to the state machine.
type Entry struct {
	Index uint64
	Data  []byte
}

// Response is the outcome of applying one entry.
type Response struct {
	Result registry.ApplyResult
	Err    error
}

// ApplyBatch applies committed entries in order, in one transaction, and
// then wakes the watchers of every key they touched. It is called by the
// log from one goroutine at a time. An entry that cannot be decoded is a
// divergence risk and panics (see Decode).
func (s *Store) ApplyBatch(entries []Entry) []Response {
	out := make([]Response, len(entries))
	if len(entries) == 0 {
		return out
	}
	txn := s.db.Load().Txn(true)
	a := applier{txn: txn, touched: map[string]struct{}{}}
	for i, e := range entries {
		op, err := s.opFor(e.Data)
		switch {
		case errors.Is(err, errUnknownIgnorable):
			continue
		case err != nil:
			txn.Abort()
			panic(fmt.Sprintf("store: cannot apply log entry %d: %v", e.Index, err))
		}
		out[i] = a.apply(e.Index, op)
	}
	a.setIndex(idxLast, entries[len(entries)-1].Index)
	txn.Commit()
	s.hub.notify(a.touched)
	return out
}

type applier struct {
	txn     *memdb.Txn
	touched map[string]struct{}
}

func (a *applier) apply(idx uint64, op registry.Op) Response {
	var res registry.ApplyResult
	var err error
	switch op := op.(type) {
	case *registry.RegisterOp:
		res, err = a.register(idx, op)
	case *registry.DeregisterOp:
		err = a.deregister(idx, op)
	case *registry.SetCheckOp:
		res, err = a.setCheck(idx, op)
	case *registry.ReindexOp:
		a.reindex(idx)
	}
	res.Index = idx
	return Response{Result: res, Err: err}
}

func (a *applier) instance(k registry.Key) *registry.Instance {
	raw, err := a.txn.First(tableInstances, "id", k.Service, k.ID)
	if err != nil {
		panic(err)
	}
	if raw == nil {
		return nil
	}
	return raw.(*registry.Instance)
}

func (a *applier) register(idx uint64, op *registry.RegisterOp) (registry.ApplyResult, error) {
	in := op.Instance
	old := a.instance(in.Key())
	for i := range in.Checks {
		c := &in.Checks[i]
		var prev *registry.Check
		if old != nil {
			prev = old.Check(c.ID)
		}
		switch {
		case c.Type == registry.CheckTTL:
			// A registration is a heartbeat; a new TTL check may start
			// in another status only when the caller said so.
			if prev != nil {
				c.Status, c.Output = registry.Passing, ""
			}
		case prev != nil && prev.Type == c.Type:
			c.Status, c.Output, c.CriticalSince = prev.Status, prev.Output, prev.CriticalSince
		}
		if c.Status == registry.Critical && c.CriticalSince.IsZero() {
			c.CriticalSince = op.At
		}
		if c.Status != registry.Critical {
			c.CriticalSince = time.Time{}
		}
	}
	in.ComputeHealth()
	if old != nil {
		in.CreateIndex, in.ModifyIndex = old.CreateIndex, old.ModifyIndex
		if reflect.DeepEqual(old, in) {
			return registry.ApplyResult{Instance: old}, nil // nothing changed
		}
	} else {
		in.CreateIndex = idx
	}
	in.ModifyIndex = idx
	if err := a.txn.Insert(tableInstances, in); err != nil {
		panic(err)
	}
	a.count(idx, in.Service, old, in)
	if old == nil || activeChecksDiffer(old, in) {
		a.setIndex(idxChecks, idx)
		a.touch(registry.WatchChecks)
	}
	return registry.ApplyResult{Instance: in, Created: old == nil}, nil
}

func (a *applier) deregister(idx uint64, op *registry.DeregisterOp) error {
	old := a.instance(op.Key)
	if old == nil {
		return fmt.Errorf("instance %s/%s: %w", op.Key.Service, op.Key.ID, registry.ErrNotFound)
	}
	if op.IfCritical != "" {
		if c := old.Check(op.IfCritical); c == nil || c.Status != registry.Critical {
			return fmt.Errorf("check %s is not critical: %w", op.IfCritical, registry.ErrConflict)
		}
	}
	if err := a.txn.Delete(tableInstances, old); err != nil {
		panic(err)
	}
	a.count(idx, old.Service, old, nil)
	if hasActive(old) {
		a.setIndex(idxChecks, idx)
		a.touch(registry.WatchChecks)
	}
	return nil
}

func (a *applier) setCheck(idx uint64, op *registry.SetCheckOp) (registry.ApplyResult, error) {
	old := a.instance(op.Key)
	if old == nil {
		return registry.ApplyResult{}, fmt.Errorf("instance %s/%s: %w", op.Key.Service, op.Key.ID, registry.ErrNotFound)
	}
	prev := old.Check(op.CheckID)
	if prev == nil {
		return registry.ApplyResult{}, fmt.Errorf("check %s of %s/%s: %w", op.CheckID, op.Key.Service, op.Key.ID, registry.ErrNotFound)
	}
	if prev.Status == op.Status && prev.Output == op.Output {
		return registry.ApplyResult{Instance: old}, nil
	}
	in := old.Clone()
	c := in.Check(op.CheckID)
	c.Status, c.Output = op.Status, op.Output
	switch {
	case op.Status != registry.Critical:
		c.CriticalSince = time.Time{}
	case prev.Status != registry.Critical:
		c.CriticalSince = op.At
	}
	in.ComputeHealth()
	in.ModifyIndex = idx
	if err := a.txn.Insert(tableInstances, in); err != nil {
		panic(err)
	}
	a.count(idx, in.Service, old, in)
	return registry.ApplyResult{Instance: in}, nil
}

// reindex moves every service row, tombstones included, to idx.
func (a *applier) reindex(idx uint64) {
	it, err := a.txn.Get(tableServices, "id")
	if err != nil {
		panic(err)
	}
	var rows []*serviceRow
	for raw := it.Next(); raw != nil; raw = it.Next() {
		rows = append(rows, raw.(*serviceRow))
	}
	for _, old := range rows {
		row := *old
		row.ModifyIndex = idx
		if err := a.txn.Insert(tableServices, &row); err != nil {
			panic(err)
		}
		a.touch(registry.WatchService(row.Name))
	}
	a.setIndex(idxServices, idx)
	a.setIndex(idxChecks, idx)
	a.touch(registry.WatchServices)
	a.touch(registry.WatchChecks)
}

// count moves the service row from old to in (either may be nil) and
// marks the service changed.
func (a *applier) count(idx uint64, service string, old, in *registry.Instance) {
	row := &serviceRow{}
	if prev := serviceOf(a.txn, service); prev != nil {
		*row = *prev
	} else {
		row.Name = service
	}
	if old != nil {
		row.Instances--
		bump(&row.ServiceSummary, old.Health, -1)
	}
	if in != nil {
		row.Instances++
		bump(&row.ServiceSummary, in.Health, +1)
	}
	row.ModifyIndex = idx
	if err := a.txn.Insert(tableServices, row); err != nil {
		panic(err)
	}
	a.setIndex(idxServices, idx)
	a.touch(registry.WatchService(service))
	a.touch(registry.WatchServices)
}

func bump(s *registry.ServiceSummary, h registry.Health, d int) {
	switch h {
	case registry.Passing:
		s.Passing += d
	case registry.Warning:
		s.Warning += d
	default:
		s.Critical += d
	}
}

func (a *applier) setIndex(key string, v uint64) {
	if err := a.txn.Insert(tableIndex, &indexRow{Key: key, Value: v}); err != nil {
		panic(err)
	}
}

func (a *applier) touch(key string) { a.touched[key] = struct{}{} }

func hasActive(in *registry.Instance) bool {
	ok, _ := hasActiveChecks(in)
	return ok
}

// activeChecksDiffer reports whether the definitions (not the statuses) of
// the active checks differ between two versions of an instance.
func activeChecksDiffer(a, b *registry.Instance) bool {
	defs := func(in *registry.Instance) []registry.Check {
		var out []registry.Check
		for _, c := range in.Checks {
			if c.Type != registry.CheckTTL {
				c.Status, c.Output, c.CriticalSince = "", "", time.Time{}
				out = append(out, c)
			}
		}
		return out
	}
	return a.Address != b.Address || !reflect.DeepEqual(defs(a), defs(b))
}
