package consulapi_test

import (
	"testing"

	"github.com/rosterhq/roster/internal/registry"
)

// healthEntries reads /v1/health/service/web (query included) as the
// service IDs it lists and, per ID, its checks by CheckID.
func healthEntries(t *testing.T, s *stack, query string) ([]string, map[string]map[string]map[string]any) {
	t.Helper()
	var entries []struct {
		Service struct{ ID string }
		Checks  []map[string]any
	}
	decodeJSON(t, s.mustDo(t, 200, "GET", "/v1/health/service/web"+query, "").body, &entries)
	ids := []string{}
	checks := map[string]map[string]map[string]any{}
	for _, e := range entries {
		ids = append(ids, e.Service.ID)
		checks[e.Service.ID] = map[string]map[string]any{}
		for _, c := range e.Checks {
			checks[e.Service.ID][c["CheckID"].(string)] = c
		}
	}
	return ids, checks
}

func TestServiceMaintenance(t *testing.T) {
	s := newStack(t)
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":80,"Check":{"TTL":"30s","Status":"passing"}}`)
	s.registerConsul(t, `{"Name":"web","ID":"w2","Port":80}`)
	const maintID = "_service_maintenance:w1"

	for _, tc := range []struct {
		path string
		code int
		text string
	}{
		{"/v1/agent/service/maintenance/w1", 400, "Missing value for enable"},
		{"/v1/agent/service/maintenance/w1?enable=maybe", 400, `Invalid value for enable: "maybe"`},
		{"/v1/agent/service/maintenance/nope?enable=true", 404, `Unknown service ID "nope". Ensure that the service ID is passed, not the service name.`},
		{"/v1/agent/service/maintenance/nope?enable=false", 404, `Unknown service ID "nope". Ensure that the service ID is passed, not the service name.`},
	} {
		if r := s.mustDo(t, tc.code, "PUT", tc.path, ""); r.text() != tc.text {
			t.Errorf("PUT %s: %q, want %q", tc.path, r.text(), tc.text)
		}
	}
	if r := s.mustDo(t, 200, "PUT", "/v1/agent/service/maintenance/w1?enable=false", ""); len(r.body) != 0 {
		t.Errorf("disable without maintenance answered %q", r.body)
	}

	// Enabled: critical check with Consul's ID, name and notes; out of
	// passing answers, in the others; the native view agrees.
	s.mustDo(t, 200, "PUT", "/v1/agent/service/maintenance/w1?enable=true&reason=swap+disk", "")
	want := map[string]any{"CheckID": maintID, "Name": "Service Maintenance Mode", "Status": "critical", "Notes": "swap disk",
		"Output": "", "Type": "maintenance", "ServiceID": "w1", "ServiceName": "web", "Interval": "", "Timeout": ""}
	checkMaint := func(when string, notes string) {
		t.Helper()
		ids, checks := healthEntries(t, s, "")
		if len(ids) != 2 {
			t.Fatalf("%s: health lists %v", when, ids)
		}
		c := checks["w1"][maintID]
		if c == nil {
			t.Fatalf("%s: no %s among %v", when, maintID, checks["w1"])
		}
		want["Notes"] = notes
		for k, v := range want {
			if c[k] != v {
				t.Errorf("%s: %s = %v, want %v", when, k, c[k], v)
			}
		}
		if ids, _ := healthEntries(t, s, "?passing"); len(ids) != 1 || ids[0] != "w2" {
			t.Errorf("%s: passing lists %v, want [w2]", when, ids)
		}
		var native struct {
			Health string
			Checks []registry.Check
		}
		decodeJSON(t, s.mustDo(t, 200, "GET", "/v1/services/web/instances/w1", "").body, &native)
		if native.Health != "critical" || len(native.Checks) != 2 || native.Checks[1].Type != registry.CheckMaintenance || native.Checks[1].Output != notes {
			t.Errorf("%s: native view %+v", when, native)
		}
	}
	checkMaint("enabled", "swap disk")
	var agentChecks map[string]map[string]any
	decodeJSON(t, s.mustDo(t, 200, "GET", "/v1/agent/checks", "").body, &agentChecks)
	if agentChecks[maintID]["Status"] != "critical" {
		t.Errorf("agent/checks: %v", agentChecks[maintID])
	}
	// A TTL report on it is refused as on any check without a TTL.
	s.mustDo(t, 500, "PUT", "/v1/agent/check/pass/"+maintID, "")

	// Enabling again keeps the first reason; re-registering through
	// either API keeps maintenance.
	s.mustDo(t, 200, "PUT", "/v1/agent/service/maintenance/w1?enable=true&reason=other", "")
	s.registerConsul(t, `{"Name":"web","ID":"w1","Port":80,"Tags":["v2"],"Check":{"TTL":"30s"}}`)
	checkMaint("after a Consul re-registration", "swap disk")
	s.mustDo(t, 200, "PUT", "/v1/services/web/instances/w1",
		`{"address":"10.1.2.3","port":80,"checks":[{"id":"service:w1","type":"ttl","ttl":"30s"}]}`)
	checkMaint("after a native re-registration", "swap disk")

	// Disabled: gone, passing again.
	s.mustDo(t, 200, "PUT", "/v1/agent/service/maintenance/w1?enable=false", "")
	if ids, checks := healthEntries(t, s, "?passing"); len(ids) != 2 || checks["w1"][maintID] != nil {
		t.Errorf("disabled: passing lists %v, checks of w1 %v", ids, checks["w1"])
	}

	// Without a reason, Consul's default notes.
	s.mustDo(t, 200, "PUT", "/v1/agent/service/maintenance/w1?enable=1", "")
	checkMaint("enabled without a reason", "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.")

	// ?replace-existing-checks replaces every check, maintenance included.
	s.mustDo(t, 200, "PUT", "/v1/agent/service/register?replace-existing-checks", `{"Name":"web","ID":"w1","Port":80,"Check":{"TTL":"30s"}}`)
	if in := s.get(t, registry.Key{Service: "web", ID: "w1"}); in.Check(maintID) != nil || len(in.Checks) != 1 {
		t.Errorf("after replace-existing-checks: %+v", in.Checks)
	}

	// The ID keeps its maintenance when it moves to another name.
	s.mustDo(t, 200, "PUT", "/v1/agent/service/maintenance/w2?enable=true", "")
	s.registerConsul(t, `{"Name":"api","ID":"w2","Port":80}`)
	if in := s.get(t, registry.Key{Service: "api", ID: "w2"}); in.Check("_service_maintenance:w2") == nil || in.Health != registry.Critical {
		t.Errorf("moved instance: %+v", in)
	}
}
