package store

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

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

// ApplyBatch applies committed entries in order, as one change, and then
// wakes the watchers of every key they touched. It is called by the log
// from one goroutine at a time. An entry that cannot be decoded is a
// divergence risk and panics (see Decode); nothing of its batch is applied.
func (s *Store) ApplyBatch(entries []Entry) []Response {
	out := make([]Response, len(entries))
	if len(entries) == 0 {
		return out
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The batch writes a clone, so that a panic leaves s.w as it was.
	a := applier{v: s.w.clone(), touched: map[string]struct{}{}, intern: s.intern}
	for i, e := range entries {
		op, err := s.opFor(e.Data)
		switch {
		case errors.Is(err, errUnknownIgnorable):
			continue
		case err != nil:
			panic(fmt.Sprintf("store: cannot apply log entry %d: %v", e.Index, err))
		}
		out[i] = a.apply(e.Index, op)
	}
	a.v.last = entries[len(entries)-1].Index
	s.w = a.v
	s.cur.Store(a.v.clone())
	s.hub.notify(a.touched)
	return out
}

type applier struct {
	v       *view // the applier's own, not yet published
	touched map[string]struct{}
	intern  *interner
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
	case *registry.MaintenanceOp:
		res, err = a.maintenance(idx, op)
	}
	res.Index = idx
	return Response{Result: res, Err: err}
}

func (a *applier) instance(k registry.Key) *registry.Instance { return a.v.instance(k) }

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
		case c.Type == registry.CheckMaintenance:
			// Named: the registration sets it. Still in maintenance
			// since the same moment.
			if prev != nil && prev.Type == c.Type && prev.Status == c.Status {
				c.CriticalSince = prev.CriticalSince
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
	if old != nil {
		keepMaintenance(in, old)
	}
	in.ComputeHealth()
	a.intern.instance(in)
	if old != nil {
		in.CreateIndex, in.ModifyIndex = old.CreateIndex, old.ModifyIndex
		if reflect.DeepEqual(old, in) {
			return registry.ApplyResult{Instance: old}, nil // nothing changed
		}
	} else {
		in.CreateIndex = idx
	}
	in.ModifyIndex = idx
	a.v.put(old, in)
	a.count(idx, in.Service, old, in)
	if old == nil || activeChecksDiffer(old, in) {
		a.v.checksIdx = idx
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
	a.v.remove(old)
	a.count(idx, old.Service, old, nil)
	if hasActive(old) {
		a.v.checksIdx = idx
		a.touch(registry.WatchChecks)
	}
	return nil
}

// keepMaintenance appends to in the maintenance checks of old that in does
// not name: only an operator lifts maintenance.
func keepMaintenance(in, old *registry.Instance) {
	for _, c := range old.Checks {
		if c.Type == registry.CheckMaintenance && in.Check(c.ID) == nil {
			in.Checks = append(in.Checks, c)
		}
	}
}

// maintenance adds, turns critical or removes a maintenance check (see
// registry.MaintenanceOp). Maintenance checks are not active checks: the
// check definitions key is not touched.
func (a *applier) maintenance(idx uint64, op *registry.MaintenanceOp) (registry.ApplyResult, error) {
	old := a.instance(op.Key)
	if old == nil {
		return registry.ApplyResult{}, fmt.Errorf("instance %s/%s: %w", op.Key.Service, op.Key.ID, registry.ErrNotFound)
	}
	prev := old.Check(op.CheckID)
	if prev != nil && prev.Type != registry.CheckMaintenance {
		return registry.ApplyResult{}, fmt.Errorf("check %s of %s/%s is not a maintenance check: %w", op.CheckID, op.Key.Service, op.Key.ID, registry.ErrConflict)
	}
	var checks []registry.Check
	switch {
	case op.Enable && prev != nil && prev.Status == registry.Critical, !op.Enable && prev == nil:
		return registry.ApplyResult{Instance: old}, nil // nothing to change
	case op.Enable && prev != nil:
		checks = slices.Clone(old.Checks)
		for i := range checks {
			if checks[i].ID == op.CheckID {
				checks[i].Status, checks[i].Output, checks[i].CriticalSince = registry.Critical, strings.Clone(op.Reason), op.At
			}
		}
	case op.Enable:
		checks = append(slices.Clone(old.Checks), registry.Check{
			ID: strings.Clone(op.CheckID), Name: op.Name, Type: registry.CheckMaintenance,
			Status: registry.Critical, Output: strings.Clone(op.Reason), CriticalSince: op.At,
		})
	default:
		checks = slices.DeleteFunc(slices.Clone(old.Checks), func(c registry.Check) bool { return c.ID == op.CheckID })
	}
	// Only the checks change; tags and metadata stay shared with old.
	cp := *old
	in := &cp
	in.Checks = checks
	if len(in.Checks) == 0 {
		in.Checks = nil
	}
	for i := range in.Checks {
		c := &in.Checks[i]
		c.ID, c.Name, c.Type, c.Status = str(c.ID), str(c.Name), registry.CheckType(str(string(c.Type))), registry.Health(str(string(c.Status)))
	}
	in.ComputeHealth()
	in.ModifyIndex = idx
	a.v.put(old, in)
	a.count(idx, in.Service, old, in)
	return registry.ApplyResult{Instance: in}, nil
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
	// Only the checks change; tags and metadata stay shared with old.
	cp := *old
	in := &cp
	in.Checks = slices.Clone(old.Checks)
	c := in.Check(op.CheckID)
	c.Status, c.Output = registry.Health(str(string(op.Status))), op.Output
	switch {
	case op.Status != registry.Critical:
		c.CriticalSince = time.Time{}
	case prev.Status != registry.Critical:
		c.CriticalSince = op.At
	}
	in.ComputeHealth()
	in.ModifyIndex = idx
	a.v.put(old, in)
	a.count(idx, in.Service, old, in)
	return registry.ApplyResult{Instance: in}, nil
}

// reindex moves every service row, tombstones included, to idx.
func (a *applier) reindex(idx uint64) {
	// Collect first: a tree must not change while it is iterated.
	rows := make([]*serviceRow, 0, a.v.services.Len())
	a.v.services.Ascend(func(r *serviceRow) bool {
		rows = append(rows, r)
		return true
	})
	for _, old := range rows {
		row := *old
		row.ModifyIndex = idx
		a.v.services.ReplaceOrInsert(&row)
		a.touch(registry.WatchService(row.Name))
	}
	a.v.servicesIdx = idx
	a.v.checksIdx = idx
	a.touch(registry.WatchServices)
	a.touch(registry.WatchChecks)
}

// count moves the service row from old to in (either may be nil) and
// marks the service changed.
func (a *applier) count(idx uint64, service string, old, in *registry.Instance) {
	row := &serviceRow{}
	if prev := a.v.service(service); prev != nil {
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
	a.v.services.ReplaceOrInsert(row)
	a.v.servicesIdx = idx
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

func (a *applier) touch(key string) { a.touched[key] = struct{}{} }

// put stores in, the new version of old (nil when there was none), and
// keeps the indexes in step.
func (v *view) put(old, in *registry.Instance) {
	v.instances.ReplaceOrInsert(in)
	if old != nil && old.Repo != "" && old.Repo != in.Repo {
		v.repo.Delete(old)
	}
	if in.Repo != "" {
		v.repo.ReplaceOrInsert(in)
	}
	switch was, is := old != nil && hasActive(old), hasActive(in); {
	case is && !was:
		v.active.ReplaceOrInsert(in.Key())
	case was && !is:
		v.active.Delete(old.Key())
	}
}

// remove deletes in and its index entries.
func (v *view) remove(in *registry.Instance) {
	v.instances.Delete(in)
	if in.Repo != "" {
		v.repo.Delete(in)
	}
	if hasActive(in) {
		v.active.Delete(in.Key())
	}
}

// hasActive reports whether in has an active (probed) check.
func hasActive(in *registry.Instance) bool {
	for _, c := range in.Checks {
		if c.Type.Probed() {
			return true
		}
	}
	return false
}

// activeChecksDiffer reports whether the definitions (not the statuses) of
// the active checks differ between two versions of an instance.
func activeChecksDiffer(a, b *registry.Instance) bool {
	defs := func(in *registry.Instance) []registry.Check {
		var out []registry.Check
		for _, c := range in.Checks {
			if c.Type.Probed() {
				c.Status, c.Output, c.CriticalSince = "", "", time.Time{}
				out = append(out, c)
			}
		}
		return out
	}
	return a.Address != b.Address || !reflect.DeepEqual(defs(a), defs(b))
}
