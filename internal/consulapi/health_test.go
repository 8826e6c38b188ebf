package consulapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/rosterhq/roster/internal/registry"
)

func entryIDs(t *testing.T, b []byte) string {
	t.Helper()
	var es []*api.ServiceEntry
	decodeJSON(t, b, &es)
	ids := []string{}
	for _, e := range es {
		ids = append(ids, e.Service.ID)
	}
	return strings.Join(ids, ",")
}

func TestHealthServiceFilters(t *testing.T) {
	s := newStack(t)
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":80,"Tags":["v1","blue"],"Meta":{"zone":"a"},"Check":{"TTL":"30s","Status":"passing"}}`)
	s.registerConsul(t, `{"Name":"web","ID":"w2","Port":80,"Tags":["v2","blue"],"Meta":{"zone":"b"},"Check":{"TTL":"30s","Status":"warning"}}`)
	s.registerConsul(t, `{"Name":"web","ID":"w3","Port":80,"Tags":["v2"],"Meta":{"zone":"b"},"Check":{"TTL":"30s"}}`)
	s.registerConsul(t, `{"Name":"web","ID":"w4","Port":80}`)
	tests := []struct{ query, want string }{
		{"", "w1,w2,w3,w4"},
		{"passing", "w1,w4"},
		{"passing=true", "w1,w4"},
		{"passing=1", "w1,w4"},
		{"passing=false", "w1,w2,w3,w4"},
		{"tag=blue", "w1,w2"},
		{"tag=blue&tag=v2", "w2"},
		// Consul matches tags without regard to case.
		{"tag=BLUE", "w1,w2"},
		{"tag=Blue&tag=V2", "w2"},
		{"tag=blue&passing", "w1"},
		{"filter=" + url.QueryEscape(`Service.Meta.zone == "b"`), "w2,w3"},
		{"filter=" + url.QueryEscape(`"v2" in Service.Tags and Service.ID != w3`), "w2"},
		{"filter=" + url.QueryEscape(`Service.Meta.nokey == "x"`), ""},
		{"filter=" + url.QueryEscape(`Node.Node == "node-1" and Service.Port == 80`), "w1,w2,w3,w4"},
		{"node-meta=consul-network-segment:", "w1,w2,w3,w4"},
		{"node-meta=rack:r1", ""},
		{"near=_agent&stale&dc=dc1&cached&token=x", "w1,w2,w3,w4"},
		{"ns=team-a", ""},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			h := s.mustDo(t, 200, "GET", "/v1/health/service/web?"+tc.query, "")
			if got := entryIDs(t, h.body); got != tc.want {
				t.Errorf("health: %q, want %q", got, tc.want)
			}
			h.index(t)
			if strings.Contains(tc.query, "passing") || strings.Contains(tc.query, "filter") {
				return // the catalog has no ?passing, and other selectors
			}
			// The catalog answers the same members in the same order
			// (Traefik pairs the two by position).
			c := s.mustDo(t, 200, "GET", "/v1/catalog/service/web?"+tc.query, "")
			var cs []*api.CatalogService
			decodeJSON(t, c.body, &cs)
			ids := []string{}
			for _, x := range cs {
				ids = append(ids, x.ServiceID)
			}
			if got := strings.Join(ids, ","); got != tc.want {
				t.Errorf("catalog: %q, want %q", got, tc.want)
			}
		})
	}
}

func TestQueryErrors(t *testing.T) {
	s := newStack(t)
	tests := []struct {
		path string
		code int
		want string
	}{
		{"/v1/health/service/web?stale&consistent", 400, "Cannot specify ?stale with ?consistent, conflicting semantics."},
		{"/v1/health/service/web?wait=abc&index=1", 400, "Invalid wait time"},
		{"/v1/health/service/web?index=-1", 400, "Invalid index"},
		{"/v1/health/service/web?passing=maybe", 400, "Invalid value for ?passing"},
		{"/v1/health/service/web?dc=dc2", 500, "No path to datacenter"},
		{"/v1/catalog/services?dc=eu", 500, "No path to datacenter"},
		{"/v1/health/service/web?filter=" + url.QueryEscape("Service.Port =="), 400, "Failed to create boolexpr evaluator"},
		{"/v1/health/service/web?node-meta=rack", 400, "Invalid node-meta"},
		{"/v1/health/service/", 400, "Missing service name"},
		{"/v1/catalog/service/", 400, "Missing service name"},
		{"/v1/health/state/broken", 400, "Invalid check state"},
		{"/v1/kv/config/app", 501, "roster does not implement /v1/kv/config/app"},
		{"/v1/session/list", 501, "roster does not implement"},
		{"/v1/acl/tokens", 501, "roster does not implement"},
		{"/v1/connect/ca/roots", 501, "roster does not implement"},
		{"/v1/query", 501, "roster does not implement"},
		{"/v1/agent/join/10.0.0.1", 501, "roster does not implement"},
		{"/v1/catalog/gateway-services/x", 501, "roster does not implement"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := s.do(t, "GET", tc.path, "")
			if r.code != tc.code || !strings.HasPrefix(r.text(), tc.want) {
				t.Errorf("GET %s = %d %q, want %d %q", tc.path, r.code, r.text(), tc.code, tc.want)
			}
		})
	}
	// The native API is untouched.
	s.mustDo(t, 200, "GET", "/v1/services", "")
}

func TestReadHeaders(t *testing.T) {
	s := newStack(t)
	for _, p := range []string{"/v1/health/service/none", "/v1/catalog/services", "/v1/catalog/service/none",
		"/v1/health/state/any", "/v1/health/checks/none", "/v1/catalog/nodes", "/v1/agent/services"} {
		r := s.mustDo(t, 200, "GET", p, "")
		r.index(t) // never 0, even on an empty registry
		h := r.header
		if h.Get("X-Consul-KnownLeader") != "true" || h.Get("X-Consul-LastContact") != "0" || h.Get("X-Consul-Effective-Consistency") != "leader" {
			t.Errorf("GET %s headers: %v", p, h)
		}
	}
	r := s.mustDo(t, 200, "GET", "/v1/health/service/none?stale", "")
	if r.header.Get("X-Consul-Effective-Consistency") != "stale" {
		t.Errorf("?stale: %v", r.header)
	}
	if r := s.mustDo(t, 200, "GET", "/v1/health/service/none?pretty", ""); r.text() != "[]" {
		t.Errorf("unknown service: %q, want []", r.text())
	}
}

// blockingGet starts a GET in the background.
func (s *stack) blockingGet(t *testing.T, path string) <-chan response {
	ch := make(chan response, 1)
	go func() { ch <- s.do(t, "GET", path, "") }()
	return ch
}

func TestBlockingHealthService(t *testing.T) {
	s := newStack(t)
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":80,"Check":{"TTL":"30s"}}`)
	s.registerConsul(t, `{"Name":"db","ID":"d1","Port":80}`)
	idx := s.mustDo(t, 200, "GET", "/v1/health/service/web", "").index(t)

	// A change to another service does not wake a watcher of web.
	start := time.Now()
	ch := s.blockingGet(t, fmt.Sprintf("/v1/health/service/web?index=%d&wait=300ms", idx))
	s.registerConsul(t, `{"Name":"db","ID":"d2","Port":80}`)
	r := <-ch
	if el := time.Since(start); el < 300*time.Millisecond || r.index(t) != idx {
		t.Errorf("woken by another service: after %v with index %d (was %d)", el, r.index(t), idx)
	}

	// A change to web returns at once, with a greater index.
	ch = s.blockingGet(t, fmt.Sprintf("/v1/health/service/web?index=%d&wait=1m&passing", idx))
	s.waitBlocked(t)
	start = time.Now()
	s.mustDo(t, 200, "PUT", "/v1/agent/check/pass/service:w1", "")
	select {
	case r := <-ch:
		if r.index(t) <= idx || entryIDs(t, r.body) != "w1" {
			t.Errorf("after pass: index %d (was %d), entries %s", r.index(t), idx, r.body)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("returned %v after the change", el)
		}
		idx = r.index(t)
	case <-time.After(20 * time.Second):
		t.Fatal("blocking query did not return on a change")
	}

	// Removing the last instance moves the index forward, never back.
	s.mustDo(t, 200, "PUT", "/v1/agent/service/deregister/w1", "")
	r = s.mustDo(t, 200, "GET", fmt.Sprintf("/v1/health/service/web?index=%d&wait=10s", idx), "")
	if r.index(t) <= idx || r.text() != "[]" {
		t.Errorf("after deregistering: index %d (was %d), %s", r.index(t), idx, r.body)
	}

	// An index from another history (ahead of the registry) returns at
	// once, so the client starts over.
	start = time.Now()
	s.mustDo(t, 200, "GET", "/v1/health/service/web?index=999999&wait=30s", "")
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("an index ahead of the registry blocked for %v", el)
	}
}

func TestBlockingCatalogServices(t *testing.T) {
	s := newStack(t)
	idx := s.mustDo(t, 200, "GET", "/v1/catalog/services", "").index(t)
	ch := s.blockingGet(t, fmt.Sprintf("/v1/catalog/services?index=%d&wait=1m", idx))
	s.waitBlocked(t)
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":80,"Tags":["x"]}`)
	select {
	case r := <-ch:
		if r.index(t) <= idx || r.text() != `{"web":["x"]}` {
			t.Errorf("catalog/services after a registration: %d %s", r.index(t), r.body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("catalog/services did not return on a change")
	}
}

func TestHealthState(t *testing.T) {
	s := newStack(t)
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":80,"Checks":[{"TTL":"30s","Status":"passing"},{"TTL":"0s","HTTP":"http://10.0.0.1/","Interval":"1s","Status":"warning"}]}`)
	s.registerConsul(t, `{"Name":"db","ID":"d1","Port":80,"Check":{"TTL":"30s"}}`)
	tests := []struct{ state, want string }{
		{"any", "serfHealth,service:w1:1,service:w1:2,service:d1"},
		{"passing", "serfHealth,service:w1:1"},
		{"warning", "service:w1:2"},
		{"critical", "service:d1"},
	}
	for _, tc := range tests {
		var hc []*api.HealthCheck
		decodeJSON(t, s.mustDo(t, 200, "GET", "/v1/health/state/"+tc.state, "").body, &hc)
		ids := []string{}
		for _, c := range hc {
			ids = append(ids, c.CheckID)
		}
		// Services come by name, so db before web.
		got := strings.Join(ids, ",")
		want := tc.want
		if tc.state == "any" {
			want = "serfHealth,service:d1,service:w1:1,service:w1:2"
		}
		if got != want {
			t.Errorf("state %s: %s, want %s", tc.state, got, want)
		}
	}
	var hc []*api.HealthCheck
	decodeJSON(t, s.mustDo(t, 200, "GET", "/v1/health/node/other", "").body, &hc)
	if len(hc) != 0 {
		t.Errorf("another node has checks: %v", hc)
	}
	decodeJSON(t, s.mustDo(t, 200, "GET", "/v1/health/checks/web?filter="+url.QueryEscape(`Status == warning`), "").body, &hc)
	if len(hc) != 1 || hc[0].CheckID != "service:w1:2" {
		t.Errorf("health/checks/web filtered: %+v", hc)
	}
}

func TestCatalogRegister(t *testing.T) {
	s := newStack(t)
	r := s.mustDo(t, 200, "PUT", "/v1/catalog/register",
		`{"Node":"node-1","Address":"10.1.2.3","Service":{"Service":"ext","ID":"ext-1","Address":"192.0.2.10","Port":443,"Tags":["external"]}}`)
	if r.text() != "true" {
		t.Errorf("register answered %q, want true", r.text())
	}
	if in := s.get(t, registry.Key{Service: "ext", ID: "ext-1"}); in.Address != "192.0.2.10" || in.Port != 443 {
		t.Errorf("ext-1 = %+v", in)
	}
	bad := []struct{ body, want string }{
		{`{"Node":"other","Address":"192.0.2.1","Service":{"Service":"x","Port":1}}`, "Invalid node"},
		{`{"Node":"node-1","Service":{"Service":"x","Port":1},"Check":{"CheckID":"c","Status":"passing"}}`, "Invalid check"},
		{`{"Service":{"Service":"x","Port":1}}`, "Missing node name"},
	}
	for _, b := range bad {
		if r := s.do(t, "PUT", "/v1/catalog/register", b.body); r.code != 400 || !strings.HasPrefix(r.text(), b.want) {
			t.Errorf("register %s = %d %q, want 400 %q", b.body, r.code, r.text(), b.want)
		}
	}
	if r := s.mustDo(t, 200, "PUT", "/v1/catalog/deregister", `{"Node":"node-1","ServiceID":"ext-1"}`); r.text() != "true" {
		t.Errorf("deregister answered %q", r.text())
	}
	if _, err := s.reg.Get(registry.Key{Service: "ext", ID: "ext-1"}); err == nil {
		t.Error("ext-1 still registered")
	}
	s.mustDo(t, 200, "PUT", "/v1/catalog/deregister", `{"Node":"node-1","ServiceID":"ext-1"}`)
	s.mustDo(t, 400, "PUT", "/v1/catalog/deregister", `{"Node":"node-1"}`)
	s.mustDo(t, http.StatusMethodNotAllowed, "GET", "/v1/catalog/register", "")
}
