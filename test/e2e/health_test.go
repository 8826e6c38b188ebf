package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// waitHealth polls an instance until its health is want.
func waitHealth(t *testing.T, a *testutil.Agent, svc, id, want string, timeout time.Duration) instance {
	t.Helper()
	var in instance
	testutil.Eventually(t, timeout, func() (bool, string) {
		var status int
		status, in = getInstance(t, a, svc, id)
		if status != http.StatusOK {
			t.Fatalf("GET %s/%s: %d while waiting for %s", svc, id, status, want)
		}
		return in.Health == want, fmt.Sprintf("%s/%s is %s, want %s (checks %+v)", svc, id, in.Health, want, in.Checks)
	})
	return in
}

// TestTTLAndHealthChecksE2E checks TTL leases, deregister_after and the
// active http and tcp checks against servers in the test process.
func TestTTLAndHealthChecksE2E(t *testing.T) {
	a := startAgent(t, testutil.AgentOptions{})

	t.Run("ttl lapses and a heartbeat revives", func(t *testing.T) {
		t.Parallel()
		in := register(t, a, "ttl", "t-1", map[string]any{"address": "10.0.0.1", "port": 80, "ttl": "1s"})
		if in.Health != "passing" {
			t.Fatalf("a TTL instance starts %s, want passing (the registration is a heartbeat)", in.Health)
		}
		start := time.Now()
		in = waitHealth(t, a, "ttl", "t-1", "critical", 10*time.Second)
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Errorf("critical after %v, before its 1s TTL", d)
		}
		if len(in.Checks) != 1 || in.Checks[0].Type != "ttl" || !strings.Contains(in.Checks[0].Output, "TTL expired") {
			t.Errorf("checks of the lapsed instance: %+v", in.Checks)
		}
		testutil.DoJSON(t, "PUT", instanceURL(a, "ttl", "t-1")+"/heartbeat", nil, http.StatusNoContent, nil)
		waitHealth(t, a, "ttl", "t-1", "passing", 5*time.Second)

		// Batch heartbeats keep it passing and name what they do not know.
		var res struct {
			Renewed  int `json:"renewed"`
			NotFound []struct {
				Service, ID string
			} `json:"not_found"`
		}
		testutil.DoJSON(t, "PUT", a.URL+"/v1/heartbeats", map[string]any{"instances": []map[string]string{
			{"service": "ttl", "id": "t-1"}, {"service": "ttl", "id": "nobody"},
		}}, http.StatusOK, &res)
		if res.Renewed != 1 || len(res.NotFound) != 1 || res.NotFound[0].ID != "nobody" {
			t.Errorf("batch heartbeat answered %+v", res)
		}
	})

	t.Run("deregister_after removes a lapsed instance", func(t *testing.T) {
		t.Parallel()
		register(t, a, "reap", "r-1", map[string]any{"address": "10.0.0.2", "port": 80, "ttl": "1s", "deregister_after": "2s"})
		start := time.Now()
		testutil.Eventually(t, 15*time.Second, func() (bool, string) {
			status, in := getInstance(t, a, "reap", "r-1")
			return status == http.StatusNotFound, fmt.Sprintf("GET reap/r-1: %d %s", status, in.Health)
		})
		if d := time.Since(start); d < 2*time.Second {
			t.Errorf("removed %v after registration, before TTL + deregister_after (3s)", d)
		}
		svcs, _ := listServices(t, a)
		for _, s := range svcs.Services {
			if s.Name == "reap" {
				t.Errorf("service reap still listed with %d instances", s.Instances)
			}
		}
	})

	t.Run("http check", func(t *testing.T) {
		t.Parallel()
		var code, failures atomic.Int32
		code.Store(http.StatusOK)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := int(code.Load())
			if c >= 500 {
				failures.Add(1)
			}
			w.WriteHeader(c)
			fmt.Fprintf(w, "status %d\n", c)
		}))
		defer srv.Close()

		in := register(t, a, "web", "h-1", map[string]any{"address": "127.0.0.1", "port": 80,
			"checks": []map[string]any{{"type": "http", "target": srv.URL + "/health", "interval": "200ms"}}})
		if in.Health != "critical" {
			t.Errorf("a new http check starts %s, want critical until it passes", in.Health)
		}
		waitHealth(t, a, "web", "h-1", "passing", 10*time.Second)

		code.Store(http.StatusInternalServerError)
		in = waitHealth(t, a, "web", "h-1", "critical", 10*time.Second)
		if n := failures.Load(); n < 3 {
			t.Errorf("critical after %d failed probes, want at least 3 (failures_before_critical)", n)
		}
		if out := in.Checks[0].Output; !strings.Contains(out, "500") {
			t.Errorf("output of the failing check: %q", out)
		}
		if n, _, _ := listInstances(t, a, "web", "status=passing"); len(n.Instances) != 0 {
			t.Errorf("status=passing lists the critical instance")
		}

		code.Store(http.StatusTooManyRequests)
		waitHealth(t, a, "web", "h-1", "warning", 10*time.Second)
		if n, _, _ := listInstances(t, a, "web", "status=warning"); len(n.Instances) != 1 {
			t.Errorf("status=warning does not list the warning instance")
		}
		code.Store(http.StatusOK)
		waitHealth(t, a, "web", "h-1", "passing", 10*time.Second)
	})

	t.Run("tcp check", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		defer ln.Close()
		register(t, a, "db", "d-1", map[string]any{"address": "127.0.0.1", "port": 5432,
			"checks": []map[string]any{{"type": "tcp", "target": ln.Addr().String(), "interval": "200ms"}}})
		waitHealth(t, a, "db", "d-1", "passing", 10*time.Second)
		ln.Close()
		in := waitHealth(t, a, "db", "d-1", "critical", 10*time.Second)
		if out := in.Checks[0].Output; !strings.Contains(out, "TCP connect") {
			t.Errorf("output of the failing tcp check: %q", out)
		}
	})
}
