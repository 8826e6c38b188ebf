package health

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/testutil"
)

const testInterval = registry.Duration(50 * time.Millisecond)

var webKey = registry.Key{Service: "web", ID: "web-1"}

// activeCheck returns a check definition with test timings.
func activeCheck(typ registry.CheckType, target string, status registry.Health) registry.Check {
	return registry.Check{
		ID: string(typ), Type: typ, Target: target,
		Interval: testInterval, Timeout: registry.Duration(time.Second),
		FailuresBeforeCritical: 3, SuccessesBeforePassing: 1,
		Status: status,
	}
}

// TestThresholds drives an http check through scripted responses and checks
// which transitions are written, and after which response.
func TestThresholds(t *testing.T) {
	const (
		ok   = http.StatusOK
		busy = http.StatusTooManyRequests
		bad  = http.StatusInternalServerError
		gone = http.StatusServiceUnavailable
	)
	type write struct {
		status registry.Health
		after  int // responses served when it was written
	}
	tests := []struct {
		name       string
		start      registry.Health
		toCritical int
		toPassing  int
		script     []int // then the last code forever
		want       []write
	}{
		{name: "3 failures before critical", start: registry.Passing, toCritical: 3, toPassing: 1,
			script: []int{bad, bad, ok, bad, gone, bad},
			want:   []write{{registry.Critical, 6}}},
		{name: "2 successes before passing", start: registry.Critical, toCritical: 3, toPassing: 2,
			script: []int{ok, bad, ok, ok},
			want:   []write{{registry.Passing, 4}}},
		{name: "new check passes at first success", start: registry.Critical, toCritical: 3, toPassing: 1,
			script: []int{ok},
			want:   []write{{registry.Passing, 1}}},
		{name: "round trip", start: registry.Passing, toCritical: 3, toPassing: 2,
			script: []int{bad, bad, bad, ok, bad, ok, ok},
			want:   []write{{registry.Critical, 3}, {registry.Passing, 7}}},
		{name: "warning at once, then passing", start: registry.Passing, toCritical: 3, toPassing: 2,
			script: []int{busy, ok, ok},
			want:   []write{{registry.Warning, 1}, {registry.Passing, 3}}},
		{name: "warning ends a run of failures", start: registry.Passing, toCritical: 3, toPassing: 1,
			script: []int{bad, bad, busy, bad, bad, ok},
			want:   []write{{registry.Warning, 3}, {registry.Passing, 6}}},
		{name: "unchanged status is not written", start: registry.Passing, toCritical: 3, toPassing: 1,
			script: []int{ok, ok, bad, ok, bad, bad, ok},
			want:   nil},
		{name: "output-only changes are not written", start: registry.Critical, toCritical: 1, toPassing: 1,
			script: []int{bad, gone, bad},
			want:   nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testutil.Context(t, 20*time.Second)
			srv := newScriptServer(t, tc.script...)
			reg := newFakeRegistry()
			reg.onSet = srv.count
			c := activeCheck(registry.CheckHTTP, srv.URL+"/health", tc.start)
			c.FailuresBeforeCritical, c.SuccessesBeforePassing = tc.toCritical, tc.toPassing
			reg.put(registry.CheckRef{Key: webKey, Check: c})
			_, stop := startScheduler(t, ctx, reg)
			// Run past the script, then stop so nothing more is written.
			testutil.WaitFor(t, ctx, "script to be served", func() bool { return srv.count() >= len(tc.script)+3 })
			stop()

			var got []write
			for _, w := range reg.setCalls() {
				got = append(got, write{w.status, w.at})
				if w.key != webKey || w.id != c.ID {
					t.Errorf("write for %v/%s, want %v/%s", w.key, w.id, webKey, c.ID)
				}
				if !strings.HasPrefix(w.output, "HTTP GET "+srv.URL+"/health: ") {
					t.Errorf("output = %q", w.output)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("writes = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCheckTypes runs one check of each type through the scheduler: it
// turns passing, then critical when its target fails.
func TestCheckTypes(t *testing.T) {
	tests := []struct {
		name  string
		typ   registry.CheckType
		setup func(t *testing.T) (target string, fail func())
	}{
		{"http", registry.CheckHTTP, func(t *testing.T) (string, func()) {
			srv := newScriptServer(t, http.StatusOK)
			return srv.URL + "/health", func() { srv.set(http.StatusInternalServerError) }
		}},
		{"tcp", registry.CheckTCP, func(t *testing.T) (string, func()) {
			l := listen(t)
			return l.Addr().String(), func() { _ = l.Close() }
		}},
		{"grpc", registry.CheckGRPC, func(t *testing.T) (string, func()) {
			addr, hs := startGRPC(t)
			hs.SetServingStatus("web", healthpb.HealthCheckResponse_SERVING)
			return addr + "/web", func() { hs.SetServingStatus("web", healthpb.HealthCheckResponse_NOT_SERVING) }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testutil.Context(t, 20*time.Second)
			target, fail := tc.setup(t)
			reg := newFakeRegistry()
			c := activeCheck(tc.typ, target, registry.Critical)
			c.FailuresBeforeCritical = 2
			reg.put(registry.CheckRef{Key: webKey, Check: c})
			s, _ := startScheduler(t, ctx, reg)

			status := func(want registry.Health) func() bool {
				return func() bool { h, _ := reg.status(webKey, c.ID); return h == want }
			}
			testutil.WaitFor(t, ctx, "passing", status(registry.Passing))
			if got := running(s, string(tc.typ)); got != 1 {
				t.Errorf("running checks = %v, want 1", got)
			}
			fail()
			testutil.WaitFor(t, ctx, "critical", status(registry.Critical))
			calls := reg.setCalls()
			if len(calls) != 2 || calls[0].status != registry.Passing || calls[1].status != registry.Critical {
				t.Fatalf("writes = %+v, want passing then critical", calls)
			}
			if runs(s, string(tc.typ), "critical") < 2 {
				t.Errorf("critical runs = %v, want at least 2", runs(s, string(tc.typ), "critical"))
			}
			t.Logf("critical output: %s", calls[1].output)
		})
	}
}

func TestDeregisterAfter(t *testing.T) {
	t.Run("critical since long ago", func(t *testing.T) {
		ctx := testutil.Context(t, 20*time.Second)
		reg := newFakeRegistry()
		c := activeCheck(registry.CheckTCP, closedPort(t), registry.Critical)
		c.CriticalSince = time.Now().Add(-time.Hour)
		c.DeregisterAfter = registry.Duration(time.Minute)
		reg.put(registry.CheckRef{Key: webKey, Check: c})
		s, _ := startScheduler(t, ctx, reg)

		testutil.WaitFor(t, ctx, "deregistration", func() bool { return len(reg.deregCalls()) > 0 })
		if _, ok := reg.status(webKey, c.ID); ok {
			t.Error("instance still registered")
		}
		testutil.WaitFor(t, ctx, "check to stop", func() bool { return running(s, "tcp") == 0 })
		if d := reg.deregCalls(); len(d) != 1 || d[0].err != nil || d[0].key != webKey || d[0].id != c.ID {
			t.Errorf("deregistrations = %+v, want one of %v/%s", d, webKey, c.ID)
		}
		if calls := reg.setCalls(); len(calls) != 0 {
			t.Errorf("writes = %+v, want none", calls)
		}
	})

	t.Run("after turning critical", func(t *testing.T) {
		ctx := testutil.Context(t, 20*time.Second)
		reg := newFakeRegistry()
		c := activeCheck(registry.CheckTCP, closedPort(t), registry.Passing)
		c.FailuresBeforeCritical = 1
		c.DeregisterAfter = registry.Duration(200 * time.Millisecond)
		reg.put(registry.CheckRef{Key: webKey, Check: c})
		s, _ := startScheduler(t, ctx, reg)

		testutil.WaitFor(t, ctx, "deregistration", func() bool { return len(reg.deregCalls()) > 0 })
		testutil.WaitFor(t, ctx, "check to stop", func() bool { return running(s, "tcp") == 0 })
		calls, d := reg.setCalls(), reg.deregCalls()
		if len(calls) != 1 || calls[0].status != registry.Critical {
			t.Fatalf("writes = %+v, want critical", calls)
		}
		if len(d) != 1 || d[0].err != nil {
			t.Fatalf("deregistrations = %+v, want one", d)
		}
		if waited := d[0].time.Sub(calls[0].time); waited < c.DeregisterAfter.D() {
			t.Errorf("deregistered %v after turning critical, want at least %v", waited, c.DeregisterAfter.D())
		}
	})

	t.Run("not while passing", func(t *testing.T) {
		ctx := testutil.Context(t, 20*time.Second)
		srv := newScriptServer(t, http.StatusOK)
		reg := newFakeRegistry()
		c := activeCheck(registry.CheckHTTP, srv.URL, registry.Critical)
		c.CriticalSince = time.Now().Add(-time.Hour)
		c.DeregisterAfter = registry.Duration(time.Minute)
		reg.put(registry.CheckRef{Key: webKey, Check: c})
		startScheduler(t, ctx, reg)
		testutil.WaitFor(t, ctx, "several runs", func() bool { return srv.count() >= 4 })
		if d := reg.deregCalls(); len(d) != 0 {
			t.Errorf("deregistrations = %+v, want none", d)
		}
	})

	t.Run("conflict rewrites status once", func(t *testing.T) {
		ctx := testutil.Context(t, 20*time.Second)
		reg := newFakeRegistry()
		reg.deregErr = fmt.Errorf("check tcp is not critical: %w", registry.ErrConflict)
		c := activeCheck(registry.CheckTCP, closedPort(t), registry.Critical)
		c.FailuresBeforeCritical = 1
		c.CriticalSince = time.Now().Add(-time.Hour)
		c.DeregisterAfter = registry.Duration(time.Minute)
		reg.put(registry.CheckRef{Key: webKey, Check: c})
		s, _ := startScheduler(t, ctx, reg)

		testutil.WaitFor(t, ctx, "status rewritten", func() bool { return len(reg.setCalls()) > 0 })
		n := runs(s, "tcp", "critical")
		testutil.WaitFor(t, ctx, "more runs", func() bool { return runs(s, "tcp", "critical") >= n+3 })
		if calls := reg.setCalls(); len(calls) != 1 || calls[0].status != registry.Critical {
			t.Errorf("writes = %+v, want one critical", calls)
		}
		// The rewrite restarted the clock: no second attempt yet.
		if d := reg.deregCalls(); len(d) != 1 {
			t.Errorf("deregistrations = %+v, want the one conflict", d)
		}
	})
}

func TestCheckStops(t *testing.T) {
	t.Run("removed from registry", func(t *testing.T) {
		ctx := testutil.Context(t, 20*time.Second)
		srv := newScriptServer(t, http.StatusOK)
		reg := newFakeRegistry()
		c := activeCheck(registry.CheckHTTP, srv.URL, registry.Passing)
		reg.put(registry.CheckRef{Key: webKey, Check: c})
		s, _ := startScheduler(t, ctx, reg)
		testutil.WaitFor(t, ctx, "first run", func() bool { return srv.count() > 0 })
		reg.remove(webKey, c.ID, true)
		testutil.WaitFor(t, ctx, "check to stop", func() bool { return running(s, "http") == 0 })
		n := srv.count()
		// Another check running several times shows time passed.
		other := newScriptServer(t, http.StatusOK)
		reg.put(registry.CheckRef{Key: registry.Key{Service: "web", ID: "web-2"}, Check: activeCheck(registry.CheckHTTP, other.URL, registry.Passing)})
		testutil.WaitFor(t, ctx, "other check to run", func() bool { return other.count() >= 3 })
		if got := srv.count(); got > n {
			t.Errorf("removed check ran %d more times", got-n)
		}
	})

	t.Run("instance gone before the watch fires", func(t *testing.T) {
		ctx := testutil.Context(t, 20*time.Second)
		srv := newScriptServer(t, http.StatusOK)
		reg := newFakeRegistry()
		c := activeCheck(registry.CheckHTTP, srv.URL, registry.Passing)
		reg.put(registry.CheckRef{Key: webKey, Check: c})
		s, _ := startScheduler(t, ctx, reg)
		testutil.WaitFor(t, ctx, "first run", func() bool { return srv.count() > 0 })
		reg.remove(webKey, c.ID, false)
		srv.set(http.StatusInternalServerError) // a transition to write
		testutil.WaitFor(t, ctx, "check to stop", func() bool { return running(s, "http") == 0 })
	})
}

func TestRedefinition(t *testing.T) {
	ctx := testutil.Context(t, 20*time.Second)
	a, b := newScriptServer(t, http.StatusOK), newScriptServer(t, http.StatusOK)
	reg := newFakeRegistry()
	c := activeCheck(registry.CheckHTTP, a.URL, registry.Critical)
	reg.put(registry.CheckRef{Key: webKey, Check: c})
	s, _ := startScheduler(t, ctx, reg)
	testutil.WaitFor(t, ctx, "passing", func() bool { h, _ := reg.status(webKey, c.ID); return h == registry.Passing })

	// A status change alone is not a redefinition.
	c.Status = registry.Passing
	reg.put(registry.CheckRef{Key: webKey, Check: c})
	// A new target is.
	c.Target = b.URL
	reg.put(registry.CheckRef{Key: webKey, Check: c})
	testutil.WaitFor(t, ctx, "new target probed", func() bool { return b.count() >= 2 })
	n := a.count()
	testutil.WaitFor(t, ctx, "new target probed more", func() bool { return b.count() >= 5 })
	if got := a.count(); got != n {
		t.Errorf("old target probed %d more times after the change", got-n)
	}
	if got := running(s, "http"); got != 1 {
		t.Errorf("running checks = %v, want 1", got)
	}
	if calls := reg.setCalls(); len(calls) != 1 {
		t.Errorf("writes = %+v, want only the first passing", calls)
	}
}

// TestReRegistered: when the registry resets a check's status without
// changing its definition (the instance was registered again), the
// scheduler writes its status again.
func TestReRegistered(t *testing.T) {
	ctx := testutil.Context(t, 20*time.Second)
	srv := newScriptServer(t, http.StatusOK)
	reg := newFakeRegistry()
	c := activeCheck(registry.CheckHTTP, srv.URL, registry.Critical)
	reg.put(registry.CheckRef{Key: webKey, Check: c})
	startScheduler(t, ctx, reg)
	testutil.WaitFor(t, ctx, "passing", func() bool { h, _ := reg.status(webKey, c.ID); return h == registry.Passing })
	reg.put(registry.CheckRef{Key: webKey, Check: c}) // critical again
	testutil.WaitFor(t, ctx, "passing again", func() bool { return len(reg.setCalls()) == 2 })
	if h, _ := reg.status(webKey, c.ID); h != registry.Passing {
		t.Errorf("status = %s, want passing", h)
	}
}

func TestDefinition(t *testing.T) {
	base := activeCheck(registry.CheckHTTP, "http://127.0.0.1:1/", registry.Passing)
	tests := []struct {
		name   string
		change func(c *registry.Check)
		same   bool
	}{
		{"status", func(c *registry.Check) { c.Status = registry.Critical }, true},
		{"output", func(c *registry.Check) { c.Output = "x" }, true},
		{"critical since", func(c *registry.Check) { c.CriticalSince = time.Now() }, true},
		{"target", func(c *registry.Check) { c.Target = "http://127.0.0.1:2/" }, false},
		{"interval", func(c *registry.Check) { c.Interval = registry.Duration(time.Second) }, false},
		{"timeout", func(c *registry.Check) { c.Timeout = registry.Duration(time.Millisecond) }, false},
		{"thresholds", func(c *registry.Check) { c.FailuresBeforeCritical = 5 }, false},
		{"deregister after", func(c *registry.Check) { c.DeregisterAfter = registry.Duration(time.Hour) }, false},
		{"type", func(c *registry.Check) { c.Type = registry.CheckTCP }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.change(&c)
			if got := definition(c) == definition(base); got != tc.same {
				t.Errorf("same definition = %v, want %v", got, tc.same)
			}
		})
	}
}

// TestRunStops: cancelling Run stops every check goroutine, closes their
// connections and returns nil.
func TestRunStops(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ctx := testutil.Context(t, 20*time.Second)
	srv := newScriptServer(t, http.StatusOK)
	l := listen(t)
	addr, _, stopGRPC := startGRPCStop(t)
	reg := newFakeRegistry()
	for i, ref := range []registry.Check{
		activeCheck(registry.CheckHTTP, srv.URL, registry.Critical),
		activeCheck(registry.CheckTCP, l.Addr().String(), registry.Critical),
		activeCheck(registry.CheckGRPC, addr, registry.Critical),
	} {
		reg.put(registry.CheckRef{Key: registry.Key{Service: "web", ID: fmt.Sprint("web-", i)}, Check: ref})
	}
	s, stop := startScheduler(t, ctx, reg)
	testutil.WaitFor(t, ctx, "all passing", func() bool { return len(reg.setCalls()) == 3 })
	stop() // fails the test if Run does not return nil
	for _, typ := range []string{"http", "tcp", "grpc"} {
		if got := running(s, typ); got != 0 {
			t.Errorf("%s checks running after Run returned: %v", typ, got)
		}
	}
	// Stop the servers too, then nothing started by the test may remain.
	srv.Close()
	_ = l.Close()
	stopGRPC()
	goleak.VerifyNone(t, ignore)
}

func TestMetrics(t *testing.T) {
	ctx := testutil.Context(t, 20*time.Second)
	srv := newScriptServer(t, http.StatusOK)
	reg := newFakeRegistry()
	reg.put(registry.CheckRef{Key: webKey, Check: activeCheck(registry.CheckHTTP, srv.URL, registry.Critical)})
	promReg := prometheus.NewRegistry()
	startSchedulerConfig(t, ctx, Config{Registry: reg, Metrics: promReg})
	testutil.WaitFor(t, ctx, "passing", func() bool { return len(reg.setCalls()) == 1 })
	families, err := promReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	for _, want := range []string{
		"roster_health_check_runs_total",
		"roster_health_check_duration_seconds",
		"roster_health_checks_running",
		"roster_health_status_transitions_total",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("metric %s not registered; have %v", want, names)
		}
	}
}
