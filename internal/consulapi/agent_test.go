package consulapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/consulapi"
	"github.com/rosterhq/roster/internal/registry"
)

func TestRegisterTranslation(t *testing.T) {
	tests := []struct {
		name  string
		query string
		body  string
		key   registry.Key
		check func(t *testing.T, in *registry.Instance)
	}{
		{name: "python-consul 0.7 lower-case keys", key: registry.Key{Service: "redis", ID: "redis"},
			body: `{"name":"redis","port":6379,"tags":["primary"],"enabletagoverride":true,
				"check":{"tcp":"127.0.0.1:6379","interval":"10s","timeout":"1s","DeregisterCriticalServiceAfter":"90m"}}`,
			check: func(t *testing.T, in *registry.Instance) {
				c := in.Checks[0]
				if in.Address != "10.1.2.3" || in.Port != 6379 || c.ID != "service:redis" || c.Type != registry.CheckTCP ||
					c.Target != "127.0.0.1:6379" || c.Timeout.D() != time.Second || c.DeregisterAfter.D() != 90*time.Minute ||
					c.Status != registry.Critical || c.FailuresBeforeCritical != 1 {
					t.Errorf("got %+v", in)
				}
			}},
		{name: "snake_case keys and nanosecond durations", key: registry.Key{Service: "web", ID: "w1"},
			body: `{"service_name":"Web","service_id":"w1","address":"10.0.0.1","port":80,
				"check":{"check_id":"web-ttl","ttl":15000000000,"deregister_critical_service_after":"1m","status":"passing"}}`,
			check: func(t *testing.T, in *registry.Instance) {
				c := in.Checks[0]
				if in.Service != "web" || c.ID != "web-ttl" || c.TTL.D() != 15*time.Second || c.DeregisterAfter.D() != time.Minute || c.Status != registry.Passing {
					t.Errorf("got %+v", in)
				}
			}},
		{name: "Check and Checks are numbered in order", key: registry.Key{Service: "db", ID: "db-1"},
			body: `{"Name":"db","ID":"db-1","Address":"db.internal","Port":5432,
				"Check":{"HTTP":"http://db.internal:8080/health","Interval":"3s","Method":"GET","FailuresBeforeCritical":3,"SuccessBeforePassing":2},
				"Checks":[{"GRPC":"db.internal:5433/db","Interval":"1s","Timeout":"5s"},{"TTL":"1m"}]}`,
			check: func(t *testing.T, in *registry.Instance) {
				want := []string{"service:db-1:1", "service:db-1:2", "service:db-1:3"}
				for i, c := range in.Checks {
					if c.ID != want[i] {
						t.Errorf("check %d ID %q, want %q", i, c.ID, want[i])
					}
				}
				if c := in.Checks[0]; c.FailuresBeforeCritical != 3 || c.SuccessesBeforePassing != 2 || c.Timeout.D() != 3*time.Second {
					t.Errorf("http check %+v", c)
				}
				if c := in.Checks[1]; c.Type != registry.CheckGRPC || c.Timeout.D() != time.Second {
					t.Errorf("grpc check %+v: timeout is capped at the interval", c)
				}
			}},
		{name: "weights and meta", key: registry.Key{Service: "api", ID: "api"},
			body: `{"Name":"api","Port":1,"Weights":{"Passing":7,"Warning":2},"Meta":{"version":"v3","team":"core"}}`,
			check: func(t *testing.T, in *registry.Instance) {
				if in.Weight != 7 || in.Meta["version"] != "v3" || len(in.Checks) != 0 || in.Health != registry.Passing {
					t.Errorf("got %+v", in)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t)
			s.registerConsul(t, tc.body)
			tc.check(t, s.get(t, tc.key))
		})
	}
}

func TestRegisterRejects(t *testing.T) {
	tests := []struct {
		name string
		body string
		code int
		// want must appear in the plain-text answer.
		want string
	}{
		{"missing name", `{"Port":80}`, 400, "Missing service name"},
		{"unspecified address", `{"Name":"web","Address":"0.0.0.0","Port":80}`, 400, "Invalid service address"},
		{"reserved meta", `{"Name":"web","Port":80,"Meta":{"consul-x":"1"}}`, 400, "Invalid Service Meta"},
		{"zero passing weight", `{"Name":"web","Port":80,"Weights":{"Passing":0,"Warning":1}}`, 400, "Invalid Weights"},
		{"bad JSON", `{"Name":`, 400, "Request decode failed"},
		{"wrong type", `{"Name":"web","Port":"eighty"}`, 400, "Request decode failed: Port: must be an integer"},
		{"bad duration", `{"Name":"web","Port":80,"Check":{"TTL":"soon"}}`, 400, "Check.TTL: must be a duration"},
		{"port out of range", `{"Name":"web","Port":70000}`, 400, "Invalid service: Port: must be between 1 and 65535"},
		{"bad name", `{"Name":"web_api","Port":80}`, 400, "Invalid service: Name: must be a DNS label"},
		{"script check", `{"Name":"web","Port":80,"Check":{"Args":["/bin/true"],"Interval":"10s"}}`, 400, "Invalid check: Check.ScriptArgs: not supported"},
		{"no check kind", `{"Name":"web","Port":80,"Checks":[{"Name":"x"}]}`, 400, "Invalid check: Checks[0]: one of TTL, HTTP, TCP or GRPC is required"},
		{"two kinds", `{"Name":"web","Port":80,"Check":{"TTL":"10s","HTTP":"http://x/","Interval":"1s"}}`, 400, "only one of TTL, HTTP may be set"},
		{"missing interval", `{"Name":"web","Port":80,"Check":{"HTTP":"http://10.0.0.1/health"}}`, 400, "Check.Interval: required for HTTP checks"},
		{"bad status", `{"Name":"web","Port":80,"Check":{"TTL":"10s","Status":"maintenance"}}`, 400, "Status for checks must 'passing', 'warning', 'critical'"},
		{"header", `{"Name":"web","Port":80,"Check":{"HTTP":"http://h/","Interval":"1s","Header":{"Host":["x"]}}}`, 400, "Check.Header: not supported"},
		{"bad http target", `{"Name":"web","Port":80,"Checks":[{"TTL":"5s"},{"HTTP":"ftp://h/","Interval":"1s"}]}`, 400, "Invalid check: Checks[1].HTTP/TCP/GRPC: must be an http"},
		{"two ttls", `{"Name":"web","Port":80,"Checks":[{"TTL":"5s"},{"TTL":"6s"}]}`, 400, "Checks[1].TTL: at most one ttl check"},
		{"connect", `{"Name":"web","Port":80,"Connect":{"SidecarService":{}}}`, 400, "Connect: Connect is not supported"},
		{"proxy kind", `{"Name":"web","Port":80,"Kind":"connect-proxy"}`, 400, "Kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t)
			r := s.do(t, "PUT", "/v1/agent/service/register", tc.body)
			if r.code != tc.code || !strings.Contains(r.text(), tc.want) {
				t.Fatalf("register = %d %q, want %d containing %q", r.code, r.text(), tc.code, tc.want)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			if _, svcs, _ := s.reg.Services(t.Context(), 0, 0); len(svcs) != 0 {
				t.Errorf("a rejected registration was applied: %v", svcs)
			}
		})
	}
}

func TestReregistration(t *testing.T) {
	s := newStack(t)
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":80,"Checks":[{"TTL":"10s"},{"HTTP":"http://10.0.0.1/","Interval":"5s"}]}`)
	// Consul keeps checks the new definition does not name...
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":81,"Check":{"TCP":"10.0.0.1:81","Interval":"5s"}}`)
	in := s.get(t, registry.Key{Service: "web", ID: "w1"})
	if in.Port != 81 || len(in.Checks) != 3 {
		t.Fatalf("after re-registration: port %d, checks %+v; want 81 and three checks", in.Port, in.Checks)
	}
	// ...unless asked to replace them.
	s.mustDo(t, 200, "PUT", "/v1/agent/service/register?replace-existing-checks", `{"Name":"web","ID":"w1","Port":81,"Check":{"TTL":"10s"}}`)
	in = s.get(t, registry.Key{Service: "web", ID: "w1"})
	if len(in.Checks) != 1 || in.Checks[0].ID != "service:w1" {
		t.Fatalf("after replace-existing-checks: %+v", in.Checks)
	}
	// An ID is unique on the node: registering it under another name
	// moves it.
	s.registerConsul(t, `{"Name":"api","ID":"w1","Port":82}`)
	if _, err := s.reg.Get(registry.Key{Service: "web", ID: "w1"}); err == nil {
		t.Error("w1 is still an instance of web")
	}
	if in := s.get(t, registry.Key{Service: "api", ID: "w1"}); in.Port != 82 {
		t.Errorf("api/w1 = %+v", in)
	}
}

func TestDeregister(t *testing.T) {
	s := newStack(t)
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":80}`)
	s.registerConsul(t, `{"Name":"web","ID":"w2","Port":80}`)
	r := s.mustDo(t, 404, "PUT", "/v1/agent/service/deregister/web", "")
	if want := `Unknown service ID "web". Ensure that the service ID is passed, not the service name.`; r.text() != want {
		t.Errorf("unknown ID: %q, want %q", r.text(), want)
	}
	if r := s.mustDo(t, 200, "PUT", "/v1/agent/service/deregister/w1", ""); len(r.body) != 0 {
		t.Errorf("deregister answered a body %q", r.body)
	}
	// python-consul 0.7 deregisters with GET; HEAD writes nothing.
	s.mustDo(t, http.StatusMethodNotAllowed, "HEAD", "/v1/agent/service/deregister/w2", "")
	s.get(t, registry.Key{Service: "web", ID: "w2"})
	// A browser's GET (an image tag on another site) writes nothing.
	for _, hdr := range [][2]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "https://evil.example"}} {
		req, err := http.NewRequestWithContext(t.Context(), "GET", s.srv.URL+"/v1/agent/service/deregister/w2", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(hdr[0], hdr[1])
		resp, err := s.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET deregister with %s: %d, want 403", hdr[0], resp.StatusCode)
		}
	}
	s.get(t, registry.Key{Service: "web", ID: "w2"})
	s.mustDo(t, 200, "GET", "/v1/agent/service/deregister/w2", "")
	if _, svcs, _ := s.reg.Services(t.Context(), 0, 0); len(svcs) != 0 {
		t.Errorf("services left: %v", svcs)
	}
}

func TestGETWritesOff(t *testing.T) {
	s := newStack(t, func(c *consulapi.Config) { c.GETWrites = false })
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":80,"Check":{"TTL":"10s"}}`)
	for _, p := range []string{"/v1/agent/service/deregister/w1", "/v1/agent/check/pass/service:w1"} {
		r := s.mustDo(t, http.StatusMethodNotAllowed, "GET", p, "")
		if r.text() != "method GET not allowed" || r.header.Get("Allow") != "PUT" {
			t.Errorf("GET %s = %q (Allow %q)", p, r.text(), r.header.Get("Allow"))
		}
	}
	s.mustDo(t, http.StatusMethodNotAllowed, "POST", "/v1/agent/service/register", `{"Name":"x","Port":1}`)
	s.get(t, registry.Key{Service: "web", ID: "w1"})
}

func TestCheckUpdates(t *testing.T) {
	s := newStack(t)
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":80,"Checks":[{"TTL":"30s"},{"HTTP":"http://10.0.0.1/","Interval":"5s"}]}`)
	s.register(t, &registry.Instance{Service: "api", ID: "a:1", Address: "10.0.0.2", Port: 80,
		Checks: []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute)}}})
	s.registerConsul(t, `{"Name":"db","ID":"d1","Port":80,"Check":{"CheckID":"db-ttl","TTL":"30s"}}`)

	ttl := func(key registry.Key, id string) registry.Check {
		t.Helper()
		return *s.get(t, key).Check(id)
	}
	w1 := registry.Key{Service: "web", ID: "w1"}
	if c := ttl(w1, "service:w1:1"); c.Status != registry.Critical {
		t.Fatalf("a TTL check starts %q, want critical as in Consul", c.Status)
	}
	steps := []struct {
		method, path, body string
		key                registry.Key
		checkID            string
		status             registry.Health
		output             string
	}{
		{"PUT", "/v1/agent/check/pass/service:w1:1?note=ok", "", w1, "service:w1:1", registry.Passing, "ok"},
		{"PUT", "/v1/agent/check/warn/service:w1:1", "", w1, "service:w1:1", registry.Warning, ""},
		{"GET", "/v1/agent/check/fail/service:w1:1?note=down", "", w1, "service:w1:1", registry.Critical, "down"},
		{"PUT", "/v1/agent/check/update/service:w1:1", `{"Status":"passing","Output":"fine"}`, w1, "service:w1:1", registry.Passing, "fine"},
		// A native instance's TTL check, with a ':' in the instance ID.
		{"PUT", "/v1/agent/check/warn/service:a:1:ttl", "", registry.Key{Service: "api", ID: "a:1"}, "ttl", registry.Warning, ""},
		// A CheckID the client chose.
		{"PUT", "/v1/agent/check/pass/db-ttl", "", registry.Key{Service: "db", ID: "d1"}, "db-ttl", registry.Passing, ""},
		{"PUT", "/v1/agent/check/fail/service:d1:db-ttl", "", registry.Key{Service: "db", ID: "d1"}, "db-ttl", registry.Critical, ""},
	}
	for _, st := range steps {
		if r := s.do(t, st.method, st.path, st.body); r.code != 200 || len(r.body) != 0 {
			t.Fatalf("%s %s = %d %q, want 200 and no body", st.method, st.path, r.code, r.body)
		}
		if c := ttl(st.key, st.checkID); c.Status != st.status || c.Output != st.output {
			t.Errorf("after %s: %q %q, want %q %q", st.path, c.Status, c.Output, st.status, st.output)
		}
	}

	// The same report again is a heartbeat: nothing is written.
	before := s.st.LastIndex()
	for range 5 {
		s.mustDo(t, 200, "PUT", "/v1/agent/check/pass/db-ttl", "")
		s.mustDo(t, 200, "PUT", "/v1/agent/check/pass/service:w1:1?note=fine", "")
	}
	if after := s.st.LastIndex(); after != before+1 {
		t.Errorf("10 reports, one of them a change (db-ttl was critical), wrote %d entries", after-before)
	}

	errs := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"PUT", "/v1/agent/check/pass/service:nope", "", 404, `Unknown check ID "service:nope". Ensure that the check ID is passed, not the check name.`},
		{"PUT", "/v1/agent/check/pass/service:w1:2", "", 500, `CheckID "service:w1:2" does not have associated TTL`},
		{"PUT", "/v1/agent/check/update/service:w1:1", `{"Status":"broken"}`, 400, `Invalid check status: 'broken'`},
		{"PUT", "/v1/agent/check/update/service:w1:1", `{"Status":1}`, 400, `Request decode failed: Status: must be a string, not a number`},
	}
	for _, e := range errs {
		r := s.do(t, e.method, e.path, e.body)
		if r.code != e.code || r.text() != e.want {
			t.Errorf("%s %s = %d %q, want %d %q", e.method, e.path, r.code, r.text(), e.code, e.want)
		}
	}
}

func TestAgentServiceHashBlocking(t *testing.T) {
	s := newStack(t)
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":80}`)
	r := s.mustDo(t, 200, "GET", "/v1/agent/service/w1", "")
	hash := r.header.Get("X-Consul-ContentHash")
	if hash == "" {
		t.Fatal("no X-Consul-ContentHash")
	}
	start := time.Now()
	r = s.mustDo(t, 200, "GET", "/v1/agent/service/w1?hash="+hash+"&wait=200ms", "")
	if time.Since(start) < 150*time.Millisecond || r.header.Get("X-Consul-ContentHash") != hash {
		t.Errorf("unchanged: returned after %v with hash %q", time.Since(start), r.header.Get("X-Consul-ContentHash"))
	}
	done := make(chan response, 1)
	go func() { done <- s.do(t, "GET", "/v1/agent/service/w1?hash="+hash+"&wait=30s", "") }()
	s.waitBlocked(t)
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":81}`)
	select {
	case r := <-done:
		if r.header.Get("X-Consul-ContentHash") == hash || !strings.Contains(string(r.body), `"Port":81`) {
			t.Errorf("after a change: %s (hash %q)", r.body, r.header.Get("X-Consul-ContentHash"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hash-blocking query did not return on a change")
	}
	s.mustDo(t, 404, "GET", "/v1/agent/service/nope", "")
}
