package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

func maint(id string, enable bool, reason string) *registry.MaintenanceOp {
	return &registry.MaintenanceOp{Key: registry.Key{Service: "web", ID: "a"}, CheckID: id, Enable: enable,
		Name: "Service Maintenance Mode", Reason: reason}
}

func maintenanceCheck(id string, status registry.Health) func(*registry.Instance) {
	return func(in *registry.Instance) {
		in.Checks = append(in.Checks, registry.Check{ID: id, Type: registry.CheckMaintenance, Status: status})
	}
}

func TestMaintenanceOp(t *testing.T) {
	f := newFixture()
	if r := f.apply(t, maint("m", true, "x")); !errors.Is(r.Err, registry.ErrNotFound) {
		t.Fatalf("unknown instance: %v", r.Err)
	}
	f.register(t, inst(t, "web", "a", tcp("probe", "10.0.0.1:80")))
	f.setCheck(t, "web", "a", "probe", registry.Passing, "")
	if r := f.apply(t, maint("probe", true, "x")); !errors.Is(r.Err, registry.ErrConflict) {
		t.Fatalf("maintenance on a tcp check: %v", r.Err)
	}
	checksIdx, _ := f.st.Checks(registry.CheckTCP)
	watch, rel := f.st.Watch(registry.WatchChecks)
	defer rel()

	f.now = f.now.Add(time.Minute)
	enabledAt := f.now
	op := maint("m", true, "upgrading")
	op.At = f.now
	res := f.mustApply(t, op)
	in := f.get(t, "web", "a")
	c := in.Check("m")
	if c == nil || c.Type != registry.CheckMaintenance || c.Status != registry.Critical || c.Output != "upgrading" ||
		!c.CriticalSince.Equal(enabledAt) || c.Name != "Service Maintenance Mode" {
		t.Fatalf("maintenance check %+v", c)
	}
	if in.Health != registry.Critical || in.ModifyIndex != f.idx || res.Instance != in || serviceIndex(f.st, "web") != f.idx {
		t.Fatalf("instance health %s, modify %d, service index %d at %d", in.Health, in.ModifyIndex, serviceIndex(f.st, "web"), f.idx)
	}
	if _, sums := f.st.Services(); sums[0].Critical != 1 || sums[0].Passing != 0 {
		t.Errorf("summary %+v", sums[0])
	}
	// Enabling again changes nothing: the first reason stands.
	before := serviceIndex(f.st, "web")
	f.mustApply(t, maint("m", true, "another"))
	if got := f.get(t, "web", "a"); got != in || serviceIndex(f.st, "web") != before {
		t.Errorf("second enable changed the instance: %+v", got.Check("m"))
	}

	// The owner re-registers without naming it: kept, still critical since then.
	f.now = f.now.Add(time.Minute)
	f.register(t, inst(t, "web", "a", tags("v2"), tcp("probe", "10.0.0.1:80")))
	in = f.get(t, "web", "a")
	if c := in.Check("m"); c == nil || c.Status != registry.Critical || !c.CriticalSince.Equal(enabledAt) || c.Output != "upgrading" {
		t.Fatalf("re-registration dropped or changed the maintenance check: %+v", c)
	}
	if in.Health != registry.Critical || in.Check("probe").Status != registry.Passing {
		t.Errorf("health %s, probe %s", in.Health, in.Check("probe").Status)
	}
	// The same registration again is still a no-op.
	f.register(t, inst(t, "web", "a", tags("v2"), tcp("probe", "10.0.0.1:80")))
	if got := f.get(t, "web", "a"); got != in {
		t.Errorf("identical re-registration replaced the instance")
	}

	// Maintenance is not an active check: no prober sees it and the
	// check definitions never changed.
	if i, refs := f.st.Checks(registry.CheckTCP); i != checksIdx || closed(watch) || len(refs) != 1 {
		t.Errorf("checks index %d -> %d, WatchChecks woken %v, tcp refs %v", checksIdx, i, closed(watch), checkKeys(refs))
	}
	if _, refs := f.st.Checks(registry.CheckMaintenance); !reflect.DeepEqual(checkKeys(refs), []string{"web/a:m"}) {
		t.Errorf("Checks(maintenance) = %v", checkKeys(refs))
	}

	// Disabling removes it; disabling again changes nothing.
	f.mustApply(t, maint("m", false, ""))
	in = f.get(t, "web", "a")
	if in.Check("m") != nil || in.Health != registry.Passing || len(in.Checks) != 1 {
		t.Fatalf("after disable: %+v", in)
	}
	f.mustApply(t, maint("m", false, ""))
	if got := f.get(t, "web", "a"); got != in {
		t.Error("second disable changed the instance")
	}
}

func TestRegisterNamesMaintenanceCheck(t *testing.T) {
	f := newFixture()
	f.register(t, inst(t, "web", "a", maintenanceCheck("m", registry.Critical)))
	first := f.get(t, "web", "a").Check("m").CriticalSince
	if first.IsZero() || f.get(t, "web", "a").Health != registry.Critical {
		t.Fatalf("registered maintenance check: %+v", f.get(t, "web", "a").Check("m"))
	}
	// Named again, still critical: in maintenance since the first time.
	f.now = f.now.Add(time.Minute)
	f.register(t, inst(t, "web", "a", tags("x"), maintenanceCheck("m", registry.Critical)))
	if got := f.get(t, "web", "a").Check("m").CriticalSince; !got.Equal(first) {
		t.Errorf("critical since %v, want %v", got, first)
	}
	// Named passing: the registration lifts it (the native API's toggle).
	f.register(t, inst(t, "web", "a", tags("x"), maintenanceCheck("m", registry.Passing)))
	if in := f.get(t, "web", "a"); in.Health != registry.Passing || !in.Check("m").CriticalSince.IsZero() {
		t.Errorf("lifted: health %s, check %+v", in.Health, in.Check("m"))
	}
	// Once removed, a maintenance check is not carried over.
	f.mustApply(t, maint("m", false, ""))
	f.register(t, inst(t, "web", "a", tags("x")))
	if in := f.get(t, "web", "a"); len(in.Checks) != 0 {
		t.Errorf("checks %+v", in.Checks)
	}
}
