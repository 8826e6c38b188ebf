package store_test

import (
	"bytes"
	"testing"

	"github.com/rosterhq/roster/internal/registry"
)

// After a restore brings back older indexes, a ReindexOp moves every
// service (tombstones too) past every index a watcher could hold, and
// wakes them.
func TestReindexAfterRestore(t *testing.T) {
	f := newFixture()
	f.mustApply(t, &registry.RegisterOp{Instance: inst(t, "web", "a"), At: f.now})
	f.mustApply(t, &registry.RegisterOp{Instance: inst(t, "gone", "a"), At: f.now})
	f.mustApply(t, &registry.DeregisterOp{Key: registry.Key{Service: "gone", ID: "a"}})
	var snap bytes.Buffer
	if err := f.st.Snapshot().Persist(&snap); err != nil {
		t.Fatal(err)
	}
	// Later writes a watcher sees, then the restore takes them back.
	for _, id := range []string{"b", "c", "d"} {
		f.mustApply(t, &registry.RegisterOp{Instance: inst(t, "web", id), At: f.now})
	}
	seen, _ := f.st.Instances("web")
	if err := f.st.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	if idx, _ := f.st.Instances("web"); idx >= seen {
		t.Fatalf("test premise: restored index %d should be below %d", idx, seen)
	}
	web, release := f.st.Watch(registry.WatchService("web"))
	defer release()
	gone, release2 := f.st.Watch(registry.WatchService("gone"))
	defer release2()

	res := f.mustApply(t, &registry.ReindexOp{})
	for _, svc := range []string{"web", "gone"} {
		if idx, _ := f.st.Instances(svc); idx != res.Index || idx <= seen {
			t.Errorf("%s index %d after reindex at %d (watcher held %d)", svc, idx, res.Index, seen)
		}
	}
	for name, ch := range map[string]<-chan struct{}{"web": web, "gone": gone} {
		select {
		case <-ch:
		default:
			t.Errorf("watcher of %s not woken", name)
		}
	}
	if idx, svcs := f.st.Services(); idx != res.Index || len(svcs) != 1 {
		t.Errorf("services index %d (want %d), %d services (want 1: tombstones stay hidden)", idx, res.Index, len(svcs))
	}
}

// ServiceIndex is the index Instances reports, without the list: for an
// absent service, a live one and a tombstone.
func TestServiceIndexMatchesInstances(t *testing.T) {
	f := newFixture()
	check := func(svc string) {
		t.Helper()
		want, _ := f.st.Instances(svc)
		if got := f.st.ServiceIndex(svc); got != want {
			t.Errorf("ServiceIndex(%q) = %d, Instances says %d", svc, got, want)
		}
	}
	check("web")
	f.mustApply(t, &registry.RegisterOp{Instance: inst(t, "web", "a"), At: f.now})
	f.mustApply(t, &registry.RegisterOp{Instance: inst(t, "webapp", "a"), At: f.now})
	check("web")
	f.mustApply(t, &registry.DeregisterOp{Key: registry.Key{Service: "web", ID: "a"}})
	check("web")
	check("webapp")
	if got := f.st.ServiceIndex("nothing"); got != 0 {
		t.Errorf("absent service has index %d, want 0", got)
	}
}
