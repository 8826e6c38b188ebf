package grpcresolver_test

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/grpcresolver"
	"github.com/rosterhq/roster/client/internal/testagent"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/status"
)

// TestSpread dials roster:///svc with each policy over three real gRPC
// servers of weights 1, 2 and 3 (priorities 0, 0 and 1; the first one in
// zone z1 and version v1, the others in z2 and v2) and checks how the RPCs
// spread, with bounded statistical tolerances.
func TestSpread(t *testing.T) {
	a := testagent.Start(t)
	c := newClient(t, a)
	weights := []int{1, 2, 3}
	bs, _ := fleet(t, c, "spread", 3, func(i int, in *client.Instance) {
		in.Weight = weights[i]
		in.Priority = i / 2
		in.Zone, in.Meta = "z2", map[string]string{"version": "v2"}
		if i == 0 {
			in.Zone, in.Meta = "z1", map[string]string{"version": "v1"}
		}
	})
	r := fastResolver(t, c)

	tests := []struct {
		name  string
		query string
		n     int
		want  []float64 // share of each backend
		tol   float64
	}{
		{"round_robin", "balancer=round_robin", 300, []float64{1. / 3, 1. / 3, 1. / 3}, 0.1},
		{"random", "balancer=random", 600, []float64{1. / 3, 1. / 3, 1. / 3}, 0.25},
		{"weighted_random", "balancer=weighted_random", 1200, []float64{1. / 6, 2. / 6, 3. / 6}, 0.25},
		{"priority", "balancer=priority", 600, []float64{1. / 3, 2. / 3, 0}, 0.25},
		// The preferred zone takes everything while it has an instance.
		{"zone", "zone=z1&balancer=random", 200, []float64{1, 0, 0}, 0},
		{"zone_z2", "zone=z2", 300, []float64{0, .5, .5}, 0.15},
		// A 90/10 split between versions (then round robin within v2).
		{"subsets", "subset=90:version=v1&subset=10:version=v2", 1000, []float64{.9, .05, .05}, 0.4},
		{"filter", "meta=version=v2&balancer=weighted_random", 1000, []float64{0, .4, .6}, 0.15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, r, "roster:///spread?"+tc.query)
			var serving []*backend
			for i, b := range bs {
				if tc.want[i] > 0 {
					serving = append(serving, b)
				}
			}
			warm(t, conn, serving)
			got, err := calls(ctxT(t), conn, bs, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			for i := range bs {
				want := tc.want[i] * float64(tc.n)
				if want == 0 && got[i] != 0 || !within(got[i], want, tc.tol) {
					t.Errorf("%s served %d of %d calls, want %.0f ±%.0f%% (all: %v)", bs[i].name, got[i], tc.n, want, tc.tol*100, got)
				}
			}
		})
	}

	// gRPC's own round_robin over the resolver's addresses, instead of
	// the roster policy.
	t.Run("grpc_round_robin", func(t *testing.T) {
		conn := dial(t, r, "roster:///spread?balancer=priority", grpc.WithDisableServiceConfig(),
			grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
		warm(t, conn, bs)
		got, err := calls(ctxT(t), conn, bs, 300)
		if err != nil {
			t.Fatal(err)
		}
		for i := range bs {
			if !within(got[i], 100, 0.1) {
				t.Fatalf("want 100 calls each (gRPC's round robin ignores weights and priorities): %v", got)
			}
		}
	})

	t.Run("ring_hash", func(t *testing.T) {
		conn := dial(t, r, "roster:///spread?balancer=ring_hash&hash_header=user-id")
		warm(t, conn, bs)
		used := map[int]bool{}
		for k := range 40 {
			ctx := metadata.AppendToOutgoingContext(ctxT(t), "user-id", fmt.Sprintf("user-%d", k))
			if k%2 == 1 {
				ctx = grpcresolver.WithKey(ctxT(t), fmt.Sprintf("user-%d", k))
			}
			got, err := calls(ctx, conn, bs, 3)
			if err != nil {
				t.Fatal(err)
			}
			hit := -1
			for i, n := range got {
				if n == 3 {
					hit = i
				}
			}
			if hit < 0 {
				t.Fatalf("key user-%d went to more than one backend: %v", k, got)
			}
			used[hit] = true
		}
		if len(used) < 2 {
			t.Fatalf("40 keys all went to one backend: %v", used)
		}
	})

	t.Run("least_loaded", func(t *testing.T) {
		conn := dial(t, r, "roster:///spread?balancer=least_loaded")
		warm(t, conn, bs)
		// Hold bs[0]'s calls and send calls in the background until one
		// is stuck there.
		hold := make(chan struct{})
		bs[0].hold.Store(hold)
		var wg sync.WaitGroup
		defer func() {
			close(hold)
			wg.Wait()
		}()
		// One call at a time: each either finishes (another backend
		// served it) or is held at bs[0].
		stuck := bs[0].calls.Load()
		for sent := 0; bs[0].calls.Load() == stuck; sent++ {
			if sent == 50 {
				t.Fatal("none of 50 calls reached the held backend")
			}
			done := make(chan struct{})
			wg.Go(func() {
				defer close(done)
				_ = call(ctxT(t), conn)
			})
			eventually(t, 10*time.Second, func() (bool, string) {
				select {
				case <-done:
					return true, ""
				default:
					return bs[0].calls.Load() > stuck, "a call neither finished nor reached the held backend"
				}
			})
		}
		// With one request in flight there, the power of two choices never
		// picks it again while the others are idle.
		got, err := calls(ctxT(t), conn, bs, 200)
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != 0 || got[1]+got[2] != 200 {
			t.Fatalf("the busy backend got calls: %v", got)
		}
		// The in-flight counts are the SDK's, shared with HTTP users of the
		// same resolver.
		tg, err := r.Target(ctxT(t), "spread", client.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		for _, e := range tg.Endpoints() {
			if want := int64(0); e.ID == bs[0].name {
				want = 1
				if e.InFlight() < want {
					t.Errorf("%s: in flight %d, want ≥ %d", e.ID, e.InFlight(), want)
				}
			} else if e.InFlight() != want {
				t.Errorf("%s: in flight %d, want %d", e.ID, e.InFlight(), want)
			}
		}
	})
}

// TestTrafficMovesOff checks that traffic leaves an instance whose health
// check turns critical and an instance that deregisters, and that calls
// keep flowing to the known instances while the agent is down.
func TestTrafficMovesOff(t *testing.T) {
	a := testagent.Start(t)
	c := newClient(t, a)
	bs, regs := fleet(t, c, "moves", 4, func(i int, in *client.Instance) {
		// The agent checks each server with the gRPC health protocol.
		in.Checks = []client.Check{{Type: "grpc", Target: fmt.Sprintf("127.0.0.1:%d", in.Port),
			Interval: client.Duration(100 * time.Millisecond), FailuresBeforeCritical: 1}}
	})
	r := fastResolver(t, c)
	conn := dial(t, r, "roster:///moves")
	warm(t, conn, bs)

	movedOff := func(i int) {
		t.Helper()
		eventually(t, 10*time.Second, func() (bool, string) {
			got, err := calls(ctxT(t), conn, bs, 20)
			return got[i] == 0 && err == nil, fmt.Sprintf("%s still served %v, err %v", bs[i].name, got, err)
		})
		got, err := calls(ctxT(t), conn, bs, 60)
		if err != nil || got[i] != 0 {
			t.Fatalf("after moving off %s: served %v, err %v", bs[i].name, got, err)
		}
	}

	// Critical: the server says NOT_SERVING to the agent's health check.
	bs[0].health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	movedOff(0)
	// Deregistered.
	if err := regs[1].Deregister(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	movedOff(1)

	// The agent stops: the last known set keeps serving, spread as before.
	a.Kill()
	eventually(t, 10*time.Second, func() (bool, string) {
		return r.Stale("moves"), "the resolver did not notice the agent is down"
	})
	got, err := calls(ctxT(t), conn, bs, 100)
	if err != nil {
		t.Fatalf("a call failed while the agent was down: %v", err)
	}
	if got[0]+got[1] != 0 || !within(got[2], 50, 0.2) || !within(got[3], 50, 0.2) {
		t.Fatalf("while the agent is down, want the 100 calls on %s and %s evenly: %v", bs[2].name, bs[3].name, got)
	}
}

// TestOutlierEjection checks that RPC failures feed the SDK's passive
// outlier detection: a server that answers Unavailable is ejected after
// five consecutive failures and gets no more calls.
func TestOutlierEjection(t *testing.T) {
	a := testagent.Start(t)
	c := newClient(t, a)
	bs, _ := fleet(t, c, "outlier", 3, nil)
	r := fastResolver(t, c)
	conn := dial(t, r, "roster:///outlier")
	warm(t, conn, bs)

	bs[0].fail.Store(true)
	got, _ := calls(ctxT(t), conn, bs, 60)
	if got[0] < 5 || got[0] > 15 {
		t.Fatalf("the failing backend served %d calls before ejection, want 5-15: %v", got[0], got)
	}
	got, err := calls(ctxT(t), conn, bs, 90)
	if err != nil || got[0] != 0 {
		t.Fatalf("after ejection: served %v, err %v", got, err)
	}
	// Application errors do not count: NotFound is an answer, not a fault.
	tg, err := r.Target(ctxT(t), "outlier", client.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	for range 20 {
		_, err := healthpb.NewHealthClient(conn).Check(outgoingTest(ctxT(t)), &healthpb.HealthCheckRequest{Service: "unknown"})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("want NotFound for an unknown health service, got %v", err)
		}
	}
	for _, e := range tg.Endpoints() {
		if e.ID != bs[0].name && !e.Available() {
			t.Fatalf("%s ejected by application errors", e.ID)
		}
	}
}

// TestNoInstancesThenRegistered: a service without instances fails calls
// at once with a clear error; the first registration brings it up.
func TestNoInstancesThenRegistered(t *testing.T) {
	a := testagent.Start(t)
	c := newClient(t, a)
	r := fastResolver(t, c)
	conn := dial(t, r, "roster:///ghost")
	err := call(ctxT(t), conn)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), `no passing instance of "ghost"`) {
		t.Fatalf("want Unavailable naming the service, got %v", err)
	}
	bs, _ := fleet(t, c, "ghost", 1, nil)
	eventually(t, 10*time.Second, func() (bool, string) {
		err := call(ctxT(t), conn)
		return err == nil, fmt.Sprint(err)
	})
	if bs[0].calls.Load() == 0 {
		t.Fatal("the call did not reach the backend")
	}
}

// TestAgentDownAtStart: while the agent cannot be reached before anything
// is known, calls fail with the resolver's error; once it is up, they
// work without redialling.
func TestAgentDownAtStart(t *testing.T) {
	a := testagent.Start(t)
	a.Kill()
	c := newClient(t, a)
	r := fastResolver(t, c)
	conn := dial(t, r, "roster:///late")
	err := call(ctxT(t), conn)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "roster resolver") {
		t.Fatalf("want Unavailable from the resolver, got %v", err)
	}
	a.Restart()
	bs, _ := fleet(t, c, "late", 1, nil)
	eventually(t, 20*time.Second, func() (bool, string) {
		err := call(ctxT(t), conn)
		return err == nil, fmt.Sprint(err)
	})
	if bs[0].calls.Load() == 0 {
		t.Fatal("the call did not reach the backend")
	}
}

// TestBadTarget: a malformed target fails the calls with the parse error.
func TestBadTarget(t *testing.T) {
	a := testagent.Start(t)
	r := fastResolver(t, newClient(t, a))
	conn := dial(t, r, "roster:///svc?balancer=fastest")
	if err := call(ctxT(t), conn); err == nil || !strings.Contains(err.Error(), "balancer=") {
		t.Fatalf("want the parse error, got %v", err)
	}
	// The roster policy behind another resolver says what is wrong.
	b := newBackend(t, "other")
	conn, err := grpc.NewClient(fmt.Sprintf("passthrough:///127.0.0.1:%d", b.port),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"roster":{}}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := call(ctxT(t), conn); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "roster:///service") {
		t.Fatalf("want Unavailable naming roster:///service, got %v", err)
	}
}

// fakeCC records what the resolver pushes.
type fakeCC struct {
	resolver.ClientConn // nil: a call to anything else panics
	mu                  sync.Mutex
	states              []resolver.State
	errs                []error
	sc                  string
}

func (f *fakeCC) UpdateState(s resolver.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states = append(f.states, s)
	return nil
}

func (f *fakeCC) ReportError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

func (f *fakeCC) ParseServiceConfig(js string) *serviceconfig.ParseResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sc = js
	return &serviceconfig.ParseResult{}
}

func (f *fakeCC) snapshot() []resolver.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]resolver.State(nil), f.states...)
}

// TestResolverState checks what the resolver pushes: the filtered
// instances with their attributes, a new state on every change of the
// target's set and none when the set did not change, and no empty state
// while the agent is down.
func TestResolverState(t *testing.T) {
	a := testagent.Start(t)
	c := newClient(t, a)
	put := func(id string, port int, edit func(*client.Instance)) {
		t.Helper()
		in := client.Instance{Service: "attrs", ID: id, Address: "127.0.0.1", Port: port}
		if edit != nil {
			edit(&in)
		}
		if _, err := c.Put(ctxT(t), &in); err != nil {
			t.Fatal(err)
		}
	}
	put("a", 9001, func(in *client.Instance) {
		in.Tags, in.Weight, in.Priority, in.Zone, in.Meta = []string{"grpc"}, 3, 2, "z1", map[string]string{"version": "v2"}
	})
	put("b", 9002, func(in *client.Instance) { in.Tags, in.Zone = []string{"grpc"}, "z2" })
	put("c", 9003, nil) // no tag: filtered out

	r := fastResolver(t, c)
	u, _ := url.Parse("roster:///attrs?tag=grpc&zone=Z1")
	cc := &fakeCC{}
	res, err := grpcresolver.NewBuilder(r).Build(resolver.Target{URL: *u}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	last := func() resolver.State {
		s := cc.snapshot()
		if len(s) == 0 {
			return resolver.State{}
		}
		return s[len(s)-1]
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		return len(last().Endpoints) == 2, fmt.Sprintf("states %v", cc.snapshot())
	})
	st := last()
	if !strings.Contains(cc.sc, `"roster"`) || st.ServiceConfig == nil {
		t.Errorf("the service config does not select the roster balancer: %q", cc.sc)
	}
	if len(st.Addresses) != 2 {
		t.Fatalf("want 2 addresses, got %v", st.Addresses)
	}
	for i, ep := range st.Endpoints {
		e := grpcresolver.FromAttributes(ep.Attributes)
		if e == nil || len(ep.Addresses) != 1 || ep.Addresses[0].Addr != e.Addr || st.Addresses[i].Addr != e.Addr {
			t.Fatalf("endpoint %d: %v, attributes %v", i, ep, e)
		}
		switch e.ID {
		case "a":
			if e.Addr != "127.0.0.1:9001" || e.Weight != 3 || e.Priority != 2 || e.Zone != "z1" || e.Meta["version"] != "v2" {
				t.Errorf("a: %+v", e)
			}
		case "b":
			if e.Weight != 1 || e.Zone != "z2" {
				t.Errorf("b: %+v", e)
			}
		default:
			t.Errorf("unexpected instance %s (filtered by tag)", e.ID)
		}
	}

	put("d", 9004, func(in *client.Instance) { in.Tags = []string{"grpc"} })
	eventually(t, 10*time.Second, func() (bool, string) {
		return len(last().Endpoints) == 3, fmt.Sprintf("last state %v", last())
	})
	pushed := len(cc.snapshot())
	// A change of the service outside the target's filter is not pushed.
	put("e", 9005, nil)
	eventually(t, 10*time.Second, func() (bool, string) {
		ins, err := r.Instances(ctxT(t), "attrs")
		return err == nil && len(ins) == 5, fmt.Sprintf("cache: %d instances, %v", len(ins), err)
	})
	if n := len(cc.snapshot()); n != pushed {
		t.Fatalf("a change outside the filter pushed %d states", n-pushed)
	}

	// The agent stops: nothing is pushed, the last set stays.
	a.Kill()
	eventually(t, 10*time.Second, func() (bool, string) { return r.Stale("attrs"), "not stale" })
	res.ResolveNow(resolver.ResolveNowOptions{})
	for _, s := range cc.snapshot() {
		if len(s.Endpoints) == 0 {
			t.Fatal("an empty state was pushed")
		}
	}
	if n := len(cc.snapshot()); n != pushed || len(last().Endpoints) != 3 {
		t.Fatalf("states after the agent stopped: %d new, last %v", n-pushed, last())
	}
}

// TestCloseStopsPushing: after Close the resolver pushes nothing.
func TestCloseStopsPushing(t *testing.T) {
	a := testagent.Start(t)
	c := newClient(t, a)
	bs, _ := fleet(t, c, "closing", 1, nil)
	r := fastResolver(t, c)
	u, _ := url.Parse("roster:///closing")
	cc := &fakeCC{}
	res, err := grpcresolver.NewBuilder(r).Build(resolver.Target{URL: *u}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() (bool, string) { return len(cc.snapshot()) == 1, "no state" })
	done := make(chan struct{})
	go func() { res.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s")
	}
	fleet(t, c, "closing", 1, func(_ int, in *client.Instance) { in.ID = bs[0].name + "-2" })
	eventually(t, 10*time.Second, func() (bool, string) {
		ins, err := r.Instances(ctxT(t), "closing")
		return err == nil && len(ins) == 2, "cache did not see the new instance"
	})
	if n := len(cc.snapshot()); n != 1 {
		t.Fatalf("%d states pushed after Close", n-1)
	}
}
