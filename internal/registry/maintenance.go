package registry

import (
	"context"
	"fmt"
)

// Maintenance describes an operator's maintenance check of one instance.
type Maintenance struct {
	// CheckID is the maintenance check's ID (a valid ID, see ValidID).
	CheckID string
	// Name is the check's name when it is added.
	Name string
	// Reason is the check's output while the instance is in maintenance.
	Reason string
}

// EnableMaintenance puts an instance into maintenance: its maintenance
// check m.CheckID is added, critical, with m.Reason as output, so the
// instance leaves every passing answer until DisableMaintenance. No lease
// or prober touches the check, and re-registrations keep it (see
// RegisterOp). Enabling an instance already in maintenance under that
// check writes nothing. It returns ErrNotFound for an unknown instance,
// ErrConflict when m.CheckID names a check of another type, and a
// *ValidationError for a bad ID or name or a fifth maintenance check.
func (s *Service) EnableMaintenance(ctx context.Context, key Key, m Maintenance) (ApplyResult, error) {
	if err := s.checkReady(); err != nil {
		return ApplyResult{}, err
	}
	v := &ValidationError{}
	if !ValidID(m.CheckID) {
		v.Add("check_id", "must be 1-128 characters from letters, digits and -_.:@+~")
	}
	if !validText(m.Name, MaxTextLen) {
		v.Add("name", "too long or not printable")
	}
	if err := v.Err(); err != nil {
		return ApplyResult{}, err
	}
	key = normKey(key)
	in, err := s.known(ctx, key)
	if err != nil {
		return ApplyResult{}, err
	}
	c, err := maintenanceCheck(in, m.CheckID)
	switch {
	case err != nil:
		return ApplyResult{}, err
	case c != nil && c.Status == Critical:
		return ApplyResult{Index: in.ModifyIndex, Instance: in}, nil
	case c == nil && countMaintenance(in) >= MaxMaintenanceChecks:
		v.Add("check_id", fmt.Sprintf("at most %d maintenance checks", MaxMaintenanceChecks))
		return ApplyResult{}, v
	}
	return s.log.Apply(ctx, &MaintenanceOp{Key: key, CheckID: m.CheckID, Enable: true, Name: m.Name,
		Reason: CleanOutput(m.Reason), At: s.now().UTC()})
}

// DisableMaintenance takes an instance out of maintenance by removing its
// maintenance check checkID. An instance without that check is not in
// maintenance: nothing is written. Errors as for EnableMaintenance.
func (s *Service) DisableMaintenance(ctx context.Context, key Key, checkID string) (ApplyResult, error) {
	if err := s.checkReady(); err != nil {
		return ApplyResult{}, err
	}
	key = normKey(key)
	in, err := s.known(ctx, key)
	if err != nil {
		return ApplyResult{}, err
	}
	c, err := maintenanceCheck(in, checkID)
	if err != nil {
		return ApplyResult{}, err
	}
	if c == nil {
		return ApplyResult{Index: in.ModifyIndex, Instance: in}, nil
	}
	return s.log.Apply(ctx, &MaintenanceOp{Key: key, CheckID: checkID, At: s.now().UTC()})
}

// maintenanceCheck returns in's check id: nil when absent, ErrConflict
// when it is not a maintenance check.
func maintenanceCheck(in *Instance, id string) (*Check, error) {
	c := in.Check(id)
	if c != nil && c.Type != CheckMaintenance {
		return nil, fmt.Errorf("check %s of %s/%s is a %s check, not a maintenance check: %w", id, in.Service, in.ID, c.Type, ErrConflict)
	}
	return c, nil
}

func countMaintenance(in *Instance) int {
	n := 0
	for i := range in.Checks {
		if in.Checks[i].Type == CheckMaintenance {
			n++
		}
	}
	return n
}
