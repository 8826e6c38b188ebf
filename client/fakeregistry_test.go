package client_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
)

// fakeRegistry is a scripted agent for resolver tests that need to see or
// steer every request: services with instances and indexes set by the
// test, blocking queries that honour index and wait as the agent does,
// 400 for names that are not service names, a status to fail a service's
// fetches with, and a log of every request.
type fakeRegistry struct {
	srv *httptest.Server

	mu       sync.Mutex
	index    uint64 // the registry's index: the last change
	services map[string]*fakeService
	changed  chan struct{} // closed and replaced at every change
	fail     map[string]int
	log      []fakeRequest
	open     map[string]int // requests in progress, by path
}

type fakeService struct {
	index     uint64
	instances []client.Instance
}

// fakeRequest is one request as the fake agent received it.
type fakeRequest struct {
	path  string
	index string // the index asked for; "" for none
	at    time.Time
}

var serviceName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

func newFakeRegistry(t testing.TB) *fakeRegistry {
	t.Helper()
	f := &fakeRegistry{index: 1, services: map[string]*fakeService{}, changed: make(chan struct{}),
		fail: map[string]int{}, open: map[string]int{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// client returns an SDK client of the fake agent.
func (f *fakeRegistry) client(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Address: f.srv.URL, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// set replaces service's passing instances: a change.
func (f *fakeRegistry) set(service string, ins ...client.Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	f.services[service] = &fakeService{index: f.index, instances: ins}
	close(f.changed)
	f.changed = make(chan struct{})
}

// failFetches makes the instance fetches of service answer status (0:
// answer again).
func (f *fakeRegistry) failFetches(service string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[service] = status
}

// requests returns the requests received for path so far.
func (f *fakeRegistry) requests(path string) []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeRequest
	for _, r := range f.log {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// inProgress is how many requests for path are being answered (blocking
// queries waiting for a change).
func (f *fakeRegistry) inProgress(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open[path]
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	f.log = append(f.log, fakeRequest{path: r.URL.Path, index: q.Get("index"), at: time.Now()})
	f.open[r.URL.Path]++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.open[r.URL.Path]--
		f.mu.Unlock()
	}()
	asked, _ := strconv.ParseUint(q.Get("index"), 10, 64)
	wait, _ := time.ParseDuration(q.Get("wait"))
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	if r.URL.Path == "/v1/services" {
		f.serveList(w, r, asked, timeout.C)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/v1/services/")
	name, ok2 := strings.CutSuffix(name, "/instances")
	if !ok || !ok2 {
		http.NotFound(w, r)
		return
	}
	f.serveInstances(w, r, name, asked, timeout.C)
}

// wait holds a blocking query while at (the index of the answer, read with
// f.mu held) does not pass asked, until the query's wait; it returns false
// when the request ends first.
func (f *fakeRegistry) wait(r *http.Request, asked uint64, timeout <-chan time.Time, at func() uint64) bool {
	for {
		f.mu.Lock()
		idx, changed := at(), f.changed
		f.mu.Unlock()
		if asked == 0 || idx > asked {
			return true
		}
		select {
		case <-changed:
		case <-timeout:
			return true
		case <-r.Context().Done():
			return false
		}
	}
}

func (f *fakeRegistry) serveList(w http.ResponseWriter, r *http.Request, asked uint64, timeout <-chan time.Time) {
	if !f.wait(r, asked, timeout, func() uint64 { return f.index }) {
		return
	}
	f.mu.Lock()
	out := struct {
		Index    uint64                  `json:"index"`
		Services []client.ServiceSummary `json:"services"`
	}{Index: f.index}
	for name, s := range f.services {
		if len(s.instances) > 0 {
			out.Services = append(out.Services, client.ServiceSummary{Name: name, Instances: len(s.instances),
				Passing: len(s.instances), ModifyIndex: s.index})
		}
	}
	f.mu.Unlock()
	f.reply(w, out.Index, out)
}

func (f *fakeRegistry) serveInstances(w http.ResponseWriter, r *http.Request, name string, asked uint64, timeout <-chan time.Time) {
	if !serviceName.MatchString(name) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid service name %q"}`, name)
		return
	}
	f.mu.Lock()
	status := f.fail[name]
	f.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":"scripted failure"}`)
		return
	}
	index := func() uint64 {
		if s := f.services[name]; s != nil {
			return s.index
		}
		return 1
	}
	if !f.wait(r, asked, timeout, index) {
		return
	}
	f.mu.Lock()
	out := struct {
		Service   string            `json:"service"`
		Index     uint64            `json:"index"`
		Instances []client.Instance `json:"instances"`
	}{Service: name, Index: index(), Instances: []client.Instance{}}
	if s := f.services[name]; s != nil {
		out.Instances = append(out.Instances, s.instances...)
	}
	f.mu.Unlock()
	f.reply(w, out.Index, out)
}

func (f *fakeRegistry) reply(w http.ResponseWriter, index uint64, body any) {
	w.Header().Set(client.IndexHeader, strconv.FormatUint(index, 10))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// inst is a passing instance of service at 127.0.0.1:port.
func inst(service, id string, port int, meta map[string]string, tags ...string) client.Instance {
	return client.Instance{Service: service, ID: id, Address: "127.0.0.1", Port: port, Meta: meta, Tags: tags,
		Weight: 1, Health: client.Passing}
}
