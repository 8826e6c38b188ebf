package sds

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/rosterhq/roster/internal/lease"
	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
	"github.com/rosterhq/roster/internal/testutil"
)

// TestMain fails the package when a test leaves goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clock is a settable clock for check-in times.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// stack is the whole path in memory: the registry over an in-memory store
// and log (testutil.NewRegistry) with a running lease table, and the SDS
// API on a test server.
type stack struct {
	st    *store.Store
	reg   *registry.Service
	api   *API
	prom  *prometheus.Registry
	srv   *httptest.Server
	clock *clock
}

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

func newStack(t testing.TB, mods ...func(*Config)) *stack {
	t.Helper()
	s := &stack{prom: prometheus.NewRegistry(), clock: &clock{t: t0}}
	s.reg, s.st = testutil.NewRegistry()
	leases := lease.New(lease.Config{Registry: s.reg, Tick: 20 * time.Millisecond, GuardFraction: 1})
	s.reg.SetLeases(leases)
	lctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = leases.Run(lctx) }()
	t.Cleanup(func() { stop(); <-done })

	cfg := DefaultConfig()
	cfg.Registry, cfg.Metrics, cfg.Now = s.reg, s.prom, s.clock.Now
	cfg.Logger = testLogger(t)
	for _, m := range mods {
		m(&cfg)
	}
	var err error
	s.api, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(s.api)
	t.Cleanup(s.srv.Close)
	return s
}

// response is a finished HTTP exchange.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %s", r.code, strings.TrimSpace(string(r.body)))
}

// do sends a request with a form body (when form is not nil) and headers
// given as name, value pairs.
func (s *stack) do(t testing.TB, method, path string, form url.Values, hdr ...string) response {
	t.Helper()
	ctx := testutil.Context(t, 30*time.Second)
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, s.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// mustDo is do expecting a status.
func (s *stack) mustDo(t testing.TB, want int, method, path string, form url.Values, hdr ...string) response {
	t.Helper()
	r := s.do(t, method, path, form, hdr...)
	if r.code != want {
		t.Fatalf("%s %s = %s, want %d", method, path, r, want)
	}
	return r
}

// hostForm is a valid registration form with changes.
func hostForm(ip string, mods ...func(url.Values)) url.Values {
	f := url.Values{
		"ip":                {ip},
		"port":              {"1000"},
		"revision":          {"rev1"},
		"service_repo_name": {"bar"},
		"tags":              {`{"az":"us-east-1a","instance_id":"i-` + ip + `","region":"us-east-1"}`},
	}
	for _, m := range mods {
		m(f)
	}
	return f
}

func set(k, v string) func(url.Values) { return func(f url.Values) { f.Set(k, v) } }
func del(k string) func(url.Values)    { return func(f url.Values) { f.Del(k) } }

// wireHost is a host of an answer as a client decodes it.
type wireHost struct {
	Service         string         `json:"service"`
	IPAddress       string         `json:"ip_address"`
	ServiceRepoName *string        `json:"service_repo_name"`
	Port            int            `json:"port"`
	Revision        string         `json:"revision"`
	LastCheckIn     string         `json:"last_check_in"`
	Tags            map[string]any `json:"tags"`
}

type wireAnswer struct {
	Service         string     `json:"service"`
	ServiceRepoName string     `json:"service_repo_name"`
	Env             string     `json:"env"`
	Hosts           []wireHost `json:"hosts"`
}

// get GETs a service or repo answer, checks it against Envoy's SDS
// schema and decodes it.
func (s *stack) get(t testing.TB, path string) (wireAnswer, []byte) {
	t.Helper()
	r := s.mustDo(t, http.StatusOK, "GET", path, nil)
	if err := checkSDSSchema(r.body); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, r.body)
	}
	var a wireAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return a, r.body
}

// checkSDSSchema checks an answer against Envoy's SDS_SCHEMA: an object
// with a "hosts" array; each host an object with a string ip_address and
// an integer port; tags, when present, an object whose az is a string,
// canary a boolean and load_balancing_weight an integer 1-100.
func checkSDSSchema(body []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return fmt.Errorf("answer is not an object: %w", err)
	}
	raw, ok := top["hosts"]
	if !ok {
		return fmt.Errorf("no hosts")
	}
	var hosts []map[string]any
	if err := json.Unmarshal(raw, &hosts); err != nil {
		return fmt.Errorf("hosts is not an array of objects: %w", err)
	}
	for i, h := range hosts {
		if _, ok := h["ip_address"].(string); !ok {
			return fmt.Errorf("hosts[%d].ip_address is not a string", i)
		}
		p, ok := h["port"].(float64)
		if !ok || p != float64(int64(p)) {
			return fmt.Errorf("hosts[%d].port is not an integer", i)
		}
		tv, ok := h["tags"]
		if !ok {
			continue
		}
		tags, ok := tv.(map[string]any)
		if !ok {
			return fmt.Errorf("hosts[%d].tags is not an object", i)
		}
		if v, ok := tags["az"]; ok {
			if _, ok := v.(string); !ok {
				return fmt.Errorf("hosts[%d].tags.az is not a string", i)
			}
		}
		if v, ok := tags["canary"]; ok {
			if _, ok := v.(bool); !ok {
				return fmt.Errorf("hosts[%d].tags.canary is not a boolean", i)
			}
		}
		if v, ok := tags["load_balancing_weight"]; ok {
			w, ok := v.(float64)
			if !ok || w != float64(int64(w)) || w < 1 || w > 100 {
				return fmt.Errorf("hosts[%d].tags.load_balancing_weight %v is not an integer 1-100", i, v)
			}
		}
	}
	return nil
}

// testLogger sends the API's logs, debug included, to the test output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
