package consulapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/consulapi"
	"github.com/rosterhq/roster/internal/httpapi"
	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
	"github.com/rosterhq/roster/internal/testutil"
)

// stack is the agent's read and write path in memory: the registry over
// an in-memory store and log (testutil.NewRegistry), and the native API
// with the Consul API mounted on it as the server mounts it, behind a test
// server. The agent leads alone (no Cluster).
type stack struct {
	st  *store.Store
	reg *registry.Service
	api *consulapi.API
	srv *httptest.Server
}

const testNode = "node-1"

func newStack(t testing.TB, opts ...func(*consulapi.Config)) *stack {
	t.Helper()
	// The first write gets index 4, as on a new one-node raft log: the
	// golden answers pin indexes.
	s := &stack{st: store.New()}
	s.reg = registry.New(registry.Config{State: s.st, Log: testutil.NewMemLogAt(s.st, 4)})
	prom := prometheus.NewRegistry()
	native := httpapi.New(httpapi.Config{Registry: s.reg, Metrics: prom})
	s.srv = httptest.NewUnstartedServer(native.Handler())
	ccfg := consulapi.Config{
		Registry: s.reg, NodeName: testNode, NodeID: "0f3c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
		HTTPAddr: s.srv.Listener.Addr().String(), Address: "10.1.2.3", GETWrites: true, Metrics: prom,
	}
	for _, o := range opts {
		o(&ccfg)
	}
	s.api = consulapi.New(ccfg)
	s.api.MountOn(native)
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	t.Cleanup(s.reg.Drain) // runs first: ends blocking queries
	return s
}

// waitBlocked waits until a query waits on the store: the stack runs
// nothing else that watches, so a watcher is the caller's query.
func (s *stack) waitBlocked(t testing.TB) {
	t.Helper()
	testutil.WaitFor(t, testutil.Context(t, 20*time.Second), "a blocked query", func() bool {
		return s.st.Stats().Watchers > 0
	})
}

// response is a finished HTTP exchange.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// index returns X-Consul-Index, failing unless it is a positive integer.
func (r response) index(t testing.TB) uint64 {
	t.Helper()
	v := r.header.Get("X-Consul-Index")
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("X-Consul-Index = %q, want a positive index", v)
	}
	return n
}

func (r response) text() string { return strings.TrimSpace(string(r.body)) }

func (s *stack) do(t testing.TB, method, path, body string) response {
	t.Helper()
	return s.doCtx(t, testutil.Context(t, 60*time.Second), method, path, body)
}

func (s *stack) doCtx(t testing.TB, ctx context.Context, method, path, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// mustDo is do expecting a status.
func (s *stack) mustDo(t testing.TB, want int, method, path, body string) response {
	t.Helper()
	r := s.do(t, method, path, body)
	if r.code != want {
		t.Fatalf("%s %s = %d %q, want %d", method, path, r.code, r.body, want)
	}
	return r
}

// registerConsul registers through PUT /v1/agent/service/register.
func (s *stack) registerConsul(t testing.TB, body string) {
	t.Helper()
	r := s.mustDo(t, http.StatusOK, "PUT", "/v1/agent/service/register", body)
	if len(r.body) != 0 {
		t.Fatalf("register answered a body: %q", r.body)
	}
}

// register puts an instance through the registry directly, as the native
// API does.
func (s *stack) register(t testing.TB, in *registry.Instance) {
	t.Helper()
	if _, err := s.reg.Register(testutil.Context(t, 30*time.Second), in); err != nil {
		t.Fatalf("Register: %v", err)
	}
}

func (s *stack) get(t testing.TB, key registry.Key) *registry.Instance {
	t.Helper()
	in, err := s.reg.Get(key)
	if err != nil {
		t.Fatalf("Get %v: %v", key, err)
	}
	return in
}

func decodeJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// jsonDiff compares two JSON documents field by field and describes every
// difference by its path ("[0].Service.Port: got 80, want 8080").
func jsonDiff(got, want []byte) ([]string, error) {
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return nil, fmt.Errorf("got: %w", err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		return nil, fmt.Errorf("want: %w", err)
	}
	var diffs []string
	walkDiff("", g, w, &diffs)
	return diffs, nil
}

func walkDiff(path string, g, w any, diffs *[]string) {
	switch wv := w.(type) {
	case map[string]any:
		gv, ok := g.(map[string]any)
		if !ok {
			*diffs = append(*diffs, fmt.Sprintf("%s: got %s, want an object", orRoot(path), brief(g)))
			return
		}
		keys := map[string]bool{}
		for k := range wv {
			keys[k] = true
		}
		for k := range gv {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			p := path + "." + k
			gx, gok := gv[k]
			wx, wok := wv[k]
			switch {
			case !gok:
				*diffs = append(*diffs, fmt.Sprintf("%s: missing, want %s", p, brief(wx)))
			case !wok:
				*diffs = append(*diffs, fmt.Sprintf("%s: unexpected field %s", p, brief(gx)))
			default:
				walkDiff(p, gx, wx, diffs)
			}
		}
	case []any:
		gv, ok := g.([]any)
		if !ok {
			*diffs = append(*diffs, fmt.Sprintf("%s: got %s, want an array", orRoot(path), brief(g)))
			return
		}
		if len(gv) != len(wv) {
			*diffs = append(*diffs, fmt.Sprintf("%s: got %d elements, want %d", orRoot(path), len(gv), len(wv)))
		}
		for i := 0; i < min(len(gv), len(wv)); i++ {
			walkDiff(path+"["+strconv.Itoa(i)+"]", gv[i], wv[i], diffs)
		}
	default:
		if !reflect.DeepEqual(g, w) {
			*diffs = append(*diffs, fmt.Sprintf("%s: got %s, want %s", orRoot(path), brief(g), brief(w)))
		}
	}
}

func orRoot(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}

func brief(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	return string(b)
}
