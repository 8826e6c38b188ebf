package e2e

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/rosterhq/roster/internal/testutil"
)

// TestConsulGoClient drives the agent with HashiCorp's own Go client:
// registration with TTL and HTTP checks (against a real HTTP server on
// loopback), TTL updates, blocking health queries that return early on a
// change, the catalog, and deregistration.
func TestConsulGoClient(t *testing.T) {
	ctx := bound(t)
	a := startAgent(t, testutil.AgentOptions{Dev: true, Args: []string{"-node-name", "e2e-node", "-dns-addr", "off"}})
	c, err := consul.NewClient(&consul.Config{Address: a.Addr})
	if err != nil {
		t.Fatal(err)
	}
	q := (&consul.QueryOptions{}).WithContext(ctx)

	// The HTTP check's target: healthy until told otherwise.
	var failing atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(target.Close)

	agent := c.Agent()
	if err := agent.ServiceRegister(&consul.AgentServiceRegistration{
		ID: "web-1", Name: "web", Address: "127.0.0.1", Port: 8080, Tags: []string{"v1"},
		Meta:  map[string]string{"version": "v1"},
		Check: &consul.AgentServiceCheck{TTL: "30s", DeregisterCriticalServiceAfter: "10m"},
	}); err != nil {
		t.Fatalf("register web-1: %v", err)
	}
	if err := agent.ServiceRegister(&consul.AgentServiceRegistration{
		ID: "web-2", Name: "web", Address: "127.0.0.1", Port: 8081, Tags: []string{"v2"},
		Check: &consul.AgentServiceCheck{HTTP: target.URL + "/health", Interval: "200ms", Timeout: "1s"},
	}); err != nil {
		t.Fatalf("register web-2: %v", err)
	}

	health := c.Health()
	passingIDs := func(opts *consul.QueryOptions) ([]string, uint64) {
		t.Helper()
		entries, meta, err := health.Service("web", "", true, opts)
		if err != nil {
			t.Fatalf("health service: %v", err)
		}
		if meta.LastIndex == 0 || !meta.KnownLeader {
			t.Fatalf("query meta %+v: want an index and a known leader", meta)
		}
		ids := []string{}
		for _, e := range entries {
			ids = append(ids, e.Service.ID)
		}
		return ids, meta.LastIndex
	}

	// The HTTP check passes on its own; the TTL check waits for a pass.
	testutil.Eventually(t, 20*time.Second, func() (bool, string) {
		ids, _ := passingIDs(q)
		return slices.Equal(ids, []string{"web-2"}), "passing web instances: " + strings.Join(ids, ",")
	})
	ids, idx := passingIDs(q)

	// A blocking query returns early when web-1's TTL check passes.
	type result struct {
		ids   []string
		index uint64
		took  time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		entries, meta, err := health.Service("web", "", true, (&consul.QueryOptions{WaitIndex: idx, WaitTime: time.Minute}).WithContext(ctx))
		if err != nil {
			t.Errorf("blocking query: %v", err)
			done <- result{}
			return
		}
		r := result{index: meta.LastIndex, took: time.Since(start)}
		for _, e := range entries {
			r.ids = append(r.ids, e.Service.ID)
		}
		done <- r
	}()
	if err := agent.PassTTL("service:web-1", "started"); err != nil {
		t.Fatalf("pass ttl: %v", err)
	}
	select {
	case r := <-done:
		if !slices.Equal(r.ids, []string{"web-1", "web-2"}) || r.index <= idx || r.took > 30*time.Second {
			t.Fatalf("blocking query returned %v at index %d (was %d) after %v", r.ids, r.index, idx, r.took)
		}
	case <-ctx.Done():
		t.Fatalf("blocking query did not return after the TTL pass (passing before: %v)", ids)
	}

	// TTL updates through the client's other verbs.
	if err := agent.UpdateTTL("service:web-1", "slow", consul.HealthWarning); err != nil {
		t.Fatalf("update ttl: %v", err)
	}
	checks, err := agent.Checks()
	if err != nil {
		t.Fatal(err)
	}
	if ch := checks["service:web-1"]; ch == nil || ch.Status != consul.HealthWarning || ch.Output != "slow" || ch.ServiceID != "web-1" {
		t.Fatalf("agent checks: service:web-1 = %+v", ch)
	}
	var se consul.StatusError
	if err := agent.PassTTL("service:nope", ""); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("pass of an unknown check: %v, want a 404", err)
	}
	if err := agent.PassTTL("service:web-2", ""); !errors.As(err, &se) || se.Code != http.StatusInternalServerError {
		t.Errorf("pass of an HTTP check: %v, want a 500", err)
	}

	// The HTTP check turns critical when its target fails.
	failing.Store(true)
	testutil.Eventually(t, 20*time.Second, func() (bool, string) {
		entries, _, err := health.Service("web", "", false, q)
		if err != nil {
			return false, err.Error()
		}
		for _, e := range entries {
			if e.Service.ID == "web-2" {
				return e.Checks.AggregatedStatus() == consul.HealthCritical, "web-2 is " + e.Checks.AggregatedStatus()
			}
		}
		return false, "web-2 missing"
	})

	// The catalog.
	svcs, meta, err := c.Catalog().Services(q)
	if err != nil || meta.LastIndex == 0 {
		t.Fatalf("catalog services: %v %+v", err, meta)
	}
	if tags := svcs["web"]; !slices.Equal(tags, []string{"v1", "v2"}) {
		t.Errorf("catalog services: %v", svcs)
	}
	nodes, _, err := c.Catalog().Service("web", "v1", q)
	if err != nil || len(nodes) != 1 || nodes[0].ServiceID != "web-1" || nodes[0].Node != "e2e-node" || nodes[0].ServiceMeta["version"] != "v1" {
		t.Fatalf("catalog service web tag v1: %v %+v", err, nodes)
	}
	cnodes, _, err := c.Catalog().Nodes(q)
	if err != nil || len(cnodes) != 1 || cnodes[0].Node != "e2e-node" || cnodes[0].Datacenter != "dc1" {
		t.Fatalf("catalog nodes: %v %+v", err, cnodes)
	}
	self, err := agent.Self()
	if err != nil || self["Config"]["Datacenter"] != "dc1" || self["Config"]["NodeName"] != "e2e-node" {
		t.Fatalf("agent self: %v %v", err, self["Config"])
	}
	if leader, err := c.Status().Leader(); err != nil || leader == "" {
		t.Fatalf("status leader: %q %v", leader, err)
	}
	if svc, _, err := agent.Service("web-1", q); err != nil || svc.Port != 8080 || svc.ContentHash == "" {
		t.Fatalf("agent service web-1: %v %+v", err, svc)
	}

	// Deregistration empties the service; a blocking catalog query sees it.
	_, meta, err = c.Catalog().Services(q)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"web-1", "web-2"} {
		if err := agent.ServiceDeregister(id); err != nil {
			t.Fatalf("deregister %s: %v", id, err)
		}
	}
	svcs, meta2, err := c.Catalog().Services((&consul.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 30 * time.Second}).WithContext(ctx))
	if err != nil || len(svcs) != 0 || meta2.LastIndex <= meta.LastIndex {
		t.Fatalf("catalog after deregistering: %v %v index %d (was %d)", err, svcs, meta2.LastIndex, meta.LastIndex)
	}
	if err := agent.ServiceDeregister("web-1"); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("deregistering again: %v, want a 404", err)
	}
	// KV is not served: an error, never an empty success.
	if _, _, err := c.KV().Get("config", q); err == nil {
		t.Error("KV get succeeded")
	}
}

// TestConsulServiceMaintenance: the Go client's maintenance toggle takes
// an instance out of passing answers, the state survives kill -9 and a
// restart (it went through the log), and a re-registration keeps it.
func TestConsulServiceMaintenance(t *testing.T) {
	ctx := bound(t)
	a := startAgent(t, testutil.AgentOptions{Args: []string{"-dns-addr", "off"}})
	client := func() *consul.Client {
		c, err := consul.NewClient(&consul.Config{Address: a.Addr})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	q := (&consul.QueryOptions{}).WithContext(ctx)
	reg := &consul.AgentServiceRegistration{ID: "web-1", Name: "web", Address: "127.0.0.1", Port: 8080,
		Check: &consul.AgentServiceCheck{TTL: "10m", Status: consul.HealthPassing}}
	if err := client().Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	maintenance := func(c *consul.Client) (passing int, notes string) {
		t.Helper()
		entries, _, err := c.Health().Service("web", "", false, q)
		if err != nil || len(entries) != 1 {
			t.Fatalf("health service: %v %v", err, entries)
		}
		for _, ch := range entries[0].Checks {
			if ch.CheckID == "_service_maintenance:web-1" && ch.Status == consul.HealthCritical {
				notes = ch.Notes
			}
		}
		pass, _, err := c.Health().Service("web", "", true, q)
		if err != nil {
			t.Fatal(err)
		}
		return len(pass), notes
	}
	if err := client().Agent().EnableServiceMaintenance("web-1", "kernel upgrade"); err != nil {
		t.Fatalf("enable maintenance: %v", err)
	}
	if n, notes := maintenance(client()); n != 0 || notes != "kernel upgrade" {
		t.Fatalf("in maintenance: %d passing, notes %q", n, notes)
	}

	a.Kill()
	a.Restart(t)
	c := client()
	if n, notes := maintenance(c); n != 0 || notes != "kernel upgrade" {
		t.Fatalf("after kill -9 and restart: %d passing, notes %q", n, notes)
	}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	if n, notes := maintenance(c); n != 0 || notes != "kernel upgrade" {
		t.Fatalf("after re-registering: %d passing, notes %q", n, notes)
	}
	if err := c.Agent().DisableServiceMaintenance("web-1"); err != nil {
		t.Fatalf("disable maintenance: %v", err)
	}
	if n, notes := maintenance(c); n != 1 || notes != "" {
		t.Fatalf("after disabling: %d passing, notes %q", n, notes)
	}
	var se consul.StatusError
	if err := c.Agent().EnableServiceMaintenance("nope", ""); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("unknown service: %v, want a 404", err)
	}
}
