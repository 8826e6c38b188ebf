package registry

import (
	"context"
	"fmt"
)

// UpdateTTL reports on an instance's TTL check from outside, the way
// Consul's agent/check/pass|warn|fail|update do: it renews the lease as a
// heartbeat does and sets the check's status and output. Like a heartbeat
// it writes to the log only when the status or the output changes, so a
// client repeating the same report costs one read. It returns ErrNotFound
// when the instance or the check does not exist and ErrNoTTL when checkID
// names a check that is not a TTL check.
func (s *Service) UpdateTTL(ctx context.Context, key Key, checkID string, status Health, output string) error {
	if err := s.checkReady(); err != nil {
		return err
	}
	if !status.Valid() {
		v := &ValidationError{}
		v.Add("status", "must be passing, warning or critical")
		return v
	}
	key = normKey(key)
	in, err := s.known(ctx, key)
	if err != nil {
		return err
	}
	c := in.Check(checkID)
	if c == nil {
		return fmt.Errorf("check %s of %s/%s: %w", checkID, key.Service, key.ID, ErrNotFound)
	}
	if c.Type != CheckTTL {
		return fmt.Errorf("check %s of %s/%s: %w", checkID, key.Service, key.ID, ErrNoTTL)
	}
	if s.leases != nil {
		s.leases.Renew(key, *c)
	}
	output = CleanOutput(output)
	if c.Status == status && c.Output == output {
		return nil
	}
	_, err = s.log.Apply(ctx, &SetCheckOp{Key: key, CheckID: checkID, Status: status, Output: output, At: s.now().UTC()})
	return err
}
