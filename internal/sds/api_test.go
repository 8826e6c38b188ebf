package sds

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rosterhq/roster/internal/registry"
	rtestutil "github.com/rosterhq/roster/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs:\ngot  %s\nwant %s", name, got, want)
	}
}

func TestServiceAnswerGolden(t *testing.T) {
	s := newStack(t, func(c *Config) { c.Env = "production" })
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.2", set("tags",
		`{"az":"us-east-1b","instance_id":"i-2","region":"us-east-1","canary":"true","load_balancing_weight":"20","build":{"n":1.0,"by":"<ci>"}}`)))
	s.clock.Set(t0.Add(90 * time.Second))
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.10", set("service_repo_name", "")))
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("2001:DB8::1", set("port", "8443")))
	s.mustDo(t, 200, "POST", "/v1/registration/db", hostForm("10.0.0.2")) // another service: not listed
	_, body := s.get(t, "/v1/registration/web")
	golden(t, "web.golden.json", body)
	_, repo := s.get(t, "/v1/registration/repo/bar")
	golden(t, "repo-bar.golden.json", repo)
}

func TestGetUnknownService(t *testing.T) {
	s := newStack(t)
	for _, name := range []string{"foo", "Not_A_Label"} {
		_, body := s.get(t, "/v1/registration/"+name)
		if want := `{"service":"` + name + `","env":"development","hosts":[]}` + "\n"; string(body) != want {
			t.Errorf("GET %s = %s, want %s", name, body, want)
		}
	}
	_, body := s.get(t, "/v1/registration/repo/foo")
	if want := `{"service_repo_name":"foo","env":"development","hosts":[]}` + "\n"; string(body) != want {
		t.Errorf("GET repo = %s, want %s", body, want)
	}
}

func TestRegisterRefusals(t *testing.T) {
	s := newStack(t)
	tags := func(v string) func(url.Values) { return set("tags", v) }
	tests := []struct {
		name   string
		form   url.Values
		ctype  string
		status int
		body   string // exact, or the error text with "error:" before it
	}{
		{"every field 0", url.Values{"ip": {"0"}, "port": {"0"}, "revision": {"0"}, "service_repo_name": {"0"}, "tags": {"0"}}, "", 400, "{}"},
		{"every field 0 but tags", url.Values{"ip": {"0"}, "port": {"0"}, "revision": {"0"}, "service_repo_name": {"0"}}, "", 400, "{}"},
		{"no ip", hostForm("", del("ip")), "", 400, "{}"},
		{"invalid ip", hostForm("invalid.ip.address"), "", 400, "{}"},
		{"ip out of range", hostForm("555.555.555.555"), "", 400, "{}"},
		{"ip with zone", hostForm("fe80::1%eth0"), "", 400, "{}"},
		{"port -1", hostForm("10.0.0.1", set("port", "-1")), "", 400, "{}"},
		{"no port", hostForm("10.0.0.1", del("port")), "", 400, "{}"},
		{"port not a number", hostForm("10.0.0.1", set("port", "test")), "", 400, `error:port: "test" is not an integer`},
		{"port too big", hostForm("10.0.0.1", set("port", "65536")), "", 400, "error:port: must be between 1 and 65535"},
		{"no revision", hostForm("10.0.0.1", del("revision")), "", 400, "{}"},
		{"tags not json", hostForm("10.0.0.1", tags(`{"az":`)), "", 400, "error:" + textTagsNotJSON},
		{"no tags", hostForm("10.0.0.1", del("tags")), "", 400, "{}"},
		{"no az", hostForm("10.0.0.1", tags(`{"instance_id":"i","region":"r"}`)), "", 400, "{}"},
		{"no instance_id", hostForm("10.0.0.1", tags(`{"az":"a","region":"r"}`)), "", 400, "{}"},
		{"no region", hostForm("10.0.0.1", tags(`{"az":"a","instance_id":"i"}`)), "", 400, "{}"},
		{"az not a string", hostForm("10.0.0.1", tags(`{"az":5,"instance_id":"i","region":"r"}`)), "", 400, "error:" + textAZNotString},
		{"weight not an integer", hostForm("10.0.0.1", tags(`{"az":"a","instance_id":"i","region":"r","load_balancing_weight":"x"}`)), "", 400, "error:" + textWeightInvalid},
		{"weight out of range", hostForm("10.0.0.1", tags(`{"az":"a","instance_id":"i","region":"r","load_balancing_weight":0}`)), "", 400, "error:" + textWeightInvalid},
		{"canary not a boolean", hostForm("10.0.0.1", tags(`{"az":"a","instance_id":"i","region":"r","canary":"sometimes"}`)), "", 400, "error:" + textCanaryNotBool},
		{"revision too long", hostForm("10.0.0.1", set("revision", strings.Repeat("r", 300))), "", 400, "error:invalid request: revision"},
		{"json body is not a form", nil, "application/json", 400, "{}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r response
			if tc.ctype != "" {
				r = s.doRaw(t, "POST", "/v1/registration/web", tc.ctype, `{"ip":"10.0.0.1","port":"80"}`)
			} else {
				r = s.do(t, "POST", "/v1/registration/web", tc.form)
			}
			if r.code != tc.status {
				t.Fatalf("status = %s, want %d", r, tc.status)
			}
			if text, ok := strings.CutPrefix(tc.body, "error:"); ok {
				var e struct{ Error string }
				if err := json.Unmarshal(r.body, &e); err != nil || !strings.HasPrefix(e.Error, text) {
					t.Fatalf("body = %s, want an error starting %q", r.body, text)
				}
			} else if got := strings.TrimSpace(string(r.body)); got != tc.body {
				t.Fatalf("body = %s, want %s", got, tc.body)
			}
			if r.header.Get(ErrorHeader) == "" {
				t.Error("no " + ErrorHeader + " header")
			}
		})
	}
	a, _ := s.get(t, "/v1/registration/web")
	if len(a.Hosts) != 0 {
		t.Errorf("refused registrations left hosts: %+v", a.Hosts)
	}
	if n := s.st.LastIndex(); n > 1 {
		t.Errorf("refused registrations wrote to the log (last index %d)", n)
	}
}

// doRaw sends a body with a content type.
func (s *stack) doRaw(t testing.TB, method, path, ctype, body string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

func TestMultipartForm(t *testing.T) {
	s := newStack(t)
	body := "--X\r\nContent-Disposition: form-data; name=\"ip\"\r\n\r\n10.0.0.7\r\n" +
		"--X\r\nContent-Disposition: form-data; name=\"port\"\r\n\r\n81\r\n" +
		"--X\r\nContent-Disposition: form-data; name=\"revision\"\r\n\r\nr\r\n" +
		"--X\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\n{\"az\":\"a\",\"instance_id\":\"i\",\"region\":\"r\"}\r\n--X--\r\n"
	if r := s.doRaw(t, "POST", "/v1/registration/web", "multipart/form-data; boundary=X", body); r.code != 200 {
		t.Fatalf("multipart registration = %s", r)
	}
	a, _ := s.get(t, "/v1/registration/web")
	if len(a.Hosts) != 1 || a.Hosts[0].Port != 81 {
		t.Fatalf("hosts = %+v", a.Hosts)
	}
	// The query string is not a form.
	r := s.do(t, "POST", "/v1/registration/web?ip=10.0.0.8&port=80&revision=r", url.Values{"tags": {`{"az":"a","instance_id":"i","region":"r"}`}})
	if r.code != 400 {
		t.Errorf("fields in the query string were read: %s", r)
	}
}

func TestCheckInIsHeartbeat(t *testing.T) {
	s := newStack(t)
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.1"))
	first, body1 := s.get(t, "/v1/registration/web")
	idx := s.st.LastIndex()

	s.clock.Set(t0.Add(time.Minute))
	for range 3 {
		s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.1"))
	}
	if got := s.st.LastIndex(); got != idx {
		t.Fatalf("unchanged check-ins wrote to the log: index %d -> %d", idx, got)
	}
	_, body2 := s.get(t, "/v1/registration/web")
	if string(body1) != string(body2) {
		t.Fatalf("answer changed without a change:\n%s\n%s", body1, body2)
	}
	if got := counterValue(t, s.api.metrics.checkIns.WithLabelValues("heartbeat")); got != 3 {
		t.Errorf("heartbeat check-ins = %v, want 3", got)
	}

	// A change is written, and moves last_check_in.
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.1", set("revision", "rev2")))
	if s.st.LastIndex() == idx {
		t.Fatal("a new revision was not written")
	}
	second, _ := s.get(t, "/v1/registration/web")
	if second.Hosts[0].Revision != "rev2" || second.Hosts[0].LastCheckIn == first.Hosts[0].LastCheckIn {
		t.Errorf("after a change: %+v (before %+v)", second.Hosts[0], first.Hosts[0])
	}
	if want := FormatCheckIn(t0.Add(time.Minute)); second.Hosts[0].LastCheckIn != want {
		t.Errorf("last_check_in = %q, want %q", second.Hosts[0].LastCheckIn, want)
	}
}

func TestSecondPortReplacesFirst(t *testing.T) {
	s := newStack(t)
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.1", set("port", "8080")))
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.1", set("port", "9090")))
	a, _ := s.get(t, "/v1/registration/web")
	if len(a.Hosts) != 1 || a.Hosts[0].Port != 9090 {
		t.Fatalf("hosts = %+v, want one host on port 9090", a.Hosts)
	}
	// The mapped IPv6 spelling is the same host.
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("::ffff:10.0.0.1", set("port", "7070")))
	a, _ = s.get(t, "/v1/registration/web")
	if len(a.Hosts) != 1 || a.Hosts[0].Port != 7070 || a.Hosts[0].IPAddress != "10.0.0.1" {
		t.Fatalf("hosts = %+v, want one host 10.0.0.1:7070", a.Hosts)
	}
}

func TestWeights(t *testing.T) {
	s := newStack(t)
	s.mustDo(t, 200, "POST", "/v1/registration/myservice", hostForm("10.0.0.1"))
	s.mustDo(t, 204, "POST", "/v1/loadbalancing/myservice/10.0.0.1", url.Values{"load_balancing_weight": {"10"}})
	weight := func(ip string) any {
		a, _ := s.get(t, "/v1/registration/myservice")
		for _, h := range a.Hosts {
			if h.IPAddress == ip {
				return h.Tags["load_balancing_weight"]
			}
		}
		return nil
	}
	if w := weight("10.0.0.1"); w != float64(10) {
		t.Fatalf("weight = %v, want 10", w)
	}
	// A check-in without a weight keeps it; one with a weight sets it.
	s.mustDo(t, 200, "POST", "/v1/registration/myservice", hostForm("10.0.0.1"))
	if w := weight("10.0.0.1"); w != float64(10) {
		t.Fatalf("after a check-in without weight: %v, want 10", w)
	}
	s.mustDo(t, 200, "POST", "/v1/registration/myservice", hostForm("10.0.0.1", set("tags",
		`{"az":"a","instance_id":"i","region":"r","load_balancing_weight":30}`)))
	if w := weight("10.0.0.1"); w != float64(30) {
		t.Fatalf("after a check-in with weight 30: %v", w)
	}
	// The model's weight follows, so other APIs and DNS see it.
	in, err := s.reg.Get(registry.Key{Service: "myservice", ID: "10.0.0.1"})
	if err != nil || in.Weight != 30 || in.Zone != "a" || in.Region != "r" {
		t.Fatalf("instance = %+v, %v", in, err)
	}

	// All hosts.
	s.mustDo(t, 200, "POST", "/v1/registration/myservice", hostForm("10.0.0.2"))
	s.mustDo(t, 204, "POST", "/v1/loadbalancing/myservice", url.Values{"load_balancing_weight": {"50"}})
	if w1, w2 := weight("10.0.0.1"), weight("10.0.0.2"); w1 != float64(50) || w2 != float64(50) {
		t.Fatalf("weights after setting all = %v, %v", w1, w2)
	}
	idx := s.st.LastIndex()
	s.mustDo(t, 204, "POST", "/v1/loadbalancing/myservice", url.Values{"load_balancing_weight": {"50"}})
	if s.st.LastIndex() != idx {
		t.Error("setting the weight hosts already have wrote to the log")
	}
	s.mustDo(t, 204, "POST", "/v1/loadbalancing/nothing", url.Values{"load_balancing_weight": {"50"}})

	tests := []struct {
		name, path, weight string
		status             int
		err                string
	}{
		{"unknown host", "/v1/loadbalancing/myservice/10.9.9.9", "10", 404, textHostNotFound},
		{"invalid host", "/v1/loadbalancing/myservice/nope", "10", 404, textHostNotFound},
		{"not an integer", "/v1/loadbalancing/myservice/10.0.0.1", "not_an_integer", 400, textWeightInvalid},
		{"fraction", "/v1/loadbalancing/myservice/10.0.0.1", "1.5", 400, textWeightInvalid},
		{"zero", "/v1/loadbalancing/myservice/10.0.0.1", "0", 400, textWeightInvalid},
		{"9001", "/v1/loadbalancing/myservice/10.0.0.1", "9001", 400, textWeightInvalid},
		{"missing", "/v1/loadbalancing/myservice/10.0.0.1", "", 400, textWeightMissing},
		{"missing, all hosts", "/v1/loadbalancing/myservice", "", 400, textWeightMissing},
		{"bad weight before unknown host", "/v1/loadbalancing/myservice/10.9.9.9", "x", 400, textWeightInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{}
			if tc.weight != "" {
				form.Set("load_balancing_weight", tc.weight)
			}
			r := s.do(t, "POST", tc.path, form)
			var e struct{ Error string }
			_ = json.Unmarshal(r.body, &e)
			if r.code != tc.status || e.Error != tc.err {
				t.Fatalf("= %s, want %d {\"error\": %q}", r, tc.status, tc.err)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	s := newStack(t)
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.1"))
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("2001:db8::1"))
	// An instance registered through another API at the same address is
	// the same host here.
	if _, err := s.reg.Register(t.Context(), &registry.Instance{Service: "web", ID: "native", Address: "10.0.0.1", Port: 81}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		status     int
		body       string
	}{
		{"unknown host", "/v1/registration/foo/1.1.1.1", 400, "{}"},
		{"invalid ip", "/v1/registration/web/bar", 400, "{}"},
		{"no ip", "/v1/registration/web", 400, `{"error":`},
		{"empty ip", "/v1/registration/web/", 400, `{"error":`},
		{"delete", "/v1/registration/web/10.0.0.1", 200, "{}"},
		{"again", "/v1/registration/web/10.0.0.1", 400, "{}"},
		{"ipv6 in another spelling", "/v1/registration/web/2001:DB8:0::1", 200, "{}"},
	}
	for _, tc := range tests {
		r := s.do(t, "DELETE", tc.path, nil)
		if r.code != tc.status || !strings.HasPrefix(string(r.body), tc.body) {
			t.Errorf("%s: DELETE %s = %s, want %d %s", tc.name, tc.path, r, tc.status, tc.body)
		}
	}
	a, _ := s.get(t, "/v1/registration/web")
	if len(a.Hosts) != 0 {
		t.Errorf("hosts left: %+v", a.Hosts)
	}
}

func TestRepo(t *testing.T) {
	s := newStack(t)
	s.mustDo(t, 200, "POST", "/v1/registration/foo", hostForm("10.0.0.1", set("service_repo_name", "shared")))
	s.mustDo(t, 200, "POST", "/v1/registration/bar", hostForm("10.0.0.1", set("service_repo_name", "shared")))
	s.mustDo(t, 200, "POST", "/v1/registration/baz", hostForm("10.0.0.2", set("service_repo_name", "other")))
	a, _ := s.get(t, "/v1/registration/repo/shared")
	if a.ServiceRepoName != "shared" || len(a.Hosts) != 2 || a.Hosts[0].Service != "bar" || a.Hosts[1].Service != "foo" {
		t.Fatalf("repo answer = %+v", a)
	}
	// "repo" alone is a service name; DELETE under repo/ is a service's.
	s.mustDo(t, 200, "POST", "/v1/registration/repo", hostForm("10.0.0.3"))
	if a, _ := s.get(t, "/v1/registration/repo"); len(a.Hosts) != 1 || a.Service != "repo" {
		t.Fatalf("service repo = %+v", a)
	}
	s.mustDo(t, 200, "DELETE", "/v1/registration/repo/10.0.0.3", nil)
	// A host moved to another repo leaves the first.
	s.mustDo(t, 200, "POST", "/v1/registration/foo", hostForm("10.0.0.1", set("service_repo_name", "other")))
	if a, _ := s.get(t, "/v1/registration/repo/shared"); len(a.Hosts) != 1 || a.Hosts[0].Service != "bar" {
		t.Fatalf("after moving: %+v", a.Hosts)
	}
	if a, _ := s.get(t, "/v1/registration/repo/other"); len(a.Hosts) != 2 {
		t.Fatalf("other repo: %+v", a.Hosts)
	}
}

func TestAutoIP(t *testing.T) {
	s := newStack(t)
	tests := []struct {
		name   string
		form   url.Values
		xff    string
		status int
		want   string
	}{
		{"explicit ip wins", hostForm("10.10.10.10", set("auto_ip", "True")), "192.168.216.186", 200, "10.10.10.10"},
		{"forwarded address", hostForm("", del("ip"), set("auto_ip", "True")), "192.168.216.186", 200, "192.168.216.186"},
		{"empty ip is absent", hostForm("", set("auto_ip", "1")), "192.168.216.187", 200, "192.168.216.187"},
		{"last hop", hostForm("", del("ip"), set("auto_ip", "True")), "192.168.0.0,192.168.216.188", 200, "192.168.216.188"},
		{"first octet", hostForm("", del("ip"), set("auto_ip", "True")), "0.168.216.186", 400, ""},
		{"second octet", hostForm("", del("ip"), set("auto_ip", "True")), "192.169.216.186", 400, ""},
		{"third octet", hostForm("", del("ip"), set("auto_ip", "True")), "192.168.256.186", 400, ""},
		{"fourth octet", hostForm("", del("ip"), set("auto_ip", "True")), "192.168.216.256", 400, ""},
		{"spoofed first hop", hostForm("", del("ip"), set("auto_ip", "True")), "192.168.1.1, 10.1.2.3", 400, ""},
		{"no header: loopback peer", hostForm("", del("ip"), set("auto_ip", "True")), "", 400, ""},
		{"neither ip nor auto_ip", hostForm("", del("ip")), "192.168.216.186", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.xff != "" {
				hdr = []string{"X-Forwarded-For", tc.xff}
			}
			r := s.do(t, "POST", "/v1/registration/auto", tc.form, hdr...)
			if r.code != tc.status {
				t.Fatalf("= %s, want %d", r, tc.status)
			}
			if tc.want != "" {
				if _, err := s.reg.Get(registry.Key{Service: "auto", ID: tc.want}); err != nil {
					t.Fatalf("host %s not registered: %v", tc.want, err)
				}
			}
		})
	}
	// With no trusted proxies the header is ignored: the peer, loopback
	// here, is the client.
	s2 := newStack(t, func(c *Config) {
		c.TrustedProxies = nil
		c.AutoIPNets = append(c.AutoIPNets, netip.MustParsePrefix("127.0.0.0/8"))
	})
	s2.mustDo(t, 200, "POST", "/v1/registration/auto", hostForm("", del("ip"), set("auto_ip", "x")), "X-Forwarded-For", "192.168.1.1")
	if _, err := s2.reg.Get(registry.Key{Service: "auto", ID: "127.0.0.1"}); err != nil {
		t.Fatalf("the peer was not used: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	s := newStack(t, func(c *Config) { c.HostTTL = time.Second })
	sent := time.Now()
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.1"))
	if a, _ := s.get(t, "/v1/registration/web"); len(a.Hosts) != 1 {
		t.Fatalf("hosts = %+v", a.Hosts)
	}
	ctx := rtestutil.Context(t, 10*time.Second)
	rtestutil.WaitFor(t, ctx, "expiry", func() bool {
		a, _ := s.get(t, "/v1/registration/web")
		if len(a.Hosts) == 0 && time.Since(sent) <= time.Second {
			t.Fatalf("host gone %v after its check-in, before its TTL", time.Since(sent))
		}
		return len(a.Hosts) == 0
	})
	// Listed no more, and then removed by deregister_after.
	rtestutil.WaitFor(t, ctx, "removal", func() bool {
		_, err := s.reg.Get(registry.Key{Service: "web", ID: "10.0.0.1"})
		return err != nil
	})
	// A check-in brings it back.
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.1"))
	if a, _ := s.get(t, "/v1/registration/web"); len(a.Hosts) != 1 {
		t.Fatalf("hosts after coming back = %+v", a.Hosts)
	}
}

func TestSimpleCacheIsStale(t *testing.T) {
	s := newStack(t, func(c *Config) { c.CacheType, c.CacheTTL = CacheSimple, 30*time.Second })
	_, empty := s.get(t, "/v1/registration/web") // empty: not kept
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.1"))
	a, body := s.get(t, "/v1/registration/web")
	if len(a.Hosts) != 1 {
		t.Fatalf("an empty answer was cached: %s then %s", empty, body)
	}
	s.mustDo(t, 200, "DELETE", "/v1/registration/web/10.0.0.1", nil)
	s.clock.Set(t0.Add(29 * time.Second))
	if _, again := s.get(t, "/v1/registration/web"); string(again) != string(body) {
		t.Fatalf("within CACHE_TTL the answer changed:\n%s\n%s", body, again)
	}
	s.clock.Set(t0.Add(30 * time.Second))
	if a, _ := s.get(t, "/v1/registration/web"); len(a.Hosts) != 0 {
		t.Fatalf("after CACHE_TTL the stale answer was served: %+v", a.Hosts)
	}
	if got := counterValue(t, s.api.metrics.cacheHits); got != 1 {
		t.Errorf("cache hits = %v, want 1", got)
	}
}

// Service names fold case, but an answer echoes the name as asked: the
// answer caches keep one answer per service, not one per spelling a
// client can send (each a full copy of the service's hosts).
func TestAnswerCachesOnePerService(t *testing.T) {
	s := newStack(t, func(c *Config) { c.CacheType = CacheSimple })
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.1"))
	for _, name := range []string{"web", "Web", "wEb", "weB", "WEB", "web"} {
		for range 2 {
			a, _ := s.get(t, "/v1/registration/"+name)
			if a.Service != name || len(a.Hosts) != 1 {
				t.Fatalf("GET %s: service %q, %d hosts", name, a.Service, len(a.Hosts))
			}
		}
	}
	if n := len(s.api.memo.entries); n != 1 {
		t.Errorf("memo holds %d answers for one service", n)
	}
	if n := len(s.api.cache.entries); n != 1 {
		t.Errorf("cache holds %d answers for one service", n)
	}
}

func TestNullCacheIsFresh(t *testing.T) {
	s := newStack(t)
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.1"))
	_, b1 := s.get(t, "/v1/registration/web")
	_, b2 := s.get(t, "/v1/registration/web")
	if string(b1) != string(b2) {
		t.Fatal("answers differ")
	}
	s.mustDo(t, 200, "DELETE", "/v1/registration/web/10.0.0.1", nil)
	if a, _ := s.get(t, "/v1/registration/web"); len(a.Hosts) != 0 {
		t.Fatalf("a removed host was served: %+v", a.Hosts)
	}
	if got := counterValue(t, s.api.metrics.memoHits); got < 1 {
		t.Errorf("answer reuse = %v, want at least 1", got)
	}
}

func TestInstancesFromOtherAPIs(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	for _, in := range []*registry.Instance{
		{Service: "web", ID: "web-1", Address: "10.0.0.5", Port: 80, Zone: "eu-1a", Weight: 7, Meta: map[string]string{"version": "v2"}},
		{Service: "web", ID: "web-2", Address: "web-2.internal", Port: 80},
		{Service: "web", ID: "web-3", Address: "10.0.0.6", Port: 80, Checks: []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute), Status: registry.Critical}}},
	} {
		if _, err := s.reg.Register(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := s.get(t, "/v1/registration/web")
	if len(a.Hosts) != 1 {
		t.Fatalf("hosts = %+v, want web-1 only", a.Hosts)
	}
	h := a.Hosts[0]
	if h.IPAddress != "10.0.0.5" || h.Tags["az"] != "eu-1a" || h.Tags["load_balancing_weight"] != float64(7) ||
		h.Tags["canary"] != false || h.Tags["instance_id"] != "web-1" || h.Tags["version"] != "v2" || h.LastCheckIn != "" {
		t.Errorf("host = %+v", h)
	}
	// A weight set here changes the instance, which keeps its other fields.
	s.mustDo(t, 204, "POST", "/v1/loadbalancing/web/10.0.0.5", url.Values{"load_balancing_weight": {"9"}})
	in, _ := s.reg.Get(registry.Key{Service: "web", ID: "web-1"})
	if in.Weight != 9 || in.Meta["version"] != "v2" || in.Zone != "eu-1a" {
		t.Errorf("instance after the weight = %+v", in)
	}
	// An expired host gets no weight.
	s.mustDo(t, 404, "POST", "/v1/loadbalancing/web/10.0.0.6", url.Values{"load_balancing_weight": {"9"}})
}

func TestRoutes(t *testing.T) {
	s := newStack(t)
	s.mustDo(t, 200, "POST", "/v1/registration/web/", hostForm("10.0.0.1")) // trailing slash
	tests := []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/registration/web/", 200},
		{"HEAD", "/v1/registration/web", 200},
		{"GET", "/v1/registration/web/10.0.0.1", 400},
		{"POST", "/v1/registration/web/10.0.0.1", 400},
		{"PUT", "/v1/registration/web", 405},
		{"PUT", "/v1/registration/web/10.0.0.1", 405},
		{"GET", "/v1/loadbalancing/web", 405},
		{"GET", "/v1/registration/a/b/c", 404},
		{"GET", "/v1/registration/", 404},
		{"GET", "/v1/registration//x", 404},
		{"GET", "/v1/other", 404},
		{"GET", "/healthcheck", 200},
		{"POST", "/healthcheck", 405},
	}
	for _, tc := range tests {
		if r := s.do(t, tc.method, tc.path, nil); r.code != tc.status {
			t.Errorf("%s %s = %s, want %d", tc.method, tc.path, r, tc.status)
		}
	}
	if r := s.do(t, "GET", "/healthcheck", nil); string(r.body) != "OK" {
		t.Errorf("healthcheck body = %q", r.body)
	}
	if r := s.do(t, "PUT", "/v1/registration/web", nil); r.header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
}

func TestMetrics(t *testing.T) {
	s := newStack(t)
	s.mustDo(t, 200, "POST", "/v1/registration/web", hostForm("10.0.0.1"))
	s.do(t, "POST", "/v1/registration/web", hostForm("bad"))
	s.get(t, "/v1/registration/web")
	for _, c := range []struct {
		route, code string
		want        float64
	}{
		{routeRegister, "200", 1},
		{routeRegister, "400", 1},
		{routeService, "200", 1},
	} {
		if got := counterValue(t, s.api.metrics.Count.WithLabelValues(c.route, c.code)); got != c.want {
			t.Errorf("requests{%s,%s} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	mfs, err := s.prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"roster_sds_requests_total", "roster_sds_request_duration_seconds", "roster_sds_check_ins_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"short ttl", func(c *Config) { c.HostTTL = time.Millisecond }, false},
		{"long ttl", func(c *Config) { c.HostTTL = 25 * time.Hour }, false},
		{"cache type", func(c *Config) { c.CacheType = "redis" }, false},
		{"simple without ttl", func(c *Config) { c.CacheType, c.CacheTTL = CacheSimple, 0 }, false},
		{"null without ttl", func(c *Config) { c.CacheTTL = 0 }, true},
		{"negative max stale", func(c *Config) { c.MaxStale = -time.Second }, false},
	}
	for _, tc := range tests {
		c := DefaultConfig()
		tc.mod(&c)
		if _, err := New(c); (err == nil) != tc.ok {
			t.Errorf("%s: New = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// counterValue reads a counter.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
