package proxy

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	routes := []Route{
		{Host: "shop.example", Service: "web"},
		{Host: "shop.example", PathPrefix: "/api", Service: "api"},
		{Host: "*.example", Service: "wild"},
		{Host: "*.deep.example", Service: "deep"},
		{PathPrefix: "/search", Service: "search"},
		{PathPrefix: "/search/v2/", Service: "search2"},
	}
	tab := newTable(routes)
	tests := []struct {
		host, path string
		want       string // service, "" for no route
	}{
		{"shop.example", "/", "web"},
		{"shop.example", "/api", "api"},
		{"shop.example", "/api/x", "api"},
		{"shop.example", "/apix", "web"},
		{"other.example", "/api", "wild"},
		{"a.deep.example", "/", "deep"},
		{"a.b.example", "/", "wild"},
		{"example", "/", ""},
		{"else.org", "/search", "search"},
		{"else.org", "/search/", "search"},
		{"else.org", "/searching", ""},
		{"else.org", "/search/v2/q", "search2"},
		{"else.org", "/search/v2", "search"},
		{"shop.example", "/search", "web"}, // a host route beats a path-only route
		{"", "/", ""},
	}
	for _, tc := range tests {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			got := ""
			if r := tab.match(tc.host, tc.path); r != nil {
				got = r.Service
			}
			if got != tc.want {
				t.Fatalf("match(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
			}
		})
	}
}

func TestHostOnlyAndDefaultService(t *testing.T) {
	domains := []string{"service.roster", "svc.internal"}
	tests := []struct {
		host    string
		norm    string
		service string
	}{
		{"web", "web", "web"},
		{"Web:8080", "web", "web"},
		{"web.service.roster", "web.service.roster", "web"},
		{"WEB.Service.Roster.:80", "web.service.roster", "web"},
		{"web.svc.internal", "web.svc.internal", "web"},
		{"a.web.service.roster", "a.web.service.roster", ""},
		{".service.roster", ".service.roster", ""},
		{"service.roster", "service.roster", ""},
		{"10.0.0.1:80", "10.0.0.1", ""},
		{"[::1]:8080", "::1", ""},
		{"[::1]", "::1", ""},
		{"", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			norm := hostOnly(tc.host)
			if norm != tc.norm {
				t.Fatalf("hostOnly(%q) = %q, want %q", tc.host, norm, tc.norm)
			}
			svc, ok := defaultService(norm, domains)
			if svc != tc.service || ok != (tc.service != "") {
				t.Fatalf("defaultService(%q) = %q, %v; want %q", norm, svc, ok, tc.service)
			}
		})
	}
}

func TestStripPrefix(t *testing.T) {
	tests := []struct{ path, prefix, want string }{
		{"/search/q", "/search", "/q"},
		{"/search", "/search", "/"},
		{"/search/", "/search/", "/"},
		{"/search/q", "/search/", "/q"},
	}
	for _, tc := range tests {
		if got := stripPrefix(tc.path, tc.prefix); got != tc.want {
			t.Errorf("stripPrefix(%q, %q) = %q, want %q", tc.path, tc.prefix, got, tc.want)
		}
	}
}

func TestParseRoutes(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" for success
		n       int
	}{
		{"empty", `{"routes":[]}`, "", 0},
		{"full", `{"routes":[{"host":"shop.example","path_prefix":"/api","strip_prefix":true,"service":"api",
			"tags":["prod"],"meta":{"env":"prod"},"canary":"exclude","zone":"z1",
			"subsets":[{"name":"v1","meta":{"version":"v1"},"weight":90},{"name":"v2","meta":{"version":"v2"},"weight":10}],
			"balancer":"ring_hash","hash_header":"user-id","protocol":"h2c","max_pending":10}]}`, "", 1},
		{"unknown key", `{"routes":[{"service":"a","host":"a","bogus":1}]}`, "unknown field", 0},
		{"trailing data", `{"routes":[]} {}`, "after the JSON", 0},
		{"no service", `{"routes":[{"host":"a"}]}`, "service: required", 0},
		{"no match", `{"routes":[{"service":"a"}]}`, "host or path_prefix", 0},
		{"bad prefix", `{"routes":[{"service":"a","path_prefix":"api"}]}`, "must start with /", 0},
		{"bad balancer", `{"routes":[{"service":"a","host":"a","balancer":"fastest"}]}`, "balancer", 0},
		{"bad canary", `{"routes":[{"service":"a","host":"a","canary":"maybe"}]}`, "canary", 0},
		{"bad protocol", `{"routes":[{"service":"a","host":"a","protocol":"h3"}]}`, "protocol", 0},
		{"zero subsets", `{"routes":[{"service":"a","host":"a","subsets":[{"weight":0}]}]}`, "positive weight", 0},
		{"negative weight", `{"routes":[{"service":"a","host":"a","subsets":[{"weight":-1},{"weight":1}]}]}`, "negative", 0},
		{"strip without prefix", `{"routes":[{"service":"a","host":"a","strip_prefix":true}]}`, "strip_prefix", 0},
		{"bad host", `{"routes":[{"service":"a","host":"a:80"}]}`, "host", 0},
		{"every error named", `{"routes":[{"host":"a"},{"service":"b"}]}`, "routes[1]", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			routes, err := ParseRoutes(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(routes) != tc.n {
				t.Fatalf("%d routes, want %d", len(routes), tc.n)
			}
		})
	}
}

func TestParseRouteFlag(t *testing.T) {
	tests := []struct {
		in                    string
		host, prefix, service string
		err                   bool
	}{
		{in: "shop.example=web", host: "shop.example", service: "web"},
		{in: "/search=search", prefix: "/search", service: "search"},
		{in: "shop.example/api=api", host: "shop.example", prefix: "/api", service: "api"},
		{in: "*.example=web", host: "*.example", service: "web"},
		{in: "web", err: true},
		{in: "=web", err: true},
		{in: "host=", err: true},
		{in: "a b=web", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseRouteFlag(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("ParseRouteFlag(%q) = %+v, want an error", tc.in, r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Host != tc.host || r.PathPrefix != tc.prefix || r.Service != tc.service {
				t.Fatalf("ParseRouteFlag(%q) = %+v", tc.in, r)
			}
		})
	}
}

func FuzzParseRoutes(f *testing.F) {
	f.Add(`{"routes":[{"host":"shop.example","path_prefix":"/api","service":"api","subsets":[{"meta":{"v":"1"},"weight":9}]}]}`)
	f.Add(`{"routes":[{"host":"*.example","service":"w","balancer":"ring_hash","hash_header":"user-id"}]}`)
	f.Add(`{"routes":[{"service":"a"}]}`)
	f.Fuzz(func(t *testing.T, in string) {
		routes, err := ParseRoutes(strings.NewReader(in))
		if err != nil {
			return
		}
		// Whatever parses compiles and matches without panicking, and
		// every route is valid.
		for i := range routes {
			if err := routes[i].Validate(); err != nil {
				t.Fatalf("parsed route %d invalid: %v", i, err)
			}
			_ = routes[i].filter()
		}
		tab := newTable(routes)
		for _, r := range routes {
			host := strings.TrimPrefix(r.Host, "*")
			if got := tab.match(hostOnly("x"+host), r.PathPrefix+"/x"); got == nil && r.Host == "" {
				t.Fatalf("route %+v does not match its own prefix", r)
			}
		}
	})
}

func FuzzParseRouteFlag(f *testing.F) {
	for _, s := range []string{"shop.example=web", "/search=search", "a/b=c", "*.x=y", "=", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := ParseRouteFlag(in)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseRouteFlag(%q) = %+v, invalid: %v", in, r, err)
		}
		if r.Service == "" || (r.Host == "" && r.PathPrefix == "") {
			t.Fatalf("ParseRouteFlag(%q) = %+v", in, r)
		}
	})
}

func FuzzHost(f *testing.F) {
	for _, s := range []string{"web", "Web:80", "web.service.roster.", "[::1]:80", "10.0.0.1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		norm := hostOnly(host)
		if strings.HasSuffix(norm, ".") || strings.ContainsFunc(norm, func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
			t.Fatalf("hostOnly(%q) = %q: not lower case without a trailing dot", host, norm)
		}
		if svc, ok := defaultService(norm, []string{"service.roster"}); ok && (svc == "" || strings.Contains(svc, ".")) {
			t.Fatalf("defaultService(%q) = %q", norm, svc)
		}
	})
}
