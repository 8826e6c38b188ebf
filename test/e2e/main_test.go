// Package e2e runs the real roster binary: it is built once per test
// process (testutil.BuildBinary), started on 127.0.0.1:0 with a temporary
// data directory, and driven over HTTP and as a CLI, including kill -9
// and restart. Every test bounds itself in time and waits for state by
// polling, never by sleeping.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBinaries()
	os.Exit(code)
}

// testTimeout bounds every test in this package.
const testTimeout = 60 * time.Second

// bound returns the test's context, ended after testTimeout.
func bound(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func startAgent(t *testing.T, opts testutil.AgentOptions) *testutil.Agent {
	t.Helper()
	return testutil.StartAgent(t, testutil.BuildBinary(t), opts)
}

// Wire types, as far as the tests read them.

type check struct {
	ID            string `json:"id"`
	Type          string `json:"type"`
	Target        string `json:"target"`
	Status        string `json:"status"`
	Output        string `json:"output"`
	CriticalSince string `json:"critical_since"`
}

type instance struct {
	Service     string            `json:"service"`
	ID          string            `json:"id"`
	Address     string            `json:"address"`
	Port        int               `json:"port"`
	Tags        []string          `json:"tags"`
	Meta        map[string]string `json:"meta"`
	Weight      int               `json:"weight"`
	Checks      []check           `json:"checks"`
	Health      string            `json:"health"`
	CreateIndex uint64            `json:"create_index"`
	ModifyIndex uint64            `json:"modify_index"`
}

type instancesAnswer struct {
	Service   string     `json:"service"`
	Index     uint64     `json:"index"`
	Instances []instance `json:"instances"`
}

type serviceSummary struct {
	Name        string `json:"name"`
	Instances   int    `json:"instances"`
	Passing     int    `json:"passing"`
	Warning     int    `json:"warning"`
	Critical    int    `json:"critical"`
	ModifyIndex uint64 `json:"modify_index"`
}

type servicesAnswer struct {
	Index    uint64           `json:"index"`
	Services []serviceSummary `json:"services"`
}

type errorAnswer struct {
	Error  string `json:"error"`
	Fields []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"fields"`
}

func instanceURL(a *testutil.Agent, svc, id string) string {
	return a.URL + "/v1/services/" + url.PathEscape(svc) + "/instances/" + url.PathEscape(id)
}

// register PUTs an instance and fails the test unless it is accepted.
func register(t *testing.T, a *testutil.Agent, svc, id string, body map[string]any) instance {
	t.Helper()
	status, _, b := testutil.Do(t, "PUT", instanceURL(a, svc, id), body)
	if status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("register %s/%s: %d %s", svc, id, status, bytes.TrimSpace(b))
	}
	var in instance
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatalf("register %s/%s: %v", svc, id, err)
	}
	return in
}

func deregister(t *testing.T, a *testutil.Agent, svc, id string) {
	t.Helper()
	testutil.DoJSON(t, "DELETE", instanceURL(a, svc, id), nil, http.StatusNoContent, nil)
}

// listInstances GETs a service's instances with an optional raw query; it
// returns the decoded answer, the raw body and the index header.
func listInstances(t *testing.T, a *testutil.Agent, svc, query string) (instancesAnswer, []byte, uint64) {
	t.Helper()
	u := a.URL + "/v1/services/" + url.PathEscape(svc) + "/instances"
	if query != "" {
		u += "?" + query
	}
	status, h, b := testutil.Do(t, "GET", u, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, status, bytes.TrimSpace(b))
	}
	var ans instancesAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return ans, b, testutil.Index(t, h)
}

func listServices(t *testing.T, a *testutil.Agent) (servicesAnswer, []byte) {
	t.Helper()
	status, _, b := testutil.Do(t, "GET", a.URL+"/v1/services", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /v1/services: %d %s", status, bytes.TrimSpace(b))
	}
	var ans servicesAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		t.Fatalf("GET /v1/services: %v", err)
	}
	return ans, b
}

// getInstance returns the status of GET .../{id} and the instance when 200.
func getInstance(t *testing.T, a *testutil.Agent, svc, id string) (int, instance) {
	t.Helper()
	status, _, b := testutil.Do(t, "GET", instanceURL(a, svc, id), nil)
	var in instance
	if status == http.StatusOK {
		if err := json.Unmarshal(b, &in); err != nil {
			t.Fatalf("GET %s/%s: %v", svc, id, err)
		}
	}
	return status, in
}

// fullState is every byte the read API answers about the registry: the
// services list and each service's full instance list.
func fullState(t *testing.T, a *testutil.Agent) map[string]string {
	t.Helper()
	svcs, raw := listServices(t, a)
	st := map[string]string{"/v1/services": string(raw)}
	for _, s := range svcs.Services {
		_, b, _ := listInstances(t, a, s.Name, "")
		st[s.Name] = string(b)
	}
	return st
}

var serviceIndexes = regexp.MustCompile(`"(index|modify_index)":\d+`)

// withoutServiceIndexes blanks the answers' service-level indexes (the
// services list's, and each answer's "index"), which a restore moves on
// purpose; instances keep their own create and modify indexes.
func withoutServiceIndexes(st map[string]string) map[string]string {
	out := make(map[string]string, len(st))
	for k, v := range st {
		if k == "/v1/services" {
			v = serviceIndexes.ReplaceAllString(v, `"$1":_`)
		} else {
			v = regexp.MustCompile(`^\{"service":"[^"]*","index":\d+`).ReplaceAllString(v, `{"service":_`)
		}
		out[k] = v
	}
	return out
}

// diffState describes the first differences between two fullStates.
func diffState(before, after map[string]string) string {
	var keys []string
	for k := range before {
		keys = append(keys, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		if before[k] != after[k] {
			fmt.Fprintf(&b, "%s:\n  before: %.300s\n  after:  %.300s\n", k, before[k], after[k])
		}
	}
	return b.String()
}

// readyIndex is the index /readyz reports.
func readyIndex(t *testing.T, a *testutil.Agent) uint64 {
	t.Helper()
	var r struct {
		Index uint64 `json:"index"`
	}
	testutil.DoJSON(t, "GET", a.URL+"/readyz", nil, http.StatusOK, &r)
	return r.Index
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	Event string
	ID    string
	Data  string
}

// sseStream reads a watch stream in the background.
type sseStream struct {
	events   chan sseEvent
	comments atomic.Int64
	cancel   context.CancelFunc
	// headers is closed once the response headers arrived (or the request
	// failed); resp or err is set before.
	headers chan struct{}
	resp    *http.Response
	err     error
	done    chan struct{}
}

// openSSE opens GET u as an event stream (with Last-Event-ID when lastID
// is not empty) and fails the test unless it answers 200 with the headers
// of an event stream within 10 s.
func openSSE(t *testing.T, ctx context.Context, u, lastID string) *sseStream {
	t.Helper()
	s := dialSSE(t, ctx, u, lastID)
	s.waitHeaders(t, 10*time.Second)
	return s
}

// dialSSE starts GET u as an event stream and returns at once; the
// response headers and events arrive in the background.
func dialSSE(t *testing.T, ctx context.Context, u, lastID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	s := &sseStream{events: make(chan sseEvent, 1024), cancel: cancel, headers: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		resp, err := testutil.Client.Do(req)
		s.resp, s.err = resp, err
		close(s.headers)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Event != "" || ev.Data != "" {
					select {
					case s.events <- ev:
					case <-ctx.Done():
						return
					}
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				s.comments.Add(1)
			case strings.HasPrefix(line, "event: "):
				ev.Event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

// waitHeaders fails the test unless the stream's response headers arrive
// within timeout with status 200 and an event-stream content type.
func (s *sseStream) waitHeaders(t *testing.T, timeout time.Duration) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-s.headers:
	case <-timer.C:
		t.Fatalf("watch: no response headers within %v", timeout)
	}
	if s.err != nil {
		t.Fatalf("watch: %v", s.err)
	}
	if s.resp.StatusCode != http.StatusOK {
		t.Fatalf("watch: status %d", s.resp.StatusCode)
	}
	if ct := s.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("watch: Content-Type %q", ct)
	}
}

// headersArrived reports whether the response headers are in.
func (s *sseStream) headersArrived() bool {
	select {
	case <-s.headers:
		return true
	default:
		return false
	}
}

// close disconnects and waits for the reader to finish.
func (s *sseStream) close() {
	s.cancel()
	<-s.done
}

// next returns the next event, failing the test after timeout.
func (s *sseStream) next(t *testing.T, timeout time.Duration) sseEvent {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case ev := <-s.events:
		return ev
	case <-s.done:
		select {
		case ev := <-s.events:
			return ev
		default:
		}
		t.Fatal("watch stream ended")
	case <-timer.C:
		t.Fatalf("no watch event within %v", timeout)
	}
	return sseEvent{}
}

// watchData is the data of a watch event.
type watchData struct {
	Index     uint64     `json:"index"`
	Instances []instance `json:"instances"`
	Upserted  []instance `json:"upserted"`
	Deleted   []struct {
		Service string `json:"service"`
		ID      string `json:"id"`
	} `json:"deleted"`
}

func decodeEvent(t *testing.T, ev sseEvent) watchData {
	t.Helper()
	var d watchData
	if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
		t.Fatalf("event %s data %q: %v", ev.Event, ev.Data, err)
	}
	if want := fmt.Sprint(d.Index); ev.ID != want {
		t.Fatalf("event %s has id %q but index %d", ev.Event, ev.ID, d.Index)
	}
	return d
}

// cliResult is the outcome of one run of the binary as a CLI.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the binary with args, bounded by ctx and 30 s.
func runCLI(t *testing.T, ctx context.Context, args ...string) cliResult {
	t.Helper()
	return runCLIEnv(t, ctx, nil, args...)
}

// runCLIEnv is runCLI with extra environment (KEY=VALUE).
func runCLIEnv(t *testing.T, ctx context.Context, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.BuildBinary(t), args...)
	cmd.Env = append(cliEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("roster %s: %v (stderr %q)", strings.Join(args, " "), ctx.Err(), res.stderr)
	}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("roster %s: %v", strings.Join(args, " "), err)
		}
		res.code = ee.ExitCode()
	}
	return res
}

// cliEnv is the environment without ROSTER_* variables.
func cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ROSTER_") {
			env = append(env, kv)
		}
	}
	return env
}

// lineLog collects the lines of a subprocess's output.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

func (l *lineLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// pollFor polls cond every 10 ms for up to d and reports whether it held;
// the message names the wait. For checks that must not fail the test at
// once.
func pollFor(d time.Duration, cond func() bool) (string, bool) {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return "", true
		}
		if time.Now().After(deadline) {
			return d.String(), false
		}
		t := time.NewTimer(10 * time.Millisecond)
		<-t.C
	}
}
