package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/httpapi"
	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
	"github.com/rosterhq/roster/internal/testutil"
)

// snapshots implements httpapi.Snapshots over the store alone, as the
// node does over the log: the upload is read in full (a read error is
// returned as it is), then a snapshot the store refuses is the client's
// error. Tests restore with no write in flight: the store's Restore must
// not run beside an apply.
type snapshots struct{ st *store.Store }

func (s snapshots) Save(w io.Writer) error { return s.st.Snapshot().Persist(w) }

func (s snapshots) Restore(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if err := s.st.Restore(bytes.NewReader(b)); err != nil {
		v := &registry.ValidationError{}
		v.Add("snapshot", err.Error())
		return v
	}
	return nil
}

// stack is the whole write and read path in memory: the registry over an
// in-memory store and log (testutil.NewRegistry) and the API on a test
// server.
type stack struct {
	st   *store.Store
	reg  *registry.Service
	api  *httpapi.API
	prom *prometheus.Registry
	srv  *httptest.Server
}

func newStack(t testing.TB, opts ...func(*httpapi.Config)) *stack {
	t.Helper()
	s := &stack{prom: prometheus.NewRegistry()}
	s.reg, s.st = testutil.NewRegistry()
	acfg := httpapi.Config{Registry: s.reg, Snapshots: snapshots{st: s.st}, Metrics: s.prom, Gatherer: s.prom, KeepAlive: time.Hour}
	for _, o := range opts {
		o(&acfg)
	}
	s.api = httpapi.New(acfg)
	s.srv = httptest.NewServer(s.api.Handler())
	t.Cleanup(s.srv.Close)
	t.Cleanup(s.reg.Drain) // runs first: ends blocking queries and streams
	return s
}

// response is a finished HTTP exchange.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) index(t testing.TB) uint64 {
	t.Helper()
	v := r.header.Get(httpapi.IndexHeader)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("%s = %q, want a positive index", httpapi.IndexHeader, v)
	}
	return n
}

// do sends a request to the stack's server.
func (s *stack) do(t testing.TB, method, path, body string, hdr ...string) response {
	t.Helper()
	ctx := testutil.Context(t, 60*time.Second)
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
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
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// mustDo is do expecting a status.
func (s *stack) mustDo(t testing.TB, want int, method, path, body string, hdr ...string) response {
	t.Helper()
	r := s.do(t, method, path, body, hdr...)
	if r.code != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, r.code, r.body, want)
	}
	return r
}

// register puts an instance through the registry directly.
func (s *stack) register(t testing.TB, in *registry.Instance) registry.ApplyResult {
	t.Helper()
	res, err := s.reg.Register(testutil.Context(t, 30*time.Second), in)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return res
}

type errorBody struct {
	Error  string                `json:"error"`
	Fields []registry.FieldError `json:"fields"`
}

func decodeError(t testing.TB, b []byte) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %s is not JSON: %v", b, err)
	}
	if e.Error == "" {
		t.Fatalf("error body %s has no message", b)
	}
	return e
}

func fieldNames(e errorBody) []string {
	out := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		out[i] = f.Field
	}
	return out
}

type instancesAnswer struct {
	Service   string               `json:"service"`
	Index     uint64               `json:"index"`
	Instances []*registry.Instance `json:"instances"`
}

func decodeInstances(t testing.TB, b []byte) instancesAnswer {
	t.Helper()
	var a instancesAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	return a
}

func instanceIDs(ins []*registry.Instance) []string {
	out := []string{}
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

// sseEvent is one Server-Sent Event, or a comment (event "comment").
type sseEvent struct {
	event, id string
	data      watchData
}

type watchData struct {
	Index     uint64               `json:"index"`
	Instances []*registry.Instance `json:"instances"`
	Upserted  []*registry.Instance `json:"upserted"`
	Deleted   []registry.Key       `json:"deleted"`
}

// stream is an open SSE watch.
type stream struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// watch opens an SSE stream on path; it is closed when the test ends.
func (s *stack) watch(t testing.TB, path string, hdr ...string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatalf("watch %s: %v", path, err)
	}
	st := &stream{resp: resp, events: make(chan sseEvent, 64), cancel: cancel}
	t.Cleanup(st.close)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch %s = %d %s", path, resp.StatusCode, b)
	}
	go func() {
		defer close(st.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" {
					st.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				st.events <- sseEvent{event: "comment"}
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
					ev.event = "bad-data: " + err.Error()
				}
			}
		}
	}()
	return st
}

func (st *stream) close() {
	st.cancel()
	st.resp.Body.Close()
}

// next returns the next event (comments skipped), failing after d.
func (st *stream) next(t testing.TB, d time.Duration) sseEvent {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-st.events:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.event == "comment" {
				continue
			}
			return ev
		case <-timer.C:
			t.Fatalf("no event within %v", d)
		}
	}
}

// newServer serves api on a test server closed when the test ends.
func newServer(t testing.TB, api *httpapi.API) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// counter sums the values of a counter family on the stack's registry.
func (s *stack) counter(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := s.prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
