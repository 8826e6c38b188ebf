package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/httpapi"
	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
	"github.com/rosterhq/roster/internal/testutil"
)

var locationRE = regexp.MustCompile(`^/v1/services/web/instances/([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})$`)

func TestCreate(t *testing.T) {
	s := newStack(t)
	r := s.mustDo(t, http.StatusCreated, "POST", "/v1/services/Web/instances", `{"address":"10.0.0.1","port":8080,"tags":["v1"]}`)
	m := locationRE.FindStringSubmatch(r.header.Get("Location"))
	if m == nil {
		t.Fatalf("Location %q is not /v1/services/web/instances/<uuid>", r.header.Get("Location"))
	}
	var in registry.Instance
	if err := json.Unmarshal(r.body, &in); err != nil {
		t.Fatal(err)
	}
	idx := r.index(t)
	if in.ID != m[1] || in.Service != "web" || in.CreateIndex != idx || in.ModifyIndex != idx || in.Weight != 1 || in.Health != registry.Passing {
		t.Errorf("created %+v (index header %d)", in, idx)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	got := s.mustDo(t, http.StatusOK, "GET", r.header.Get("Location"), "")
	var back registry.Instance
	if err := json.Unmarshal(got.body, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, in) {
		t.Errorf("GET Location = %+v, want %+v", back, in)
	}
	if got.index(t) != in.ModifyIndex {
		t.Errorf("GET index %d, want the instance's ModifyIndex %d", got.index(t), in.ModifyIndex)
	}

	// POST with an ID creates it once, then replaces it.
	s.mustDo(t, http.StatusCreated, "POST", "/v1/services/web/instances", `{"id":"fixed","address":"10.0.0.2","port":1}`)
	r2 := s.mustDo(t, http.StatusOK, "POST", "/v1/services/web/instances", `{"id":"fixed","address":"10.0.0.2","port":2}`)
	if loc := r2.header.Get("Location"); loc != "" {
		t.Errorf("replacement has Location %q", loc)
	}
}

func TestUpsert(t *testing.T) {
	s := newStack(t)
	first := s.mustDo(t, http.StatusCreated, "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80}`)
	if loc := first.header.Get("Location"); loc != "/v1/services/web/instances/a" {
		t.Errorf("Location %q", loc)
	}
	second := s.mustDo(t, http.StatusOK, "PUT", "/v1/services/web/instances/a", `{"service":"WEB","id":"a","address":"10.0.0.1","port":81}`)
	var a, b registry.Instance
	_ = json.Unmarshal(first.body, &a)
	_ = json.Unmarshal(second.body, &b)
	if b.Port != 81 || b.CreateIndex != a.CreateIndex || b.ModifyIndex <= a.ModifyIndex {
		t.Errorf("upsert: %+v after %+v", b, a)
	}
	if second.index(t) != b.ModifyIndex {
		t.Errorf("index header %d, want %d", second.index(t), b.ModifyIndex)
	}

	// A body read back from GET may be sent again as is.
	got := s.mustDo(t, http.StatusOK, "GET", "/v1/services/web/instances/a", "")
	s.mustDo(t, http.StatusOK, "PUT", "/v1/services/web/instances/a", string(got.body))

	tests := []struct {
		name, body string
		want       []string
	}{
		{"id differs", `{"id":"b","address":"10.0.0.1","port":80}`, []string{"id"}},
		{"service differs", `{"service":"db","address":"10.0.0.1","port":80}`, []string{"service"}},
		{"both differ and invalid port", `{"service":"db","id":"b","address":"10.0.0.1","port":0}`, []string{"id", "port", "service"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.mustDo(t, http.StatusBadRequest, "PUT", "/v1/services/web/instances/a", tc.body)
			if got := fieldNames(decodeError(t, r.body)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fields %q, want %q", got, tc.want)
			}
		})
	}
	if r := s.do(t, "PUT", "/v1/services/web/instances/a%2Fb", `{"address":"10.0.0.1","port":80}`); r.code != http.StatusBadRequest {
		t.Errorf("PUT with an invalid path id = %d %s, want 400", r.code, r.body)
	}
}

func TestGetNotFound(t *testing.T) {
	s := newStack(t)
	s.register(t, &registry.Instance{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80})
	for _, path := range []string{"/v1/services/web/instances/b", "/v1/services/nope/instances/a"} {
		r := s.mustDo(t, http.StatusNotFound, "GET", path, "")
		decodeError(t, r.body)
	}
	r := s.mustDo(t, http.StatusBadRequest, "GET", "/v1/services/web/instances/a?index=x", "")
	if got := fieldNames(decodeError(t, r.body)); !reflect.DeepEqual(got, []string{"index"}) {
		t.Errorf("fields %q", got)
	}
}

func TestDeregister(t *testing.T) {
	s := newStack(t)
	res := s.register(t, &registry.Instance{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80})
	r := s.mustDo(t, http.StatusNoContent, "DELETE", "/v1/services/WEB/instances/a", "")
	if len(r.body) != 0 {
		t.Errorf("204 with a body: %s", r.body)
	}
	if r.index(t) <= res.Index {
		t.Errorf("delete index %d, want past %d", r.index(t), res.Index)
	}
	s.mustDo(t, http.StatusNotFound, "GET", "/v1/services/web/instances/a", "")
	r = s.mustDo(t, http.StatusNotFound, "DELETE", "/v1/services/web/instances/a", "")
	decodeError(t, r.body)
}

func TestHeartbeat(t *testing.T) {
	s := newStack(t)
	s.register(t, &registry.Instance{Service: "web", ID: "ttl", Address: "10.0.0.1", Port: 80,
		Checks: []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute)}}})
	s.register(t, &registry.Instance{Service: "web", ID: "plain", Address: "10.0.0.1", Port: 80})
	tests := []struct {
		path string
		want int
	}{
		{"/v1/services/web/instances/ttl/heartbeat", http.StatusNoContent},
		{"/v1/services/Web/instances/ttl/heartbeat", http.StatusNoContent},
		{"/v1/services/web/instances/nope/heartbeat", http.StatusNotFound},
		{"/v1/services/web/instances/plain/heartbeat", http.StatusConflict},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := s.mustDo(t, tc.want, "PUT", tc.path, "")
			if tc.want >= 400 {
				decodeError(t, r.body)
			}
		})
	}

	// A heartbeat turns a lapsed TTL check passing.
	if _, err := s.reg.SetCheckStatus(t.Context(), registry.Key{Service: "web", ID: "ttl"}, registry.TTLCheckID, registry.Critical, "lapsed"); err != nil {
		t.Fatal(err)
	}
	s.mustDo(t, http.StatusNoContent, "PUT", "/v1/services/web/instances/ttl/heartbeat", "")
	if in, _ := s.reg.Get(registry.Key{Service: "web", ID: "ttl"}); in.Health != registry.Passing {
		t.Errorf("health %q after heartbeat, want passing", in.Health)
	}

	r := s.mustDo(t, http.StatusOK, "PUT", "/v1/heartbeats",
		`{"instances":[{"service":"web","id":"ttl"},{"service":"web","id":"nope"},{"service":"web","id":"plain"}]}`)
	var res struct {
		Renewed  int            `json:"renewed"`
		NotFound []registry.Key `json:"not_found"`
		NoTTL    []registry.Key `json:"no_ttl"`
	}
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Renewed != 1 || len(res.NotFound) != 1 || res.NotFound[0].ID != "nope" || len(res.NoTTL) != 1 || res.NoTTL[0].ID != "plain" {
		t.Errorf("batch heartbeat = %+v", res)
	}
	s.mustDo(t, http.StatusBadRequest, "PUT", "/v1/heartbeats", `{"instances":{}}`)
}

// filterStack holds three instances of web with every health.
func filterStack(t *testing.T) *stack {
	t.Helper()
	s := newStack(t)
	ttl := []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute)}}
	s.register(t, &registry.Instance{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80, Zone: "eu-1",
		Tags: []string{"v1", "primary"}, Meta: map[string]string{"env": "prod"}, Checks: ttl})
	s.register(t, &registry.Instance{Service: "web", ID: "b", Address: "10.0.0.2", Port: 80, Zone: "eu-2",
		Tags: []string{"v1"}, Meta: map[string]string{"env": "dev"}, Checks: slices.Clone(ttl)})
	s.register(t, &registry.Instance{Service: "web", ID: "c", Address: "10.0.0.3", Port: 80, Zone: "eu-1",
		Tags: []string{"v2"}, Meta: map[string]string{"env": "prod"}, Checks: slices.Clone(ttl)})
	s.register(t, &registry.Instance{Service: "webapp", ID: "z", Address: "10.0.0.9", Port: 80, Zone: "eu-1", Tags: []string{"v1"}})
	ctx := t.Context()
	if _, err := s.reg.SetCheckStatus(ctx, registry.Key{Service: "web", ID: "b"}, "ttl", registry.Warning, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.reg.SetCheckStatus(ctx, registry.Key{Service: "web", ID: "c"}, "ttl", registry.Critical, ""); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFilters(t *testing.T) {
	s := filterStack(t)
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"a", "b", "c"}},
		{"status=any", []string{"a", "b", "c"}},
		{"status=passing", []string{"a"}},
		{"status=warning", []string{"a", "b"}},
		{"tag=v1", []string{"a", "b"}},
		{"tag=v1&tag=primary", []string{"a"}},
		{"tag=primary&tag=v1", []string{"a"}},
		{"tag=v3", []string{}},
		{"meta=env%3Dprod", []string{"a", "c"}},
		{"meta=env=prod&tag=v1", []string{"a"}},
		{"meta=env=prod&meta=env=dev", []string{"b"}}, // the last value of a key wins
		{"meta=env=", []string{}},
		{"zone=eu-1", []string{"a", "c"}},
		{"zone=EU-1", []string{"a", "c"}},
		{"zone=eu-1&status=passing&tag=v1&meta=env=prod", []string{"a"}},
		{"zone=eu-3", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			r := s.mustDo(t, http.StatusOK, "GET", "/v1/services/web/instances?"+tc.query, "")
			a := decodeInstances(t, r.body)
			if got := instanceIDs(a.Instances); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("?%s = %v, want %v", tc.query, got, tc.want)
			}
			if a.Index != r.index(t) || a.Service != "web" {
				t.Errorf("answer index %d service %q, header %d", a.Index, a.Service, r.index(t))
			}
		})
	}

	bad := []struct {
		query string
		want  []string
	}{
		{"status=critical", []string{"status"}},
		{"meta=env", []string{"meta"}},
		{"meta==prod", []string{"meta"}},
		{"index=-1", []string{"index"}},
		{"index=abc", []string{"index"}},
		{"wait=soon", []string{"wait"}},
		{"wait=-1s", []string{"wait"}},
		{"status=bad&meta=x&index=y&wait=z", []string{"index", "meta", "status", "wait"}},
	}
	for _, tc := range bad {
		t.Run("bad "+tc.query, func(t *testing.T) {
			r := s.mustDo(t, http.StatusBadRequest, "GET", "/v1/services/web/instances?"+tc.query, "")
			if got := fieldNames(decodeError(t, r.body)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("fields %q, want %q", got, tc.want)
			}
		})
	}
	r := s.mustDo(t, http.StatusBadRequest, "GET", "/v1/services/no_such!/instances", "")
	if got := fieldNames(decodeError(t, r.body)); !reflect.DeepEqual(got, []string{"service"}) {
		t.Errorf("bad service name: fields %q", got)
	}
}

func TestListServices(t *testing.T) {
	s := filterStack(t)
	r := s.mustDo(t, http.StatusOK, "GET", "/v1/services", "")
	var a struct {
		Index    uint64                    `json:"index"`
		Services []registry.ServiceSummary `json:"services"`
	}
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	want := []registry.ServiceSummary{
		{Name: "web", Instances: 3, Passing: 1, Warning: 1, Critical: 1},
		{Name: "webapp", Instances: 1, Passing: 1},
	}
	for i := range a.Services {
		a.Services[i].ModifyIndex = 0
	}
	if !reflect.DeepEqual(a.Services, want) || a.Index != r.index(t) {
		t.Errorf("services %+v index %d (header %d), want %+v", a.Services, a.Index, r.index(t), want)
	}
}

func TestBlockingQuery(t *testing.T) {
	s := newStack(t)
	s.register(t, &registry.Instance{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80})
	first := s.mustDo(t, http.StatusOK, "GET", "/v1/services/web/instances", "")
	idx := first.index(t)

	t.Run("wakes on a change", func(t *testing.T) {
		done := make(chan response, 1)
		go func() { done <- s.do(t, "GET", fmt.Sprintf("/v1/services/web/instances?index=%d&wait=30s", idx), "") }()
		ctx := testutil.Context(t, 30*time.Second)
		testutil.WaitFor(t, ctx, "the query to block", func() bool { return s.st.Stats().Watchers > 0 })
		// Another service's change does not answer it.
		s.register(t, &registry.Instance{Service: "db", ID: "x", Address: "10.0.0.1", Port: 80})
		res := s.register(t, &registry.Instance{Service: "web", ID: "b", Address: "10.0.0.2", Port: 80})
		select {
		case r := <-done:
			if r.code != http.StatusOK || r.index(t) != res.Index {
				t.Fatalf("woke with %d index %s, want 200 at %d", r.code, r.header.Get(httpapi.IndexHeader), res.Index)
			}
			if got := instanceIDs(decodeInstances(t, r.body).Instances); !reflect.DeepEqual(got, []string{"a", "b"}) {
				t.Errorf("instances %v", got)
			}
			idx = res.Index
		case <-ctx.Done():
			t.Fatal("blocking query did not wake")
		}
	})

	t.Run("times out with the same index", func(t *testing.T) {
		start := time.Now()
		r := s.mustDo(t, http.StatusOK, "GET", fmt.Sprintf("/v1/services/web/instances?index=%d&wait=200ms", idx), "")
		if el := time.Since(start); el < 200*time.Millisecond {
			t.Errorf("returned after %v, before the wait", el)
		}
		if r.index(t) != idx {
			t.Errorf("timed-out index %d, want %d", r.index(t), idx)
		}
	})

	t.Run("bare number wait is seconds", func(t *testing.T) {
		done := make(chan response, 1)
		go func() { done <- s.do(t, "GET", fmt.Sprintf("/v1/services/web/instances?index=%d&wait=30", idx), "") }()
		ctx := testutil.Context(t, 20*time.Second)
		testutil.WaitFor(t, ctx, "the query to block", func() bool { return s.st.Stats().Watchers > 0 })
		res := s.register(t, &registry.Instance{Service: "web", ID: "c", Address: "10.0.0.3", Port: 80})
		r := <-done
		if r.index(t) != res.Index {
			t.Errorf("index %d, want %d", r.index(t), res.Index)
		}
		idx = res.Index
	})

	t.Run("index ahead of the registry returns at once", func(t *testing.T) {
		r := s.mustDo(t, http.StatusOK, "GET", fmt.Sprintf("/v1/services/web/instances?index=%d&wait=1m", idx+1000), "")
		if r.index(t) != idx {
			t.Errorf("index %d, want %d", r.index(t), idx)
		}
	})

	t.Run("services list", func(t *testing.T) {
		r := s.mustDo(t, http.StatusOK, "GET", "/v1/services", "")
		sidx := r.index(t)
		done := make(chan response, 1)
		go func() { done <- s.do(t, "GET", fmt.Sprintf("/v1/services?index=%d&wait=30s", sidx), "") }()
		ctx := testutil.Context(t, 20*time.Second)
		testutil.WaitFor(t, ctx, "the query to block", func() bool { return s.st.Stats().Watchers > 0 })
		s.register(t, &registry.Instance{Service: "cache", ID: "x", Address: "10.0.0.1", Port: 80})
		if r := <-done; r.index(t) <= sidx || !strings.Contains(string(r.body), `"cache"`) {
			t.Errorf("services woke with %d %s", r.index(t), r.body)
		}
	})
}

func TestBlockingGetInstance(t *testing.T) {
	s := newStack(t)
	res := s.register(t, &registry.Instance{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80,
		Checks: []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute)}}})
	path := fmt.Sprintf("/v1/services/web/instances/a?index=%d&wait=30s", res.Index)
	ctx := testutil.Context(t, 30*time.Second)

	done := make(chan response, 1)
	go func() { done <- s.do(t, "GET", path, "") }()
	testutil.WaitFor(t, ctx, "the query to block", func() bool { return s.st.Stats().Watchers > 0 })
	// Another instance of the service changes: not this one.
	s.register(t, &registry.Instance{Service: "web", ID: "b", Address: "10.0.0.2", Port: 80})
	set, err := s.reg.SetCheckStatus(ctx, registry.Key{Service: "web", ID: "a"}, "ttl", registry.Critical, "down")
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	var in registry.Instance
	if err := json.Unmarshal(r.body, &in); err != nil || r.code != http.StatusOK {
		t.Fatalf("woke with %d %s", r.code, r.body)
	}
	if in.Health != registry.Critical || r.index(t) != set.Index {
		t.Errorf("woke with health %q index %d, want critical at %d", in.Health, r.index(t), set.Index)
	}

	go func() {
		done <- s.do(t, "GET", fmt.Sprintf("/v1/services/web/instances/a?index=%d&wait=30s", set.Index), "")
	}()
	testutil.WaitFor(t, ctx, "the query to block", func() bool { return s.st.Stats().Watchers > 0 })
	idx, err := s.reg.Deregister(ctx, registry.Key{Service: "web", ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	r = <-done
	if r.code != http.StatusNotFound || r.index(t) != idx {
		t.Errorf("after removal: %d index %s, want 404 at %d", r.code, r.header.Get(httpapi.IndexHeader), idx)
	}
}

func TestBodyErrors(t *testing.T) {
	s := newStack(t)
	ok := `"address":"10.0.0.1","port":80`
	tests := []struct {
		name string
		body string
		// want lists fields that must be named; msg is a part of the
		// message of the first of them.
		want []string
		msg  string
	}{
		{"unknown field", `{` + ok + `,"bogus":1}`, []string{"bogus"}, "unknown field"},
		{"unknown nested field", `{` + ok + `,"checks":[{"type":"ttl","ttl":"1m","color":"red"}]}`, []string{"color"}, "unknown field"},
		{"type mismatch", `{"address":"10.0.0.1","port":"80"}`, []string{"port"}, "number"},
		{"type mismatch nested", `{` + ok + `,"checks":[{"type":"tcp","target":"h:1","failures_before_critical":"3"}]}`, []string{"checks.failures_before_critical"}, "number"},
		{"type mismatch tags", `{` + ok + `,"tags":"v1"}`, []string{"tags"}, ""},
		{"not an object", `[1,2]`, []string{"body"}, ""},
		{"bad ttl", `{` + ok + `,"ttl":"soon"}`, []string{"ttl"}, "duration"},
		{"negative ttl", `{` + ok + `,"ttl":"-5s"}`, []string{"ttl"}, "duration"},
		{"bad check interval", `{` + ok + `,"checks":[{"type":"http","target":"http://h/","interval":"often"}]}`, []string{"checks[0].interval"}, "duration"},
		{"bad deregister_after", `{` + ok + `,"ttl":"10s","deregister_after":"later"}`, []string{"deregister_after"}, "duration"},
		{"deregister_after without ttl", `{` + ok + `,"deregister_after":"1m"}`, []string{"ttl"}, "required"},
		{"ttl twice", `{` + ok + `,"ttl":"10s","checks":[{"type":"ttl","ttl":"10s","id":"mine"}]}`, []string{"ttl"}, ""},
		{"empty", ``, []string{"body"}, "empty"},
		{"truncated", `{"address":`, []string{"body"}, ""},
		{"syntax", `{"address" "x"}`, []string{"body"}, "invalid JSON"},
		{"trailing object", `{` + ok + `} {}`, []string{"body"}, "after the JSON value"},
		{"trailing garbage", `{` + ok + `} x`, []string{"body"}, ""},
		{"too large", `{` + ok + `,"tags":["` + strings.Repeat("t", httpapi.MaxBodyBytes) + `"]}`, []string{"body"}, "larger than"},
		{"every bad field at once", `{"port":0,"ttl":"x","weight":500,"checks":[{"type":"http","target":"nope","timeout":"y"}]}`,
			[]string{"address", "checks[0].target", "checks[0].timeout", "port", "ttl", "weight"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.mustDo(t, http.StatusBadRequest, "POST", "/v1/services/web/instances", tc.body)
			e := decodeError(t, r.body)
			got := fieldNames(e)
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("fields %q do not name %q (body %s)", got, w, r.body)
				}
			}
			if tc.msg != "" && (len(e.Fields) == 0 || !strings.Contains(e.Fields[slices.Index(got, tc.want[0])].Message, tc.msg)) {
				t.Errorf("message does not mention %q: %s", tc.msg, r.body)
			}
		})
	}
	if st := s.st.Stats(); st.Instances != 0 {
		t.Errorf("%d instances registered by rejected requests", st.Instances)
	}
}

func TestAnswerCache(t *testing.T) {
	s := newStack(t)
	s.register(t, &registry.Instance{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80, Tags: []string{"x", "y"}})
	get := func(q string) response {
		t.Helper()
		return s.mustDo(t, http.StatusOK, "GET", "/v1/services/web/instances"+q, "")
	}
	a1, a2 := get(""), get("")
	if !bytes.Equal(a1.body, a2.body) || a1.index(t) != a2.index(t) {
		t.Errorf("same query at the same index answered differently:\n%s\n%s", a1.body, a2.body)
	}
	// Tag order does not make another answer.
	t1, t2 := get("?tag=x&tag=y"), get("?tag=y&tag=x")
	if !bytes.Equal(t1.body, t2.body) {
		t.Errorf("tag order changed the answer")
	}
	hits := s.counter(t, "roster_http_answer_cache_hits_total")
	if hits < 2 {
		t.Errorf("cache hits %v, want at least 2", hits)
	}

	s.register(t, &registry.Instance{Service: "web", ID: "b", Address: "10.0.0.2", Port: 80})
	a3 := get("")
	if bytes.Equal(a3.body, a1.body) || a3.index(t) <= a1.index(t) {
		t.Errorf("answer after a change is the old one:\n%s", a3.body)
	}
	if got := instanceIDs(decodeInstances(t, a3.body).Instances); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("instances %v", got)
	}
	// A health change is a change of the answer.
	if _, err := s.reg.Register(t.Context(), &registry.Instance{Service: "web", ID: "b", Address: "10.0.0.2", Port: 80,
		Checks: []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute), Status: registry.Critical}}}); err != nil {
		t.Fatal(err)
	}
	if got := instanceIDs(decodeInstances(t, get("?status=passing").body).Instances); !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("passing after b turned critical: %v", got)
	}

	// Many concurrent readers at one index all get the same bytes.
	var wg sync.WaitGroup
	bodies := make([][]byte, 32)
	for i := range bodies {
		wg.Go(func() { bodies[i] = s.do(t, "GET", "/v1/services/web/instances?zone=none", "").body })
	}
	wg.Wait()
	for i := range bodies {
		if !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatalf("reader %d got %s, reader 0 %s", i, bodies[i], bodies[0])
		}
	}
}

// TestAnswerCacheKeysDoNotCollide: different filters never share a cached
// answer.
//
// Regression test (fixed): cacheKey (query.go) joins the filters with NUL separators and
// one-letter tags ("\x00t", "\x00m") but does not escape them inside the
// values, which come straight from the query string. ?zone=%00tx and
// ?tag=x build the same key "web\x000\x00\x00tx", as do ?tag=a%00tb and
// ?tag=a&tag=b, so a query is answered from another query's cached answer
// at the same index (here a zone that matches nothing returns every
// instance tagged x). Values should be length-prefixed or escaped (or
// rejected when they contain NUL: no valid tag, zone or meta does).
func TestAnswerCacheKeysDoNotCollide(t *testing.T) {
	s := newStack(t)
	s.register(t, &registry.Instance{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80, Tags: []string{"x", "a", "b"},
		Meta: map[string]string{"k": "v"}})
	pairs := []struct{ cached, other string }{
		{"tag=x", "zone=" + url.QueryEscape("\x00tx")},
		{"tag=a&tag=b", "tag=" + url.QueryEscape("a\x00tb")},
		{"meta=" + url.QueryEscape("k=v"), "zone=" + url.QueryEscape("\x00mk=v")},
	}
	for _, p := range pairs {
		t.Run(p.other, func(t *testing.T) {
			first := decodeInstances(t, s.mustDo(t, http.StatusOK, "GET", "/v1/services/web/instances?"+p.cached, "").body)
			second := decodeInstances(t, s.mustDo(t, http.StatusOK, "GET", "/v1/services/web/instances?"+p.other, "").body)
			if len(second.Instances) != 0 {
				t.Errorf("?%s answered %v, the cached answer of ?%s (%v); want none", p.other, instanceIDs(second.Instances), p.cached, instanceIDs(first.Instances))
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	var ready, draining atomic.Bool
	var serving atomic.Pointer[error]
	st := store.New()
	reg := registry.New(registry.Config{State: st, Ready: ready.Load})
	api := httpapi.New(httpapi.Config{Registry: reg, Draining: draining.Load, Serving: func() error {
		if p := serving.Load(); p != nil {
			return *p
		}
		return nil
	}})
	s := &stack{st: st, reg: reg, api: api}
	s.srv = newServer(t, api)

	r := s.mustDo(t, http.StatusServiceUnavailable, "GET", "/readyz", "")
	if !strings.Contains(string(r.body), `"restoring"`) {
		t.Errorf("readyz while restoring: %s", r.body)
	}
	s.mustDo(t, http.StatusOK, "GET", "/healthz", "")
	r = s.mustDo(t, http.StatusServiceUnavailable, "GET", "/v1/services/web/instances", "")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	decodeError(t, r.body)
	s.mustDo(t, http.StatusServiceUnavailable, "GET", "/v1/services/web/instances/a", "")
	s.mustDo(t, http.StatusServiceUnavailable, "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80}`)
	s.mustDo(t, http.StatusServiceUnavailable, "GET", "/v1/services", "")
	s.mustDo(t, http.StatusServiceUnavailable, "GET", "/v1/services/web/watch", "")

	ready.Store(true)
	r = s.mustDo(t, http.StatusOK, "GET", "/readyz", "")
	if !strings.Contains(string(r.body), `"ready"`) {
		t.Errorf("readyz: %s", r.body)
	}
	noLeader := errors.New("not serving: no leader known")
	serving.Store(&noLeader)
	r = s.mustDo(t, http.StatusServiceUnavailable, "GET", "/readyz", "")
	if !strings.Contains(string(r.body), `"not serving"`) || !strings.Contains(string(r.body), "no leader known") {
		t.Errorf("readyz without a leader: %s", r.body)
	}
	serving.Store(nil)
	s.mustDo(t, http.StatusOK, "GET", "/readyz", "")
	draining.Store(true)
	r = s.mustDo(t, http.StatusServiceUnavailable, "GET", "/readyz", "")
	if !strings.Contains(string(r.body), `"draining"`) {
		t.Errorf("readyz while draining: %s", r.body)
	}
}

func TestMetrics(t *testing.T) {
	s := newStack(t)
	s.mustDo(t, http.StatusNotFound, "GET", "/v1/services/web/instances/a", "")
	r := s.mustDo(t, http.StatusOK, "GET", "/metrics", "")
	for _, want := range []string{
		"roster_http_requests_total",
		`route="GET /v1/services/{service}/instances/{id}"`,
		`code="404"`,
		"roster_http_request_duration_seconds",
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestSnapshotSaveRestore(t *testing.T) {
	s := newStack(t)
	s.register(t, &registry.Instance{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80})
	saved := s.mustDo(t, http.StatusOK, "GET", "/v1/registry/snapshot", "")
	if ct := saved.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q", ct)
	}
	s.register(t, &registry.Instance{Service: "web", ID: "b", Address: "10.0.0.2", Port: 80})
	before := s.mustDo(t, http.StatusOK, "GET", "/v1/services/web/instances", "")

	r := s.mustDo(t, http.StatusBadRequest, "PUT", "/v1/registry/snapshot", "not a snapshot")
	if got := fieldNames(decodeError(t, r.body)); !reflect.DeepEqual(got, []string{"snapshot"}) {
		t.Errorf("fields %q", got)
	}
	if after := s.mustDo(t, http.StatusOK, "GET", "/v1/services/web/instances", ""); !bytes.Equal(after.body, before.body) {
		t.Error("a rejected restore changed the answer")
	}

	s.mustDo(t, http.StatusOK, "PUT", "/v1/registry/snapshot", string(saved.body))
	got := decodeInstances(t, s.mustDo(t, http.StatusOK, "GET", "/v1/services/web/instances", "").body)
	if ids := instanceIDs(got.Instances); !reflect.DeepEqual(ids, []string{"a"}) {
		t.Errorf("after restore: %v, want [a]", ids)
	}
}

func TestSnapshotRestoreTooLarge(t *testing.T) {
	s := newStack(t, func(c *httpapi.Config) { c.MaxSnapshotBytes = 64 })
	// 413, not 400 as before: the upload is not wrong, only too large
	// for this agent's -snapshot-max-bytes.
	r := s.mustDo(t, http.StatusRequestEntityTooLarge, "PUT", "/v1/registry/snapshot", strings.Repeat("x", 1000))
	if !strings.Contains(string(r.body), "larger than 64 bytes") {
		t.Errorf("body %s, want the limit named", r.body)
	}
}
