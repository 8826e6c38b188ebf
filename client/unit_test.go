package client_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
)

// TestDependencies keeps the SDK light: outside tests it may import only
// the standard library and its own packages.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if !strings.HasPrefix(p, "github.com/rosterhq/roster/client") {
			t.Errorf("the client imports %s; it must stay on the standard library", p)
		}
		if strings.HasPrefix(p, "github.com/rosterhq/roster/internal") {
			t.Errorf("the client imports the server's %s", p)
		}
	}
}

func TestMatchHosts(t *testing.T) {
	m := client.MatchHosts("payment-service", "*.service.consul", "*.svc.")
	tests := []struct {
		host    string
		service string
		ok      bool
	}{
		{"payment-service", "payment-service", true},
		{"Payment-Service.", "payment-service", true},
		{"web.service.consul", "web", true},
		{"WEB.Service.Consul.", "web", true},
		{"v1.web.service.consul", "", false}, // one label only
		{".service.consul", "", false},
		{"service.consul", "", false},
		{"api.svc", "api", true},
		{"example.com", "", false},
		{"payment-service.example.com", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			s, ok := m(tc.host)
			if s != tc.service || ok != tc.ok {
				t.Fatalf("MatchHosts(%q) = %q, %v; want %q, %v", tc.host, s, ok, tc.service, tc.ok)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{`"10s"`, 10 * time.Second, false},
		{`"1m30s"`, 90 * time.Second, false},
		{`1000000000`, time.Second, false},
		{`"ten"`, 0, true},
		{`true`, 0, true},
	}
	for _, tc := range tests {
		var d client.Duration
		err := json.Unmarshal([]byte(tc.in), &d)
		if (err != nil) != tc.err || time.Duration(d) != tc.want {
			t.Errorf("%s: got %v, %v", tc.in, time.Duration(d), err)
		}
	}
	b, _ := json.Marshal(client.Instance{Service: "a", TTL: client.Duration(10 * time.Second)})
	if !strings.Contains(string(b), `"ttl":"10s"`) {
		t.Fatalf("marshal: %s", b)
	}
}

func FuzzDuration(f *testing.F) {
	for _, s := range []string{`"10s"`, `"1h2m3.5s"`, `12`, `"-1s"`, `null`, `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var d client.Duration
		if json.Unmarshal([]byte(in), &d) != nil {
			return
		}
		// What decodes re-encodes and decodes to the same value.
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var back client.Duration
		if err := json.Unmarshal(b, &back); err != nil || back != d {
			t.Fatalf("%s -> %v -> %s -> %v (%v)", in, time.Duration(d), b, time.Duration(back), err)
		}
	})
}

func FuzzMatchHosts(f *testing.F) {
	f.Add("*.service.consul", "web.service.consul")
	f.Add("payment", "PAYMENT.")
	f.Add("*", "a")
	f.Fuzz(func(t *testing.T, pattern, host string) {
		s, ok := client.MatchHosts(pattern)(host)
		if !ok {
			return
		}
		if s == "" {
			t.Fatalf("pattern %q host %q: empty service", pattern, host)
		}
		if strings.HasPrefix(pattern, "*") && strings.Contains(s, ".") {
			t.Fatalf("pattern %q host %q: service %q has more than one label", pattern, host, s)
		}
		if !strings.HasPrefix(pattern, "*") && s != strings.ToLower(strings.TrimSuffix(host, ".")) {
			t.Fatalf("pattern %q host %q: service %q is not the host", pattern, host, s)
		}
	})
}
