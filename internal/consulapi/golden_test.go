package consulapi_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/rosterhq/roster/internal/registry"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the answers")

// seed registers the golden scenario: a Go-client style registration
// (CamelCase, a TTL check), a python-consul 0.7 style one (lower-case
// keys, an HTTP check, which this stack never runs, so it stays
// critical), one with two checks and no address, and one through the
// native API.
func seed(t *testing.T, s *stack) {
	t.Helper()
	s.registerConsul(t, `{"Name":"web","ID":"web-1","Address":"10.0.0.1","Port":8080,"Tags":["v2","primary"],
		"Meta":{"version":"v2"},"Weights":{"Passing":10,"Warning":1},"EnableTagOverride":true,
		"Check":{"TTL":"15s","Status":"passing","DeregisterCriticalServiceAfter":"1m"}}`)
	s.registerConsul(t, `{"name":"web","id":"web-2","address":"10.0.0.2","port":8080,"tags":["v1"],
		"check":{"http":"http://10.0.0.2:8080/health","interval":"10s","timeout":"2s"}}`)
	s.registerConsul(t, `{"Name":"db","Port":5432,"Checks":[
		{"Name":"pg port","TCP":"127.0.0.1:5432","Interval":"5s","Status":"warning"},
		{"TTL":"30s","Notes":"kept by the app"}]}`)
	s.register(t, &registry.Instance{Service: "api", ID: "a1", Address: "10.0.0.9", Port: 9000,
		Checks: []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(10 * time.Second)}}})
}

var portRE = regexp.MustCompile(`(10\.1\.2\.3:|"Port":\s*)\d+`)

// TestGolden compares answers, field by field, with the shapes Consul
// documents, kept in testdata/golden (regenerate with -update and review
// the diff).
func TestGolden(t *testing.T) {
	s := newStack(t)
	seed(t, s)
	tests := []struct{ name, path string }{
		{"health_service_web", "/v1/health/service/web"},
		{"health_service_web_passing", "/v1/health/service/web?passing"},
		{"health_service_web_tag", "/v1/health/service/web?tag=v2&tag=primary"},
		{"health_service_unknown", "/v1/health/service/nope"},
		{"health_checks_db", "/v1/health/checks/db"},
		{"health_state_critical", "/v1/health/state/critical"},
		{"health_node", "/v1/health/node/" + testNode},
		{"catalog_service_web", "/v1/catalog/service/web"},
		{"catalog_services", "/v1/catalog/services"},
		{"catalog_nodes", "/v1/catalog/nodes"},
		{"catalog_node", "/v1/catalog/node/" + testNode},
		{"catalog_node_unknown", "/v1/catalog/node/other"},
		{"catalog_datacenters", "/v1/catalog/datacenters"},
		{"agent_services", "/v1/agent/services"},
		{"agent_service_web-1", "/v1/agent/service/web-1"},
		{"agent_checks", "/v1/agent/checks"},
		{"agent_self", "/v1/agent/self"},
		{"agent_members", "/v1/agent/members"},
		{"status_leader", "/v1/status/leader"},
		{"status_peers", "/v1/status/peers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.mustDo(t, http.StatusOK, "GET", tc.path, "")
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			got := r.body
			if strings.HasPrefix(tc.name, "agent_self") || strings.HasPrefix(tc.name, "agent_members") || strings.HasPrefix(tc.name, "status_") {
				// The agent's own port is the test server's, which
				// changes from run to run.
				got = portRE.ReplaceAll(got, []byte("${1}8500"))
			}
			path := filepath.Join("testdata", "golden", tc.name+".json")
			if *update {
				var b bytes.Buffer
				if err := json.Indent(&b, got, "", "  "); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			diffs, err := jsonDiff(got, want)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) > 0 {
				t.Errorf("GET %s differs from %s:\n  %s\nbody: %s", tc.path, path, strings.Join(diffs, "\n  "), got)
			}
		})
	}
}

// TestShapesDecodeWithTheGoClient decodes the answers into the official
// client's types and checks what its users read.
func TestShapesDecodeWithTheGoClient(t *testing.T) {
	s := newStack(t)
	seed(t, s)

	var entries []*api.ServiceEntry
	decodeJSON(t, s.mustDo(t, 200, "GET", "/v1/health/service/web", "").body, &entries)
	if len(entries) != 2 {
		t.Fatalf("health/service/web: %d entries, want 2", len(entries))
	}
	e := entries[0]
	if e.Node.Node != testNode || e.Node.Address != "10.1.2.3" || e.Node.Datacenter != "dc1" || e.Node.TaggedAddresses["lan"] != "10.1.2.3" {
		t.Errorf("node = %+v", e.Node)
	}
	if e.Service.ID != "web-1" || e.Service.Service != "web" || e.Service.Port != 8080 || e.Service.Address != "10.0.0.1" ||
		e.Service.Meta["version"] != "v2" || e.Service.Weights.Passing != 10 || len(e.Service.Tags) != 2 {
		t.Errorf("service = %+v", e.Service)
	}
	if got := e.Checks.AggregatedStatus(); got != api.HealthPassing {
		t.Errorf("web-1 aggregated status %q, want passing", got)
	}
	if c := e.Checks[1]; c.CheckID != "service:web-1" || c.Type != "ttl" || c.Definition.DeregisterCriticalServiceAfterDuration != time.Minute {
		t.Errorf("web-1 check = %+v", c)
	}
	if got := entries[1].Checks.AggregatedStatus(); got != api.HealthCritical {
		t.Errorf("web-2 aggregated status %q, want critical", got)
	}
	if d := entries[1].Checks[1].Definition; d.HTTP != "http://10.0.0.2:8080/health" || d.IntervalDuration != 10*time.Second || d.TimeoutDuration != 2*time.Second {
		t.Errorf("web-2 definition = %+v", d)
	}

	var cat []*api.CatalogService
	decodeJSON(t, s.mustDo(t, 200, "GET", "/v1/catalog/service/web", "").body, &cat)
	if len(cat) != 2 || cat[0].ServiceID != "web-1" || cat[1].ServiceID != "web-2" || cat[0].ServiceAddress != "10.0.0.1" || cat[0].NodeMeta == nil {
		t.Errorf("catalog/service/web = %+v", cat)
	}

	var svcs map[string][]string
	decodeJSON(t, s.mustDo(t, 200, "GET", "/v1/catalog/services", "").body, &svcs)
	if strings.Join(svcs["web"], ",") != "v2,primary,v1" || svcs["db"] == nil || len(svcs) != 3 {
		t.Errorf("catalog/services = %v", svcs)
	}

	var agentSvcs map[string]*api.AgentService
	decodeJSON(t, s.mustDo(t, 200, "GET", "/v1/agent/services", "").body, &agentSvcs)
	if db := agentSvcs["db"]; db == nil || db.Address != "10.1.2.3" || db.Port != 5432 {
		t.Errorf("agent/services db = %+v", db)
	}

	var checks map[string]*api.AgentCheck
	decodeJSON(t, s.mustDo(t, 200, "GET", "/v1/agent/checks", "").body, &checks)
	for _, id := range []string{"service:web-1", "service:web-2", "service:db:1", "service:db:2", "service:a1:ttl"} {
		if checks[id] == nil || checks[id].CheckID != id {
			t.Errorf("agent/checks has no %s: %v", id, checks)
		}
	}

	var self map[string]map[string]any
	decodeJSON(t, s.mustDo(t, 200, "GET", "/v1/agent/self", "").body, &self)
	if dc, ok := self["Config"]["Datacenter"].(string); !ok || dc != "dc1" {
		t.Errorf("agent/self Config.Datacenter = %v", self["Config"]["Datacenter"])
	}
}
