package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/rosterhq/roster/internal/testutil"
)

// TestBadInput sends requests the agent must refuse, checks the status and
// that the error names the offending field, and then that nothing was
// written.
func TestBadInput(t *testing.T) {
	a := startAgent(t, testutil.AgentOptions{})
	register(t, a, "web", "base", map[string]any{"address": "10.0.0.1", "port": 80, "tags": []string{"a"}})
	register(t, a, "web", "leased", map[string]any{"address": "10.0.0.2", "port": 80, "ttl": "1h"})

	// Weight 0 is not an error: it means the default weight, 1.
	t.Run("weight 0 is the default", func(t *testing.T) {
		in := register(t, a, "web", "zero", map[string]any{"address": "10.0.0.3", "port": 80, "weight": 0})
		if in.Weight != 1 {
			t.Errorf("weight 0 stored as %d, want 1", in.Weight)
		}
	})

	before := fullState(t, a)

	valid := `{"address":"10.0.0.9","port":80}`
	inst := "/v1/services/web/instances/x"
	big := `{"address":"10.0.0.9","port":80,"revision":"` + strings.Repeat("a", 300<<10) + `"}`
	tests := []struct {
		name, method, path, body string
		header                   map[string]string
		wantStatus               int
		wantFields               []string // each must be named in "fields"
	}{
		{name: "invalid json", method: "PUT", path: inst, body: `{"address":`, wantStatus: 400, wantFields: []string{"body"}},
		{name: "not json", method: "PUT", path: inst, body: `address=10.0.0.1`, wantStatus: 400, wantFields: []string{"body"}},
		{name: "empty body", method: "PUT", path: inst, body: ``, wantStatus: 400, wantFields: []string{"body"}},
		{name: "trailing data", method: "PUT", path: inst, body: valid + `{}`, wantStatus: 400, wantFields: []string{"body"}},
		{name: "unknown field", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"colour":"red"}`, wantStatus: 400, wantFields: []string{"colour"}},
		{name: "port as string", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":"80"}`, wantStatus: 400, wantFields: []string{"port"}},
		{name: "port 0", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":0}`, wantStatus: 400, wantFields: []string{"port"}},
		{name: "port 65536", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":65536}`, wantStatus: 400, wantFields: []string{"port"}},
		{name: "missing address", method: "PUT", path: inst, body: `{"port":80}`, wantStatus: 400, wantFields: []string{"address"}},
		{name: "bad address", method: "PUT", path: inst, body: `{"address":"10.0.0.1/24","port":80}`, wantStatus: 400, wantFields: []string{"address"}},
		{name: "ipv6 with zone", method: "PUT", path: inst, body: `{"address":"fe80::1%eth0","port":80}`, wantStatus: 400, wantFields: []string{"address"}},
		{name: "service with underscore", method: "PUT", path: "/v1/services/bad_name/instances/x", body: valid, wantStatus: 400, wantFields: []string{"service"}},
		{name: "service of 64 characters", method: "PUT", path: "/v1/services/" + strings.Repeat("s", 64) + "/instances/x", body: valid, wantStatus: 400, wantFields: []string{"service"}},
		{name: "service differs from path", method: "PUT", path: inst, body: `{"service":"api","address":"10.0.0.9","port":80}`, wantStatus: 400, wantFields: []string{"service"}},
		{name: "id differs from path", method: "PUT", path: inst, body: `{"id":"y","address":"10.0.0.9","port":80}`, wantStatus: 400, wantFields: []string{"id"}},
		{name: "bad id", method: "POST", path: "/v1/services/web/instances", body: `{"id":"a b","address":"10.0.0.9","port":80}`, wantStatus: 400, wantFields: []string{"id"}},
		{name: "weight 101", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"weight":101}`, wantStatus: 400, wantFields: []string{"weight"}},
		{name: "negative weight", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"weight":-1}`, wantStatus: 400, wantFields: []string{"weight"}},
		{name: "priority 65536", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"priority":65536}`, wantStatus: 400, wantFields: []string{"priority"}},
		{name: "bad zone", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"zone":"eu_1"}`, wantStatus: 400, wantFields: []string{"zone"}},
		{name: "empty tag", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"tags":["a",""]}`, wantStatus: 400, wantFields: []string{"tags[1]"}},
		{name: "bad meta key", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"meta":{"a b":"c"}}`, wantStatus: 400, wantFields: []string{"meta.a b"}},
		{name: "bad ttl", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"ttl":"soon"}`, wantStatus: 400, wantFields: []string{"ttl"}},
		{name: "ttl under 1s", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"ttl":"10ms"}`, wantStatus: 400, wantFields: []string{"checks[0].ttl"}},
		{name: "deregister_after without ttl", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"deregister_after":"1m"}`, wantStatus: 400, wantFields: []string{"ttl"}},
		{name: "several fields at once", method: "PUT", path: inst, body: `{"address":"","port":0,"weight":101}`, wantStatus: 400, wantFields: []string{"address", "port", "weight"}},
		{name: "unknown check type", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"checks":[{"type":"ping","target":"10.0.0.9"}]}`, wantStatus: 400, wantFields: []string{"checks[0].type"}},
		{name: "check interval too short", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"checks":[{"type":"http","target":"http://10.0.0.9/","interval":"10ms"}]}`, wantStatus: 400, wantFields: []string{"checks[0].interval"}},
		{name: "http check without url", method: "PUT", path: inst, body: `{"address":"10.0.0.9","port":80,"checks":[{"type":"http","target":"10.0.0.9:80"}]}`, wantStatus: 400, wantFields: []string{"checks[0].target"}},
		{name: "body over 256 KiB", method: "PUT", path: inst, body: big, wantStatus: 400, wantFields: []string{"body"}},
		{name: "wait=abc", method: "GET", path: "/v1/services/web/instances?index=1&wait=abc", wantStatus: 400, wantFields: []string{"wait"}},
		{name: "negative wait", method: "GET", path: "/v1/services/web/instances?index=1&wait=-1s", wantStatus: 400, wantFields: []string{"wait"}},
		{name: "index=-1", method: "GET", path: "/v1/services/web/instances?index=-1", wantStatus: 400, wantFields: []string{"index"}},
		{name: "status=bogus", method: "GET", path: "/v1/services/web/instances?status=bogus", wantStatus: 400, wantFields: []string{"status"}},
		{name: "meta filter without =", method: "GET", path: "/v1/services/web/instances?meta=v", wantStatus: 400, wantFields: []string{"meta"}},
		{name: "services wait=abc", method: "GET", path: "/v1/services?index=1&wait=abc", wantStatus: 400, wantFields: []string{"wait"}},
		{name: "watch with bad Last-Event-ID", method: "GET", path: "/v1/services/web/watch", header: map[string]string{"Last-Event-ID": "yesterday"}, wantStatus: 400, wantFields: []string{"Last-Event-ID"}},
		{name: "heartbeat for unknown instance", method: "PUT", path: "/v1/services/web/instances/nobody/heartbeat", wantStatus: 404},
		{name: "heartbeat for instance without ttl", method: "PUT", path: "/v1/services/web/instances/base/heartbeat", wantStatus: 409},
		{name: "get unknown instance", method: "GET", path: "/v1/services/web/instances/nobody", wantStatus: 404},
		{name: "deregister unknown instance", method: "DELETE", path: "/v1/services/web/instances/nobody", wantStatus: 404},
		{name: "batch heartbeat bad body", method: "PUT", path: "/v1/heartbeats", body: `{"instances":"all"}`, wantStatus: 400, wantFields: []string{"instances"}},
		{name: "snapshot restore of garbage", method: "PUT", path: "/v1/registry/snapshot", body: "garbage", wantStatus: 400, wantFields: []string{"snapshot"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, a.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := testutil.Client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			defer resp.Body.Close()
			var e errorAnswer
			decErr := json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("%s %.80s: status %d, want %d (%+v)", tc.method, tc.path, resp.StatusCode, tc.wantStatus, e)
			}
			if decErr != nil || e.Error == "" {
				t.Fatalf("error answer is not {\"error\":...}: %v %+v", decErr, e)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var named []string
			for _, f := range e.Fields {
				named = append(named, f.Field)
				if f.Message == "" {
					t.Errorf("field %s has no message", f.Field)
				}
			}
			for _, f := range tc.wantFields {
				if !slices.Contains(named, f) {
					t.Errorf("fields %v do not name %q (error %q)", named, f, e.Error)
				}
			}
			if len(tc.wantFields) == 0 && len(e.Fields) > 0 {
				t.Errorf("a %d answer names fields %v", resp.StatusCode, named)
			}
		})
	}

	// Nothing of any of that was written.
	if d := diffState(before, fullState(t, a)); d != "" {
		t.Errorf("bad requests changed the registry:\n%s", d)
	}
	// (The agent's last index may move: a DELETE of an unknown instance
	// goes through the log before it fails.)
	if status, _ := getInstance(t, a, "web", "x"); status != http.StatusNotFound {
		t.Errorf("web/x exists after only bad registrations: %d", status)
	}
	testutil.DoJSON(t, "GET", a.URL+"/healthz", nil, http.StatusOK, nil)

	// An all-numeric dotted name is an IPv4 address that does not parse,
	// not a host name (RFC 1123 2.1; the top-level label of a host name is
	// never all digits): it must be refused like any other bad address.
	t.Run("dotted quad out of range", func(t *testing.T) {
		for _, addr := range []string{"10.0.0.300", "1.2.3", "256.1.1.1"} {
			status, _, b := testutil.Do(t, "PUT", instanceURL(a, "web", "numeric"), map[string]any{"address": addr, "port": 80})
			var e errorAnswer
			_ = json.Unmarshal(b, &e)
			if status != http.StatusBadRequest || len(e.Fields) == 0 || e.Fields[0].Field != "address" {
				t.Errorf("address %q: %d %s, want 400 naming address", addr, status, strings.TrimSpace(string(b)))
			}
		}
	})
}
