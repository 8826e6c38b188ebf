package registry_test

import (
	"errors"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/testutil"
)

func TestUpdateTTL(t *testing.T) {
	key := registry.Key{Service: "web", ID: "a"}
	withHTTP := func(in *registry.Instance) {
		in.Checks = append(in.Checks, registry.Check{ID: "probe", Type: registry.CheckHTTP, Target: "http://10.0.0.1/health"})
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, h *harness)
		key     registry.Key
		checkID string
		status  registry.Health
		output  string
		// calls repeats the same update; only the first may write.
		calls     int
		wantErr   error
		wantWrite bool
		wantRenew bool
	}{
		{name: "unknown instance", key: key, checkID: "ttl", status: registry.Passing, calls: 1, wantErr: registry.ErrNotFound},
		{name: "unknown check", setup: func(t *testing.T, h *harness) { h.register(t, "web", "a", withTTL(time.Minute)) },
			key: key, checkID: "nope", status: registry.Passing, calls: 1, wantErr: registry.ErrNotFound},
		{name: "active check has no ttl", setup: func(t *testing.T, h *harness) { h.register(t, "web", "a", withHTTP) },
			key: key, checkID: "probe", status: registry.Passing, calls: 1, wantErr: registry.ErrNoTTL},
		{name: "same status renews without a write", setup: func(t *testing.T, h *harness) { h.register(t, "web", "a", withTTL(time.Minute)) },
			key: registry.Key{Service: "Web", ID: "a"}, checkID: "ttl", status: registry.Passing, calls: 3, wantRenew: true},
		{name: "warning writes once", setup: func(t *testing.T, h *harness) { h.register(t, "web", "a", withTTL(time.Minute)) },
			key: key, checkID: "ttl", status: registry.Warning, output: "slow", calls: 3, wantRenew: true, wantWrite: true},
		{name: "new output writes", setup: func(t *testing.T, h *harness) { h.register(t, "web", "a", withTTL(time.Minute)) },
			key: key, checkID: "ttl", status: registry.Passing, output: "all good", calls: 2, wantRenew: true, wantWrite: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testutil.Context(t, 30*time.Second)
			h := newHarness(t)
			if tc.setup != nil {
				tc.setup(t, h)
			}
			renewed0, _ := h.leases.counts()
			before := h.st.LastIndex()
			for i := range tc.calls {
				err := h.svc.UpdateTTL(ctx, tc.key, tc.checkID, tc.status, tc.output)
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Fatalf("UpdateTTL #%d = %v, want %v", i, err, tc.wantErr)
				}
			}
			writes := h.st.LastIndex() - before
			if tc.wantWrite && writes != 1 || !tc.wantWrite && writes != 0 {
				t.Errorf("log writes: %d, want write %v (at most one)", writes, tc.wantWrite)
			}
			if renewed, _ := h.leases.counts(); (renewed-renewed0 == tc.calls) != tc.wantRenew {
				t.Errorf("lease renewals: %d of %d calls, want renewed %v", renewed-renewed0, tc.calls, tc.wantRenew)
			}
			if tc.wantErr == nil {
				in, err := h.svc.Get(tc.key)
				if err != nil {
					t.Fatal(err)
				}
				if c := in.Check(tc.checkID); c.Status != tc.status || c.Output != tc.output || in.Health != tc.status {
					t.Errorf("check %q %q, health %q; want %q %q", c.Status, c.Output, in.Health, tc.status, tc.output)
				}
			}
		})
	}
}

func TestUpdateTTLInvalidStatus(t *testing.T) {
	h := newHarness(t)
	h.register(t, "web", "a", withTTL(time.Minute))
	var verr *registry.ValidationError
	if err := h.svc.UpdateTTL(t.Context(), registry.Key{Service: "web", ID: "a"}, "ttl", "maintenance", ""); !errors.As(err, &verr) {
		t.Fatalf("UpdateTTL(maintenance) = %v, want a ValidationError", err)
	}
}
