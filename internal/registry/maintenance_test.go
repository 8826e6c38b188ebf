package registry_test

import (
	"errors"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/testutil"
)

func TestMaintenance(t *testing.T) {
	key := registry.Key{Service: "web", ID: "a"}
	m := registry.Maintenance{CheckID: "_service_maintenance:a", Name: "Service Maintenance Mode", Reason: "upgrading"}
	withHTTP := func(in *registry.Instance) {
		in.Checks = append(in.Checks, registry.Check{ID: "probe", Type: registry.CheckHTTP, Target: "http://10.0.0.1/health"})
	}
	type step struct {
		enable    bool
		m         registry.Maintenance
		wantErr   error
		wantWrite bool
		// wantHealth and wantCheck describe the instance afterwards.
		wantHealth registry.Health
		wantCheck  bool
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, h *harness)
		steps []step
	}{
		{name: "unknown instance", steps: []step{
			{enable: true, m: m, wantErr: registry.ErrNotFound},
			{enable: false, m: m, wantErr: registry.ErrNotFound},
		}},
		{name: "enable, again, disable, again", setup: func(t *testing.T, h *harness) { h.register(t, "web", "a", withTTL(time.Minute)) }, steps: []step{
			{enable: true, m: m, wantWrite: true, wantHealth: registry.Critical, wantCheck: true},
			{enable: true, m: registry.Maintenance{CheckID: m.CheckID, Reason: "another"}, wantHealth: registry.Critical, wantCheck: true},
			{enable: false, m: m, wantWrite: true, wantHealth: registry.Passing},
			{enable: false, m: m, wantHealth: registry.Passing},
		}},
		{name: "disable without maintenance writes nothing", setup: func(t *testing.T, h *harness) { h.register(t, "web", "a") }, steps: []step{
			{enable: false, m: m, wantHealth: registry.Passing},
		}},
		{name: "another check's id is a conflict", setup: func(t *testing.T, h *harness) { h.register(t, "web", "a", withHTTP) }, steps: []step{
			{enable: true, m: registry.Maintenance{CheckID: "probe"}, wantErr: registry.ErrConflict},
			{enable: false, m: registry.Maintenance{CheckID: "probe"}, wantErr: registry.ErrConflict},
		}},
		{name: "bad check id", setup: func(t *testing.T, h *harness) { h.register(t, "web", "a") }, steps: []step{
			{enable: true, m: registry.Maintenance{CheckID: "no spaces"}, wantErr: &registry.ValidationError{}},
		}},
		{name: "a registered passing maintenance check turns critical", setup: func(t *testing.T, h *harness) {
			h.register(t, "web", "a", func(in *registry.Instance) {
				in.Checks = append(in.Checks, registry.Check{ID: m.CheckID, Type: registry.CheckMaintenance, Status: registry.Passing})
			})
		}, steps: []step{
			{enable: true, m: m, wantWrite: true, wantHealth: registry.Critical, wantCheck: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testutil.Context(t, 30*time.Second)
			h := newHarness(t)
			if tc.setup != nil {
				tc.setup(t, h)
			}
			for i, s := range tc.steps {
				before := h.st.LastIndex()
				var err error
				if s.enable {
					_, err = h.svc.EnableMaintenance(ctx, key, s.m)
				} else {
					_, err = h.svc.DisableMaintenance(ctx, key, s.m.CheckID)
				}
				var verr *registry.ValidationError
				switch want := s.wantErr.(type) {
				case nil:
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				case *registry.ValidationError:
					if !errors.As(err, &verr) {
						t.Fatalf("step %d: %v, want a validation error", i, err)
					}
				default:
					if !errors.Is(err, want) {
						t.Fatalf("step %d: %v, want %v", i, err, want)
					}
				}
				if writes := h.st.LastIndex() - before; s.wantWrite != (writes == 1) || writes > 1 {
					t.Errorf("step %d: %d writes, want write %v", i, writes, s.wantWrite)
				}
				if s.wantErr != nil {
					continue
				}
				in, err := h.svc.Get(key)
				if err != nil {
					t.Fatal(err)
				}
				if in.Health != s.wantHealth {
					t.Errorf("step %d: health %s, want %s", i, in.Health, s.wantHealth)
				}
				c := in.Check(m.CheckID)
				if (c != nil) != s.wantCheck {
					t.Fatalf("step %d: maintenance check %+v, want present %v", i, c, s.wantCheck)
				}
				if c != nil && (c.Type != registry.CheckMaintenance || c.Status != registry.Critical || c.CriticalSince.IsZero()) {
					t.Errorf("step %d: maintenance check %+v", i, c)
				}
			}
		})
	}
}

// TestMaintenanceSurvivesRegistration: the owner re-registering (without
// naming the check) does not lift an operator's maintenance; naming it
// sets it.
func TestMaintenanceSurvivesRegistration(t *testing.T) {
	ctx := testutil.Context(t, 30*time.Second)
	h := newHarness(t)
	key := registry.Key{Service: "web", ID: "a"}
	h.register(t, "web", "a", withTTL(time.Minute))
	if _, err := h.svc.EnableMaintenance(ctx, key, registry.Maintenance{CheckID: "maint", Name: "Maintenance", Reason: "disk swap"}); err != nil {
		t.Fatal(err)
	}
	res := h.register(t, "web", "a", withTTL(time.Minute), withTags("v2"))
	c := res.Instance.Check("maint")
	if c == nil || c.Status != registry.Critical || c.Output != "disk swap" || res.Instance.Health != registry.Critical {
		t.Fatalf("after re-registration: check %+v, health %s", c, res.Instance.Health)
	}
	pass, err := h.svc.Instances(ctx, registry.Query{Service: "web", Health: registry.PassingOnly}, 0, 0)
	if err != nil || len(pass.Instances) != 0 {
		t.Fatalf("passing instances %v, %v; want none", ids(pass.Instances), err)
	}
	res = h.register(t, "web", "a", withTTL(time.Minute), func(in *registry.Instance) {
		in.Checks = append(in.Checks, registry.Check{ID: "maint", Type: registry.CheckMaintenance, Status: registry.Passing})
	})
	if res.Instance.Health != registry.Passing {
		t.Fatalf("registered passing: health %s", res.Instance.Health)
	}
}
