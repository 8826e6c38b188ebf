package registry_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
	"github.com/rosterhq/roster/internal/testutil"
)

// countingState counts the reads of a service's instances, which Block
// makes once per wake-up.
type countingState struct {
	registry.State
	reads atomic.Int64
}

func (c *countingState) Instances(service string) (uint64, []*registry.Instance) {
	c.reads.Add(1)
	return c.State.Instances(service)
}

// fakeLeases records what the Service tells the lease table.
type fakeLeases struct {
	mu        sync.Mutex
	renewed   []registry.Key
	forgotten []registry.Key
}

func (f *fakeLeases) Renew(k registry.Key, _ registry.Check) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renewed = append(f.renewed, k)
}

func (f *fakeLeases) Forget(k registry.Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgotten = append(f.forgotten, k)
}

func (f *fakeLeases) counts() (renewed, forgotten int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.renewed), len(f.forgotten)
}

type harness struct {
	st     *store.Store
	state  *countingState
	log    *testutil.MemLog
	leases *fakeLeases
	svc    *registry.Service
}

func newHarness(t testing.TB, opts ...func(*registry.Config)) *harness {
	t.Helper()
	h := &harness{st: store.New(), leases: &fakeLeases{}}
	h.state = &countingState{State: h.st}
	h.log = testutil.NewMemLog(h.st)
	cfg := registry.Config{State: h.state, Log: h.log, Leases: h.leases}
	for _, o := range opts {
		o(&cfg)
	}
	h.svc = registry.New(cfg)
	return h
}

// register registers a fresh instance service/id with optional changes.
func (h *harness) register(t testing.TB, service, id string, mods ...func(*registry.Instance)) registry.ApplyResult {
	t.Helper()
	in := &registry.Instance{Service: service, ID: id, Address: "10.0.0.1", Port: 80}
	for _, m := range mods {
		m(in)
	}
	res, err := h.svc.Register(context.Background(), in)
	if err != nil {
		t.Fatalf("Register %s/%s: %v", service, id, err)
	}
	return res
}

func withTTL(d time.Duration) func(*registry.Instance) {
	return func(in *registry.Instance) {
		in.Checks = append(in.Checks, registry.Check{Type: registry.CheckTTL, TTL: registry.Duration(d)})
	}
}

func withTags(tags ...string) func(*registry.Instance) {
	return func(in *registry.Instance) { in.Tags = tags }
}

func ids(ins []*registry.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	return out
}

func TestRegisterGetDeregister(t *testing.T) {
	ctx := testutil.Context(t, 30*time.Second)
	h := newHarness(t)

	in := &registry.Instance{Service: "Web", ID: "a", Address: "10.0.0.1", Port: 80, Tags: []string{"v1"}}
	res, err := h.svc.Register(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Index == 0 {
		t.Fatalf("first Register: created %v index %d, want created at a positive index", res.Created, res.Index)
	}
	if got := res.Instance; got.Service != "web" || got.CreateIndex != res.Index || got.ModifyIndex != res.Index || got.Health != registry.Passing {
		t.Fatalf("stored instance %+v, want service web, create=modify=%d, passing", got, res.Index)
	}

	// Get folds the service name like Register did.
	got, err := h.svc.Get(registry.Key{Service: "WEB", ID: "a"})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Port != 80 || !reflect.DeepEqual(got.Tags, []string{"v1"}) {
		t.Errorf("Get = %+v", got)
	}
	if _, err := h.svc.Get(registry.Key{Service: "web", ID: "A"}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get with other-case ID: %v, want ErrNotFound (IDs are case-sensitive)", err)
	}

	// Replace.
	res2 := h.register(t, "web", "a", withTags("v2"))
	if res2.Created || res2.Instance.CreateIndex != res.Index || res2.Instance.ModifyIndex <= res.Index {
		t.Errorf("replace: created %v create %d modify %d, want not created, create %d, modify > %d",
			res2.Created, res2.Instance.CreateIndex, res2.Instance.ModifyIndex, res.Index, res.Index)
	}

	idx, err := h.svc.Deregister(ctx, registry.Key{Service: "Web", ID: "a"})
	if err != nil || idx <= res2.Index {
		t.Fatalf("Deregister = %d, %v; want an index past %d", idx, err, res2.Index)
	}
	if _, err := h.svc.Get(registry.Key{Service: "web", ID: "a"}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Get after Deregister: %v, want ErrNotFound", err)
	}
	if _, err := h.svc.Deregister(ctx, registry.Key{Service: "web", ID: "a"}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second Deregister: %v, want ErrNotFound", err)
	}
	if _, n := h.leases.counts(); n != 1 {
		t.Errorf("leases forgotten %d times, want 1 (only the successful deregister)", n)
	}
}

func TestRegisterInvalidWritesNothing(t *testing.T) {
	ctx := testutil.Context(t, 30*time.Second)
	h := newHarness(t)
	before := h.st.LastIndex()
	_, err := h.svc.Register(ctx, &registry.Instance{Service: "web", Port: 0})
	if got := fieldsOf(t, err); !reflect.DeepEqual(got, []string{"address", "port"}) {
		t.Fatalf("fields = %q, want [address port]", got)
	}
	if h.st.LastIndex() != before {
		t.Errorf("LastIndex moved from %d to %d after a rejected write", before, h.st.LastIndex())
	}
}

func TestHeartbeat(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, h *harness)
		key     registry.Key
		wantErr error
		// wantWrite: the heartbeat went through the log.
		wantWrite bool
		wantRenew bool
	}{
		{name: "unknown instance", key: registry.Key{Service: "web", ID: "nope"}, wantErr: registry.ErrNotFound},
		{name: "unknown service", key: registry.Key{Service: "nope", ID: "a"}, wantErr: registry.ErrNotFound},
		{name: "no ttl", setup: func(t *testing.T, h *harness) { h.register(t, "web", "a") },
			key: registry.Key{Service: "web", ID: "a"}, wantErr: registry.ErrNoTTL},
		{name: "passing ttl renews without a write", setup: func(t *testing.T, h *harness) { h.register(t, "web", "a", withTTL(time.Minute)) },
			key: registry.Key{Service: "Web", ID: "a"}, wantRenew: true},
		{name: "critical ttl turns passing", setup: func(t *testing.T, h *harness) {
			h.register(t, "web", "a", withTTL(time.Minute))
			if _, err := h.svc.SetCheckStatus(t.Context(), registry.Key{Service: "web", ID: "a"}, registry.TTLCheckID, registry.Critical, "lapsed"); err != nil {
				t.Fatal(err)
			}
		}, key: registry.Key{Service: "web", ID: "a"}, wantRenew: true, wantWrite: true},
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
			err := h.svc.Heartbeat(ctx, tc.key)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Heartbeat = %v, want %v", err, tc.wantErr)
			}
			if wrote := h.st.LastIndex() != before; wrote != tc.wantWrite {
				t.Errorf("wrote to the log: %v, want %v", wrote, tc.wantWrite)
			}
			if renewed, _ := h.leases.counts(); (renewed > renewed0) != tc.wantRenew {
				t.Errorf("lease renewed: %v, want %v", renewed > renewed0, tc.wantRenew)
			}
			if tc.wantErr == nil {
				in, err := h.svc.Get(tc.key)
				if err != nil {
					t.Fatal(err)
				}
				if c := in.TTLCheck(); c.Status != registry.Passing || in.Health != registry.Passing {
					t.Errorf("after heartbeat: check %q health %q, want passing", c.Status, in.Health)
				}
			}
		})
	}
}

func TestSetCheckStatus(t *testing.T) {
	ctx := testutil.Context(t, 30*time.Second)
	h := newHarness(t)
	h.register(t, "web", "a", withTTL(time.Minute))
	key := registry.Key{Service: "web", ID: "a"}

	_, err := h.svc.SetCheckStatus(ctx, key, registry.TTLCheckID, "sick", "")
	if got := fieldsOf(t, err); !reflect.DeepEqual(got, []string{"status"}) {
		t.Errorf("invalid status: fields %q, want [status]", got)
	}
	res, err := h.svc.SetCheckStatus(ctx, key, registry.TTLCheckID, registry.Warning, strings.Repeat("x", 5000))
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Instance.TTLCheck(); c.Status != registry.Warning || len(c.Output) != 4096 {
		t.Errorf("check status %q output %d bytes, want warning and output cut to 4096", c.Status, len(c.Output))
	}
	if _, err := h.svc.SetCheckStatus(ctx, key, "nope", registry.Passing, ""); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown check: %v, want ErrNotFound", err)
	}
	if _, err := h.svc.DeregisterIfCritical(ctx, key, registry.TTLCheckID); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("DeregisterIfCritical of a warning check: %v, want ErrConflict", err)
	}
	if _, err := h.svc.SetCheckStatus(ctx, key, registry.TTLCheckID, registry.Critical, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.DeregisterIfCritical(ctx, key, registry.TTLCheckID); err != nil {
		t.Errorf("DeregisterIfCritical of a critical check: %v", err)
	}
}

// TestSetCheckStatusOutputValidUTF8: a long output is cut to 4096 bytes
// without splitting a character.
//
// Regression test (fixed): SetCheckStatus (service.go) truncates with output[:4096], which can
// end inside a multi-byte rune and store bytes that are not UTF-8; the
// accepting node then keeps different bytes from every replica (see
// store.TestLogMatchesReplay). It should back off to a rune boundary.
func TestSetCheckStatusOutputValidUTF8(t *testing.T) {
	ctx := testutil.Context(t, 30*time.Second)
	h := newHarness(t)
	h.register(t, "web", "a", withTTL(time.Minute))
	out := strings.Repeat("x", 4095) + "é and more"
	res, err := h.svc.SetCheckStatus(ctx, registry.Key{Service: "web", ID: "a"}, registry.TTLCheckID, registry.Warning, out)
	if err != nil {
		t.Fatal(err)
	}
	got := res.Instance.TTLCheck().Output
	if !utf8.ValidString(got) || len(got) > 4096 || !strings.HasPrefix(out, got) {
		t.Errorf("output cut to %d bytes ending %q: want a valid UTF-8 prefix of at most 4096 bytes", len(got), got[len(got)-3:])
	}
}

func TestNotReady(t *testing.T) {
	ctx := testutil.Context(t, 30*time.Second)
	h := newHarness(t, func(c *registry.Config) { c.Ready = func() bool { return false } })
	key := registry.Key{Service: "web", ID: "a"}
	calls := []struct {
		name string
		call func() error
	}{
		{"Register", func() error {
			_, err := h.svc.Register(ctx, &registry.Instance{Service: "web", Address: "10.0.0.1", Port: 1})
			return err
		}},
		{"Get", func() error { _, err := h.svc.Get(key); return err }},
		{"Deregister", func() error { _, err := h.svc.Deregister(ctx, key); return err }},
		{"Heartbeat", func() error { return h.svc.Heartbeat(ctx, key) }},
		{"SetCheckStatus", func() error {
			_, err := h.svc.SetCheckStatus(ctx, key, "ttl", registry.Passing, "")
			return err
		}},
		{"Instances", func() error { _, err := h.svc.Instances(ctx, registry.Query{Service: "web"}, 0, 0); return err }},
		{"Services", func() error { _, _, err := h.svc.Services(ctx, 0, 0); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, registry.ErrNotReady) {
				t.Errorf("%s = %v, want ErrNotReady", c.name, err)
			}
		})
	}
	if h.svc.Ready() {
		t.Error("Ready() = true")
	}
	if h.st.LastIndex() != 0 {
		t.Errorf("a write went through while not ready: LastIndex %d", h.st.LastIndex())
	}
}

func TestIndexNeverZero(t *testing.T) {
	ctx := testutil.Context(t, 30*time.Second)
	h := newHarness(t)
	res, err := h.svc.Instances(ctx, registry.Query{Service: "web"}, 0, 0)
	if err != nil || res.Index == 0 || len(res.Instances) != 0 {
		t.Errorf("Instances on empty registry = %d %v %v, want index >= 1, none", res.Index, ids(res.Instances), err)
	}
	if idx := h.svc.ServiceIndex("web"); idx == 0 {
		t.Error("ServiceIndex = 0")
	}
	if idx := h.svc.LastIndex(); idx == 0 {
		t.Error("LastIndex = 0")
	}
	if idx, svcs, err := h.svc.Services(ctx, 0, 0); idx == 0 || len(svcs) != 0 || err != nil {
		t.Errorf("Services = %d %v %v, want index >= 1 and none", idx, svcs, err)
	}
	// A service that never existed in a non-empty registry.
	h.register(t, "other", "x")
	if res, _ := h.svc.Instances(ctx, registry.Query{Service: "web"}, 0, 0); res.Index == 0 {
		t.Error("Instances of an unknown service: index 0")
	}
}

func TestServiceIndexMonotonicAcrossTombstone(t *testing.T) {
	ctx := testutil.Context(t, 30*time.Second)
	h := newHarness(t)
	q := registry.Query{Service: "web"}
	var seen []uint64
	step := func(what string) {
		t.Helper()
		res, err := h.svc.Instances(ctx, q, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) > 0 && res.Index <= seen[len(seen)-1] {
			t.Fatalf("after %s: service index %d, not past %d (history %v)", what, res.Index, seen[len(seen)-1], seen)
		}
		seen = append(seen, res.Index)
	}
	h.register(t, "web", "a")
	step("register a")
	h.register(t, "web", "b")
	step("register b")
	for _, id := range []string{"a", "b"} {
		if _, err := h.svc.Deregister(ctx, registry.Key{Service: "web", ID: id}); err != nil {
			t.Fatal(err)
		}
		step("deregister " + id)
	}
	if _, svcs, _ := h.svc.Services(ctx, 0, 0); len(svcs) != 0 {
		t.Errorf("Services lists %v after every instance left", svcs)
	}
	h.register(t, "other", "x") // other writes move LastIndex, not web's index
	if res, _ := h.svc.Instances(ctx, q, 0, 0); res.Index != seen[len(seen)-1] {
		t.Errorf("web's index moved to %d on another service's write", res.Index)
	}
	h.register(t, "web", "a")
	step("register a again")
	res, _ := h.svc.Instances(ctx, q, 0, 0)
	if res.Instances[0].CreateIndex != res.Index {
		t.Errorf("re-created instance CreateIndex %d, want %d", res.Instances[0].CreateIndex, res.Index)
	}
}

// blockResult is what a blocking call in a goroutine returned.
type blockResult struct {
	res     registry.Result
	err     error
	elapsed time.Duration
}

// blockInstances runs Instances in a goroutine; read the result from the
// channel.
func blockInstances(ctx context.Context, h *harness, q registry.Query, minIndex uint64, wait time.Duration) <-chan blockResult {
	out := make(chan blockResult, 1)
	go func() {
		start := time.Now()
		res, err := h.svc.Instances(ctx, q, minIndex, wait)
		out <- blockResult{res, err, time.Since(start)}
	}()
	return out
}

func TestBlockReturnsAtOnce(t *testing.T) {
	tests := []struct {
		name     string
		minIndex func(h *harness, webIndex uint64) uint64
	}{
		{"min index 0", func(*harness, uint64) uint64 { return 0 }},
		{"min index before the service's", func(_ *harness, web uint64) uint64 { return web - 1 }},
		{"min index ahead of the registry", func(h *harness, _ uint64) uint64 { return h.st.LastIndex() + 1 }},
		{"min index far ahead of the registry", func(h *harness, _ uint64) uint64 { return 1 << 60 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t)
				web := h.register(t, "web", "a").Index
				h.register(t, "other", "x")
				start := time.Now()
				res, err := h.svc.Instances(t.Context(), registry.Query{Service: "web"}, tc.minIndex(h, web), time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("blocked for %v, want an immediate answer", d)
				}
				if res.Index != web || !reflect.DeepEqual(ids(res.Instances), []string{"a"}) {
					t.Errorf("result %d %v, want %d [a]", res.Index, ids(res.Instances), web)
				}
			})
		})
	}
}

func TestBlockWakesOnlyOnTheWatchedService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		web := h.register(t, "web", "a").Index
		h.register(t, "other", "x")
		done := blockInstances(t.Context(), h, registry.Query{Service: "web"}, web, time.Minute)
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("returned before any change: %+v", r)
		default:
		}
		reads := h.state.reads.Load()

		// Another service's change must not wake the waiter at all.
		h.register(t, "other", "y")
		h.register(t, "web2", "z")
		synctest.Wait()
		if got := h.state.reads.Load(); got != reads {
			t.Errorf("waiter woke %d times on other services' changes", got-reads)
		}
		select {
		case r := <-done:
			t.Fatalf("returned on another service's change: %+v", r)
		default:
		}

		b := h.register(t, "web", "b").Index
		synctest.Wait()
		select {
		case r := <-done:
			if r.err != nil || r.res.Index != b || !reflect.DeepEqual(ids(r.res.Instances), []string{"a", "b"}) {
				t.Errorf("woke with %d %v %v, want %d [a b]", r.res.Index, ids(r.res.Instances), r.err, b)
			}
			if r.elapsed != 0 {
				t.Errorf("took %v of (fake) time, want 0", r.elapsed)
			}
		default:
			t.Fatal("did not return after the watched service changed")
		}
	})
}

func TestBlockHealthChangeWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		web := h.register(t, "web", "a", withTTL(time.Minute)).Index
		done := blockInstances(t.Context(), h, registry.Query{Service: "web", Health: registry.PassingOnly}, web, time.Minute)
		synctest.Wait()
		if _, err := h.svc.SetCheckStatus(t.Context(), registry.Key{Service: "web", ID: "a"}, registry.TTLCheckID, registry.Critical, ""); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case r := <-done:
			if r.res.Index <= web || len(r.res.Instances) != 0 {
				t.Errorf("woke with %d %v, want a newer index and no passing instance", r.res.Index, ids(r.res.Instances))
			}
		default:
			t.Fatal("a health change did not wake the waiter")
		}
	})
}

func TestBlockWaitLimit(t *testing.T) {
	tests := []struct {
		name string
		wait time.Duration
		// want is the wait before jitter.
		want time.Duration
	}{
		{"given wait", 30 * time.Second, 30 * time.Second},
		{"zero means default", 0, registry.DefaultWait},
		{"negative means default", -time.Second, registry.DefaultWait},
		{"capped at max", time.Hour, registry.MaxWait},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t)
				web := h.register(t, "web", "a").Index
				r := <-blockInstances(t.Context(), h, registry.Query{Service: "web"}, web, tc.wait)
				if r.err != nil {
					t.Fatal(r.err)
				}
				if r.res.Index != web {
					t.Errorf("index %d, want the unchanged %d", r.res.Index, web)
				}
				if r.elapsed < tc.want || r.elapsed > tc.want+tc.want/16+1 {
					t.Errorf("returned after %v, want between %v and %v", r.elapsed, tc.want, tc.want+tc.want/16)
				}
			})
		})
	}
}

func TestBlockCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		web := h.register(t, "web", "a").Index
		ctx, cancel := context.WithCancel(t.Context())
		done := blockInstances(ctx, h, registry.Query{Service: "web"}, web, time.Minute)
		time.Sleep(time.Second) // fake time: the waiter is parked
		cancel()
		synctest.Wait()
		select {
		case r := <-done:
			if !errors.Is(r.err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", r.err)
			}
			if r.elapsed != time.Second {
				t.Errorf("returned after %v, want right at the cancel (1s)", r.elapsed)
			}
		default:
			t.Fatal("did not return on cancel")
		}
		if w := h.st.Stats().Watchers; w != 0 {
			t.Errorf("%d watch keys left after the waiter returned", w)
		}
	})
}

func TestBlockDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		web := h.register(t, "web", "a").Index
		done := blockInstances(t.Context(), h, registry.Query{Service: "web"}, web, time.Minute)
		svcDone := make(chan error, 1)
		go func() {
			_, _, err := h.svc.Services(t.Context(), h.st.LastIndex(), time.Minute)
			svcDone <- err
		}()
		time.Sleep(time.Second)
		h.svc.Drain()
		h.svc.Drain() // idempotent
		synctest.Wait()
		select {
		case r := <-done:
			if r.err != nil || r.res.Index != web || len(r.res.Instances) != 1 {
				t.Errorf("drained query = %d %v %v, want the current answer", r.res.Index, ids(r.res.Instances), r.err)
			}
		default:
			t.Fatal("Instances did not return on Drain")
		}
		select {
		case err := <-svcDone:
			if err != nil {
				t.Errorf("Services on Drain: %v", err)
			}
		default:
			t.Fatal("Services did not return on Drain")
		}
		select {
		case <-h.svc.Draining():
		default:
			t.Error("Draining() not closed")
		}
		// Later blocking queries do not block.
		start := time.Now()
		if _, err := h.svc.Instances(t.Context(), registry.Query{Service: "web"}, web, time.Minute); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("a query after Drain blocked for %v", d)
		}
	})
}

// TestBlockOnEmptyRegistryAtReportedIndex: the index an answer reports is
// the one a client passes back to wait for the next change.
//
// Regression (found as a bug in this session, since fixed in service.go):
// on a registry that had no write yet, Instances reported index 1 (never
// 0), but Block compared minIndex with the raw State.LastIndex(), 0, so
// minIndex 1 was "ahead of the registry" and every blocking query
// returned at once with index 1 again: clients that follow the protocol
// spun, and the SSE watch (httpapi/watch.go) looped writing keep-alives.
// Block now compares with max(LastIndex, 1).
func TestBlockOnEmptyRegistryAtReportedIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		q := registry.Query{Service: "web"}
		first, err := h.svc.Instances(t.Context(), q, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		r := <-blockInstances(t.Context(), h, q, first.Index, time.Minute)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.elapsed < time.Minute {
			t.Errorf("blocking query at the reported index %d returned after %v, want it to wait 1m for a change", first.Index, r.elapsed)
		}
	})
}

// TestManyWaitersWakeOnOneWrite: a single write wakes every waiter of the
// service, promptly.
func TestManyWaitersWakeOnOneWrite(t *testing.T) {
	const waiters = 2000
	ctx := testutil.Context(t, 60*time.Second)
	h := newHarness(t)
	web := h.register(t, "web", "a").Index
	q := registry.Query{Service: "web"}

	base := h.state.reads.Load()
	var wg sync.WaitGroup
	results := make([]blockResult, waiters)
	for i := range waiters {
		wg.Go(func() {
			res, err := h.svc.Instances(ctx, q, web, 5*time.Minute)
			results[i] = blockResult{res: res, err: err}
		})
	}
	// Every waiter has read once, after taking its watch.
	testutil.WaitFor(t, ctx, "all waiters to park", func() bool { return h.state.reads.Load()-base >= waiters })
	if w := h.st.Stats().Watchers; w != 1 {
		t.Errorf("%d watched keys for one service, want 1", w)
	}

	start := time.Now()
	b := h.register(t, "web", "b").Index
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	select {
	case <-allDone:
	case <-ctx.Done():
		t.Fatal("not every waiter woke on the write")
	}
	t.Logf("%d waiters woke in %v", waiters, time.Since(start))
	for i, r := range results {
		if r.err != nil || r.res.Index != b || len(r.res.Instances) != 2 {
			t.Fatalf("waiter %d: %d %v %v, want index %d with 2 instances", i, r.res.Index, ids(r.res.Instances), r.err, b)
		}
	}
	if w := h.st.Stats().Watchers; w != 0 {
		t.Errorf("%d watch keys left after every waiter returned", w)
	}
}

// TestLargeServiceStillBlocks: a service of thousands of instances blocks
// like a small one; waiting does not degrade into immediate answers.
func TestLargeServiceStillBlocks(t *testing.T) {
	const size = 5000
	ctx := testutil.Context(t, 120*time.Second)
	h := newHarness(t)
	for i := range size {
		h.register(t, "big", fmt.Sprintf("i-%05d", i), withTTL(time.Minute))
	}
	q := registry.Query{Service: "big"}
	cur, err := h.svc.Instances(ctx, q, 0, 0)
	if err != nil || len(cur.Instances) != size {
		t.Fatalf("Instances = %d instances, %v; want %d", len(cur.Instances), err, size)
	}

	// Reaches the wait limit with the same index.
	const wait = 300 * time.Millisecond
	r := <-blockInstances(ctx, h, q, cur.Index, wait)
	if r.err != nil || r.res.Index != cur.Index {
		t.Fatalf("timed-out query = %d, %v; want %d", r.res.Index, r.err, cur.Index)
	}
	if r.elapsed < wait {
		t.Errorf("a blocking query on %d instances returned after %v, before its wait of %v", size, r.elapsed, wait)
	}

	// Wakes on one instance's change, not before.
	base := h.state.reads.Load()
	done := blockInstances(ctx, h, q, cur.Index, 5*time.Minute)
	testutil.WaitFor(t, ctx, "the waiter to park", func() bool { return h.state.reads.Load() > base })
	select {
	case r := <-done:
		t.Fatalf("returned without a change: %d", r.res.Index)
	default:
	}
	res, err := h.svc.SetCheckStatus(ctx, registry.Key{Service: "big", ID: "i-02500"}, registry.TTLCheckID, registry.Critical, "")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.res.Index != res.Index || len(r.res.Instances) != size {
			t.Errorf("woke with %d (%d instances) %v, want %d", r.res.Index, len(r.res.Instances), r.err, res.Index)
		}
	case <-ctx.Done():
		t.Fatal("did not wake on the change")
	}
}

func TestServicesBlocking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t)
		h.register(t, "web", "a")
		idx, svcs, err := h.svc.Services(t.Context(), 0, 0)
		if err != nil || len(svcs) != 1 || svcs[0].Name != "web" || svcs[0].Instances != 1 || svcs[0].Passing != 1 {
			t.Fatalf("Services = %d %+v %v", idx, svcs, err)
		}
		done := make(chan []registry.ServiceSummary, 1)
		go func() {
			_, s, _ := h.svc.Services(t.Context(), idx, time.Minute)
			done <- s
		}()
		synctest.Wait()
		h.register(t, "db", "x")
		synctest.Wait()
		select {
		case s := <-done:
			if len(s) != 2 || s[0].Name != "db" || s[1].Name != "web" {
				t.Errorf("Services woke with %+v, want db and web", s)
			}
		default:
			t.Fatal("Services did not wake on a new service")
		}
	})
}

func TestChecksAndWatch(t *testing.T) {
	h := newHarness(t)
	h.register(t, "web", "a", withTTL(time.Minute))
	h.register(t, "web", "b", func(in *registry.Instance) {
		in.Checks = []registry.Check{{Type: registry.CheckTCP, Target: "10.0.0.1:80"}}
	})
	ch, release := h.svc.Watch(registry.WatchChecks)
	defer release()
	_, ttl := h.svc.Checks(registry.CheckTTL)
	_, tcp := h.svc.Checks(registry.CheckTCP)
	if len(ttl) != 1 || ttl[0].Key.ID != "a" || len(tcp) != 1 || tcp[0].Key.ID != "b" {
		t.Errorf("Checks: ttl %+v tcp %+v", ttl, tcp)
	}
	h.register(t, "web", "c", func(in *registry.Instance) {
		in.Checks = []registry.Check{{Type: registry.CheckHTTP, Target: "http://10.0.0.1/"}}
	})
	select {
	case <-ch:
	default:
		t.Error("adding an active check did not wake WatchChecks")
	}
}

func TestInstanceBlocking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		h := newHarness(t)
		a := h.register(t, "web", "a", withTTL(time.Minute))
		key := registry.Key{Service: "Web", ID: "a"}

		in, idx, err := h.svc.Instance(ctx, key, 0, 0)
		if err != nil || idx != a.Index || in.ID != "a" {
			t.Fatalf("Instance = %v %d %v, want a at %d", in, idx, err, a.Index)
		}

		type result struct {
			in  *registry.Instance
			idx uint64
			err error
		}
		wait := func(k registry.Key, min uint64) <-chan result {
			out := make(chan result, 1)
			go func() {
				in, idx, err := h.svc.Instance(ctx, k, min, time.Minute)
				out <- result{in, idx, err}
			}()
			return out
		}
		done := wait(key, a.Index)
		synctest.Wait()
		// Another instance of the service changes: this one did not.
		h.register(t, "web", "b")
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("woke on another instance's change: %+v", r)
		default:
		}
		set, err := h.svc.SetCheckStatus(ctx, key, registry.TTLCheckID, registry.Critical, "")
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case r := <-done:
			if r.err != nil || r.idx != set.Index || r.in.Health != registry.Critical {
				t.Errorf("woke with %+v, want critical at %d", r, set.Index)
			}
		default:
			t.Fatal("did not wake on the instance's change")
		}

		// Removal answers ErrNotFound at the removal's index.
		done = wait(key, set.Index)
		synctest.Wait()
		gone, err := h.svc.Deregister(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		select {
		case r := <-done:
			if !errors.Is(r.err, registry.ErrNotFound) || r.idx != gone {
				t.Errorf("after removal: %+v, want ErrNotFound at %d", r, gone)
			}
		default:
			t.Fatal("did not wake on removal")
		}

		// An absent instance reports the service's index; waiting on it
		// returns when the instance appears.
		_, idx, err = h.svc.Instance(ctx, registry.Key{Service: "web", ID: "c"}, 0, 0)
		if !errors.Is(err, registry.ErrNotFound) || idx != gone {
			t.Fatalf("absent: %d %v, want ErrNotFound at %d", idx, err, gone)
		}
		done = wait(registry.Key{Service: "web", ID: "c"}, idx)
		synctest.Wait()
		c := h.register(t, "web", "c")
		synctest.Wait()
		select {
		case r := <-done:
			if r.err != nil || r.idx != c.Index || r.in.ID != "c" {
				t.Errorf("appearance: %+v, want c at %d", r, c.Index)
			}
		default:
			t.Fatal("did not wake when the instance appeared")
		}

		// Never 0, even for a service that never existed.
		if _, idx, _ := h.svc.Instance(ctx, registry.Key{Service: "none", ID: "x"}, 0, 0); idx == 0 {
			t.Error("index 0 for an unknown service")
		}
	})
}

// TestWritesOnStaleCopyAskFirst: a write that would answer "not found"
// from a copy of the state that has not seen the instance (a follower
// behind the leader; a leader deposed while paused) asks Consistent
// first, and answers from the state it brings. Writes that find the
// instance, and agents whose state is never behind, do not ask.
func TestWritesOnStaleCopyAskFirst(t *testing.T) {
	ctx := testutil.Context(t, 10*time.Second)
	authoritative, stale := store.New(), store.New()
	log := testutil.NewMemLog(authoritative)
	leader := registry.New(registry.Config{State: authoritative, Log: log})
	staleReg := registry.New(registry.Config{State: stale, Log: testutil.NewMemLog(stale)})
	reg := func(id string) {
		t.Helper()
		in := &registry.Instance{Service: "web", ID: id, Address: "10.0.0.1", Port: 80,
			Checks: []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute)}}}
		if _, err := leader.Register(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	// catchUp is a Consistent that brings the stale copy up to date
	// with the authoritative one, as a read barrier does.
	asked := 0
	catchUp := func(ctx context.Context) error {
		asked++
		_, all := authoritative.Instances("web")
		for _, in := range all {
			cp := *in
			if _, err := staleReg.Register(ctx, &cp); err != nil {
				return err
			}
		}
		return nil
	}
	key := func(id string) registry.Key { return registry.Key{Service: "web", ID: id} }

	reg("a")
	strict := registry.New(registry.Config{State: stale, Log: log})
	if _, err := strict.Deregister(ctx, key("a")); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Deregister against a copy said never to be behind = %v, want ErrNotFound", err)
	}

	follower := registry.New(registry.Config{State: stale, Log: log, Consistent: catchUp})
	if err := follower.Heartbeat(ctx, key("a")); err != nil || asked != 1 {
		t.Fatalf("Heartbeat against a stale copy = %v (asked %d), want it to catch up and find the instance", err, asked)
	}
	if err := follower.Heartbeat(ctx, key("a")); err != nil || asked != 1 {
		t.Fatalf("second Heartbeat = %v (asked %d), want no new round trip", err, asked)
	}
	reg("b")
	if _, err := follower.Deregister(ctx, key("b")); err != nil || asked != 2 {
		t.Fatalf("Deregister against a stale copy = %v (asked %d), want the log to remove it", err, asked)
	}
	if _, err := leader.Get(key("b")); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after the deregister the instance is still there: %v", err)
	}
	if _, err := follower.Deregister(ctx, key("none")); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Deregister of an instance nowhere = %v, want ErrNotFound", err)
	}
	reg("c")
	if _, err := follower.EnableMaintenance(ctx, key("c"), registry.Maintenance{CheckID: "_maint"}); err != nil {
		t.Fatalf("EnableMaintenance against a stale copy = %v", err)
	}

	// A deposed leader learns it in Consistent: the write answers that,
	// never "not found".
	reg("d")
	deposed := registry.New(registry.Config{State: store.New(), Log: log,
		Consistent: func(context.Context) error { return fmt.Errorf("confirm: %w", registry.ErrNotLeader) }})
	for name, op := range map[string]func() error{
		"deregister": func() error { _, err := deposed.Deregister(ctx, key("d")); return err },
		"heartbeat":  func() error { return deposed.Heartbeat(ctx, key("d")) },
		"update ttl": func() error {
			return deposed.UpdateTTL(ctx, key("d"), "ttl", registry.Passing, "")
		},
	} {
		if err := op(); registry.KindOf(err) != registry.KindNotLeader {
			t.Errorf("%s on a deposed leader = %v (kind %v), want not the leader", name, err, registry.KindOf(err))
		}
	}
}
