package store_test

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

func TestWatchRefcount(t *testing.T) {
	st := store.New()
	_, relA1 := st.Watch("a")
	_, relA2 := st.Watch("a")
	_, relA3 := st.Watch("a")
	_, relB := st.Watch("b")
	if w := st.Stats().Watchers; w != 2 {
		t.Fatalf("Watchers = %d, want 2 distinct keys", w)
	}
	relA1()
	relA1() // a second release of the same watch is a no-op
	relA1()
	if w := st.Stats().Watchers; w != 2 {
		t.Fatalf("Watchers = %d after one of three releases of a (twice), want 2", w)
	}
	relA2()
	relB()
	if w := st.Stats().Watchers; w != 1 {
		t.Fatalf("Watchers = %d, want 1", w)
	}
	relA3()
	if w := st.Stats().Watchers; w != 0 {
		t.Fatalf("Watchers = %d after every release, want 0", w)
	}
}

func TestWatchSameChannelPerKey(t *testing.T) {
	st := store.New()
	a1, r1 := st.Watch("a")
	defer r1()
	a2, r2 := st.Watch("a")
	defer r2()
	b, r3 := st.Watch("b")
	defer r3()
	if a1 != a2 {
		t.Error("two watchers of one key got different channels")
	}
	if a1 == b {
		t.Error("two keys share a channel")
	}
}

func TestWatchReleaseAfterNotify(t *testing.T) {
	f := newFixture()
	old, relOld := f.st.Watch("web")
	f.register(t, inst(t, "web", "a"))
	if !closed(old) {
		t.Fatal("watcher not woken")
	}
	if w := f.st.Stats().Watchers; w != 0 {
		t.Errorf("Watchers = %d after notify, want 0 (the woken key is dropped)", w)
	}
	cur, relCur := f.st.Watch("web")
	defer relCur()
	relOld() // must not drop the new watch of the same key
	if w := f.st.Stats().Watchers; w != 1 {
		t.Errorf("Watchers = %d, want the new watch kept", w)
	}
	if closed(cur) {
		t.Fatal("new watch closed without a change")
	}
	f.register(t, inst(t, "web", "b"))
	if !closed(cur) {
		t.Error("new watch not woken by the next change")
	}
}

func TestNotifyOnlyTouchedKeys(t *testing.T) {
	f := newFixture()
	f.register(t, inst(t, "web", "a", ttl(time.Minute)))
	f.register(t, inst(t, "db", "x"))
	keys := []string{"web", "db", "web-api", registry.WatchServices, registry.WatchChecks}
	type woken map[string]bool
	all := func(ks ...string) woken {
		w := woken{}
		for _, k := range ks {
			w[k] = true
		}
		return w
	}
	steps := []struct {
		name string
		op   registry.Op
		want woken
	}{
		{"new instance", &registry.RegisterOp{Instance: inst(t, "web", "b", ttl(time.Minute)), At: f.now},
			all("web", registry.WatchServices, registry.WatchChecks)},
		{"check status", &registry.SetCheckOp{Key: registry.Key{Service: "web", ID: "b"}, CheckID: "ttl", Status: registry.Warning, At: f.now},
			all("web", registry.WatchServices)},
		{"same check status", &registry.SetCheckOp{Key: registry.Key{Service: "web", ID: "b"}, CheckID: "ttl", Status: registry.Warning, At: f.now},
			all()},
		{"tag change", &registry.RegisterOp{Instance: inst(t, "web", "b", ttl(time.Minute), tags("t")), At: f.now},
			all("web", registry.WatchServices)},
		{"identical re-register", &registry.RegisterOp{Instance: inst(t, "web", "b", ttl(time.Minute), tags("t")), At: f.now},
			all()},
		{"active check added", &registry.RegisterOp{Instance: inst(t, "web", "b", ttl(time.Minute), tags("t"), tcp("p", "10.0.0.1:1")), At: f.now},
			all("web", registry.WatchServices, registry.WatchChecks)},
		{"other service", &registry.RegisterOp{Instance: inst(t, "db", "x", tags("t")), At: f.now},
			all("db", registry.WatchServices)},
		{"failed deregister", &registry.DeregisterOp{Key: registry.Key{Service: "web", ID: "zz"}}, all()},
		{"failed conditional deregister", &registry.DeregisterOp{Key: registry.Key{Service: "web", ID: "a"}, IfCritical: "ttl"}, all()},
		{"failed set check", &registry.SetCheckOp{Key: registry.Key{Service: "web", ID: "b"}, CheckID: "zz", Status: registry.Passing, At: f.now}, all()},
		{"deregister with active check", &registry.DeregisterOp{Key: registry.Key{Service: "web", ID: "b"}},
			all("web", registry.WatchServices, registry.WatchChecks)},
		{"deregister ttl only", &registry.DeregisterOp{Key: registry.Key{Service: "db", ID: "x"}},
			all("db", registry.WatchServices)},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			chans := map[string]<-chan struct{}{}
			for _, k := range keys {
				ch, rel := f.st.Watch(k)
				defer rel()
				chans[k] = ch
			}
			f.apply(t, s.op)
			for _, k := range keys {
				if got := closed(chans[k]); got != s.want[k] {
					t.Errorf("key %q woken %v, want %v", k, got, s.want[k])
				}
			}
		})
	}
	if w := f.st.Stats().Watchers; w != 0 {
		t.Errorf("Watchers = %d after every release, want 0", w)
	}
}

// TestWatchConcurrent exercises the hub under the race detector: watchers
// come and go while writes land; every watcher is released in the end.
func TestWatchConcurrent(t *testing.T) {
	f := newFixture()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			key := fmt.Sprintf("svc-%d", g%3)
			for {
				select {
				case <-stop:
					return
				default:
				}
				ch, rel := f.st.Watch(key)
				select {
				case <-ch:
				default:
				}
				_, _ = f.st.Instances(key)
				rel()
			}
		})
	}
	for i := range 300 {
		f.register(t, inst(t, fmt.Sprintf("svc-%d", i%3), fmt.Sprintf("i-%d", i)))
	}
	close(stop)
	wg.Wait()
	if w := f.st.Stats().Watchers; w != 0 {
		t.Errorf("Watchers = %d after every watcher left, want 0", w)
	}
}

func TestRegisterMetrics(t *testing.T) {
	f := newFixture()
	reg := prometheus.NewRegistry()
	f.st.RegisterMetrics(reg)
	f.register(t, inst(t, "web", "a"))
	f.register(t, inst(t, "web", "b"))
	f.register(t, inst(t, "db", "x"))
	_, rel := f.st.Watch("web")
	defer rel()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
	}
	want := map[string]float64{
		"roster_registry_instances":    3,
		"roster_registry_services":     2,
		"roster_registry_watched_keys": 1,
		"roster_registry_index":        float64(f.idx),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("metrics %v, want %v", got, want)
	}
}
