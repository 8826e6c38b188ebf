package lease

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/registry"
)

// fakeRegistry holds TTL checks and records the writes the table makes.
type fakeRegistry struct {
	mu      sync.Mutex
	checks  map[registry.Key]registry.Check
	writes  []string
	removed []registry.Key
}

func newFake() *fakeRegistry { return &fakeRegistry{checks: map[registry.Key]registry.Check{}} }

func (f *fakeRegistry) add(svc, id string, ttl, deregAfter time.Duration) registry.Key {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := registry.Key{Service: svc, ID: id}
	f.checks[k] = registry.Check{ID: "ttl", Type: registry.CheckTTL, TTL: registry.Duration(ttl),
		DeregisterAfter: registry.Duration(deregAfter), Status: registry.Passing}
	return k
}

func (f *fakeRegistry) EachCheck(typ registry.CheckType, fn func(registry.Key, *registry.Check) bool) uint64 {
	f.mu.Lock()
	refs := make([]registry.CheckRef, 0, len(f.checks))
	for k, c := range f.checks {
		refs = append(refs, registry.CheckRef{Key: k, Check: c})
	}
	f.mu.Unlock()
	for i := range refs {
		if !fn(refs[i].Key, &refs[i].Check) {
			break
		}
	}
	return 1
}

func (f *fakeRegistry) SetCheckStatus(_ context.Context, key registry.Key, checkID string, st registry.Health, _ string) (registry.ApplyResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.checks[key]
	if !ok {
		return registry.ApplyResult{}, registry.ErrNotFound
	}
	c.Status = st
	f.checks[key] = c
	f.writes = append(f.writes, fmt.Sprintf("%s/%s=%s", key.Service, key.ID, st))
	return registry.ApplyResult{}, nil
}

func (f *fakeRegistry) DeregisterIfCritical(_ context.Context, key registry.Key, _ string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.checks[key]
	if !ok {
		return 0, registry.ErrNotFound
	}
	if c.Status != registry.Critical {
		return 0, registry.ErrConflict
	}
	delete(f.checks, key)
	f.removed = append(f.removed, key)
	return 1, nil
}

func (f *fakeRegistry) status(k registry.Key) registry.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.checks[k]
	if !ok {
		return ""
	}
	return c.Status
}

// heartbeat does what registry.Service.Heartbeat does: renew, and write
// passing when the check is not.
func (f *fakeRegistry) heartbeat(t *Table, k registry.Key) {
	f.mu.Lock()
	c := f.checks[k]
	f.mu.Unlock()
	t.Renew(k, c)
	if c.Status != registry.Passing {
		_, _ = f.SetCheckStatus(context.Background(), k, c.ID, registry.Passing, "")
	}
}

// run starts the table in the bubble and returns a stop function.
func run(t *testing.T, tbl *Table) func() {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = tbl.Run(ctx) }()
	synctest.Wait()
	return func() { cancel(); <-done }
}

func TestExpiryAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := newFake()
		k := reg.add("web", "a", 2*time.Second, 0)
		tbl := New(Config{Registry: reg, Metrics: prometheus.NewRegistry(), Tick: 250 * time.Millisecond})
		defer run(t, tbl)()

		// Heartbeats within the TTL keep it passing.
		for range 5 {
			time.Sleep(time.Second)
			reg.heartbeat(tbl, k)
		}
		synctest.Wait()
		if got := reg.status(k); got != registry.Passing {
			t.Fatalf("heartbeating instance is %s", got)
		}
		// No heartbeat: critical after the TTL, within one tick.
		time.Sleep(2*time.Second + 300*time.Millisecond)
		synctest.Wait()
		if got := reg.status(k); got != registry.Critical {
			t.Fatalf("after TTL without heartbeat: %s, want critical", got)
		}
		// One heartbeat brings it back.
		reg.heartbeat(tbl, k)
		if got := reg.status(k); got != registry.Passing {
			t.Fatalf("after heartbeat: %s", got)
		}
		// And it is still tracked: it expires again.
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if got := reg.status(k); got != registry.Critical {
			t.Fatalf("second expiry: %s", got)
		}
	})
}

func TestDeregisterAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := newFake()
		k := reg.add("web", "a", time.Second, 5*time.Second)
		keep := reg.add("web", "b", time.Second, 0) // no deregister_after
		tbl := New(Config{Registry: reg})
		defer run(t, tbl)()

		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if reg.status(k) != registry.Critical || reg.status(keep) != registry.Critical {
			t.Fatalf("both should be critical: %s %s", reg.status(k), reg.status(keep))
		}
		time.Sleep(4 * time.Second) // critical for ~4.2s < 5s
		synctest.Wait()
		if reg.status(k) == "" {
			t.Fatal("removed before deregister_after")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if reg.status(k) != "" {
			t.Fatal("not removed after deregister_after")
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if reg.status(keep) != registry.Critical {
			t.Fatal("an instance without deregister_after must stay, critical")
		}
	})
}

// A restart (or a new leader) gives every lease a fresh TTL, even those
// whose holders have not been heard from for a long time.
func TestFreshGraceAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := newFake()
		k := reg.add("web", "a", 10*time.Second, 0)
		tbl := New(Config{Registry: reg})
		time.Sleep(time.Hour) // the agent was down
		stop := run(t, tbl)
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if got := reg.status(k); got != registry.Passing {
			t.Fatalf("evicted within the grace period: %s", got)
		}
		reg.heartbeat(tbl, k)
		stop()

		// A second start (leadership regained) grants grace again.
		time.Sleep(30 * time.Second)
		stop = run(t, tbl)
		defer stop()
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if got := reg.status(k); got != registry.Passing {
			t.Fatalf("evicted within the grace after a second start: %s", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := reg.status(k); got != registry.Critical {
			t.Fatalf("not expired after grace: %s", got)
		}
	})
}

func TestSelfPreservation(t *testing.T) {
	tests := []struct {
		name     string
		fraction float64
		total    int
		silent   int // instances that stop heartbeating
		wantHold bool
	}{
		{"majority lapses: hold", 0.5, 20, 15, true},
		{"minority lapses: expire", 0.5, 20, 5, false},
		{"exactly half: expire", 0.5, 20, 10, false},
		{"small fleet is not guarded", 0.5, 5, 5, false},
		{"guard disabled", 1, 20, 20, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				reg := newFake()
				var keys []registry.Key
				for i := range tc.total {
					keys = append(keys, reg.add("web", fmt.Sprint(i), 2*time.Second, 0))
				}
				tbl := New(Config{Registry: reg, GuardFraction: tc.fraction, GuardMinLeases: 10})
				defer run(t, tbl)()
				beat := func() {
					for _, k := range keys[tc.silent:] {
						reg.heartbeat(tbl, k)
					}
				}
				for range 6 {
					time.Sleep(time.Second)
					beat()
				}
				synctest.Wait()
				critical := 0
				for _, k := range keys {
					if reg.status(k) == registry.Critical {
						critical++
					}
				}
				if tc.wantHold {
					if critical != 0 || !tbl.Guarding() {
						t.Fatalf("guard should hold: %d critical, guarding=%v", critical, tbl.Guarding())
					}
					// Heartbeats return: the guard lifts, and the
					// still-silent ones then expire.
					for _, k := range keys[:tc.silent-int(float64(tc.total)*tc.fraction)+1] {
						reg.heartbeat(tbl, k)
					}
					for range 3 {
						time.Sleep(time.Second)
						beat()
						for _, k := range keys[:tc.silent-int(float64(tc.total)*tc.fraction)+1] {
							reg.heartbeat(tbl, k)
						}
					}
					synctest.Wait()
					if tbl.Guarding() {
						t.Fatal("guard did not lift after heartbeats returned")
					}
					if reg.status(keys[tc.silent-1]) != registry.Critical {
						t.Fatal("silent instance did not expire after the guard lifted")
					}
					return
				}
				if critical != tc.silent {
					t.Fatalf("%d critical, want %d", critical, tc.silent)
				}
			})
		})
	}
}

// Forget (a deregistration) takes the lease out of the guard's count, so
// a graceful mass shutdown is not mistaken for a mass expiry.
func TestForgetDoesNotTripGuard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := newFake()
		var keys []registry.Key
		for i := range 20 {
			keys = append(keys, reg.add("web", fmt.Sprint(i), 2*time.Second, 0))
		}
		tbl := New(Config{Registry: reg})
		defer run(t, tbl)()
		for _, k := range keys[:15] {
			tbl.Forget(k)
			reg.mu.Lock()
			delete(reg.checks, k)
			reg.mu.Unlock()
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if tbl.Guarding() {
			t.Fatal("guard tripped by deregistrations")
		}
		for _, k := range keys[15:] {
			if reg.status(k) != registry.Critical {
				t.Fatalf("%v should have expired", k)
			}
		}
	})
}

// A lease for an instance the registry no longer has is dropped, not
// retried forever.
func TestExpiryOfUnknownInstanceDropsLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := newFake()
		tbl := New(Config{Registry: reg})
		defer run(t, tbl)()
		k := registry.Key{Service: "web", ID: "ghost"}
		tbl.Renew(k, registry.Check{ID: "ttl", Type: registry.CheckTTL, TTL: registry.Duration(time.Second)})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := tbl.count(); n != 0 {
			t.Fatalf("%v leases left, want 0", n)
		}
	})
}

func BenchmarkRenew(b *testing.B) {
	tbl := New(Config{Registry: newFake()})
	keys := make([]registry.Key, 100000)
	c := registry.Check{ID: "ttl", Type: registry.CheckTTL, TTL: registry.Duration(10 * time.Second)}
	for i := range keys {
		keys[i] = registry.Key{Service: fmt.Sprint("svc", i%1000), ID: fmt.Sprint(i)}
		tbl.Renew(keys[i], c)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tbl.Renew(keys[i%len(keys)], c)
		i++
	}
}

func BenchmarkExpireScan(b *testing.B) {
	tbl := New(Config{Registry: newFake()})
	c := registry.Check{ID: "ttl", Type: registry.CheckTTL, TTL: registry.Duration(time.Hour)}
	for i := range 100000 {
		tbl.Renew(registry.Key{Service: fmt.Sprint("svc", i%1000), ID: fmt.Sprint(i)}, c)
	}
	b.ReportAllocs()
	for b.Loop() {
		tbl.expire(context.Background())
	}
}
