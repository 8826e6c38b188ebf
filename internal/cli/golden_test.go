package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.txt from the current output")

// answer is one scripted answer of the fake agent.
type answer struct {
	status int
	header map[string]string
	body   string
}

// fakeAgent answers each "METHOD /path" with its scripted answers in
// order (the last one repeats) and logs every request it gets, so a test
// sees both what the command sent and what it printed.
type fakeAgent struct {
	srv *httptest.Server

	mu      sync.Mutex
	answers map[string][]answer
	log     []string
}

func newFakeAgent(t *testing.T, answers map[string][]answer) *fakeAgent {
	t.Helper()
	f := &fakeAgent{answers: answers}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAgent) addr() string { return f.srv.Listener.Addr().String() }

func (f *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Method + " " + r.URL.EscapedPath()
	f.mu.Lock()
	f.log = append(f.log, describeRequest(r, body))
	as := f.answers[key]
	var a answer
	switch {
	case len(as) == 0:
		a = answer{status: http.StatusTeapot, body: `{"error":"no answer scripted for ` + key + `"}`}
	case len(as) == 1:
		a = as[0]
	default:
		a, f.answers[key] = as[0], as[1:]
	}
	f.mu.Unlock()
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	if a.status == 0 {
		a.status = http.StatusOK
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

// describeRequest is one line per request: method, path, the query
// sorted, the Last-Event-ID header and the body (JSON with sorted keys).
func describeRequest(r *http.Request, body []byte) string {
	s := r.Method + " " + r.URL.EscapedPath()
	if q := r.URL.Query(); len(q) > 0 {
		s += "?" + q.Encode()
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		s += " Last-Event-ID=" + id
	}
	if len(body) > 0 {
		var v any
		if json.Unmarshal(body, &v) == nil {
			body, _ = json.Marshal(v)
		}
		s += " " + strings.TrimSpace(string(body))
	}
	return s
}

func (f *fakeAgent) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

func jsonAnswer(status int, index string, body string) answer {
	h := map[string]string{"Content-Type": "application/json"}
	if index != "" {
		h["X-Roster-Index"] = index
	}
	return answer{status: status, header: h, body: body}
}

func sse(events ...string) answer {
	return answer{header: map[string]string{"Content-Type": "text/event-stream"}, body: strings.Join(events, "")}
}

func sseEvent(typ, id, data string) string {
	return "event: " + typ + "\nid: " + id + "\ndata: " + data + "\n\n"
}

const (
	web1 = `{"service":"web","id":"web-1","address":"10.0.0.1","port":80,"tags":["a"],"meta":{"k":"w"},"weight":1,"priority":0,"region":"eu","canary":true,"checks":[{"id":"ttl","type":"ttl","ttl":"30s","status":"passing"},{"id":"http","type":"http","target":"http://x/h","interval":"10s","status":"passing"}],"health":"passing","create_index":7,"modify_index":9}`
	web2 = `{"service":"web","id":"web-2","address":"fd00::2","port":8080,"weight":5,"priority":2,"zone":"eu1","health":"warning","create_index":8,"modify_index":8}`
	web3 = `{"service":"web","id":"web-3","address":"db.internal","port":5432,"tags":["x","y"],"weight":1,"priority":0,"health":"critical","create_index":10,"modify_index":10}`

	badFields = `{"error":"invalid instance","fields":[{"field":"address","message":"must be an IP address or host name"},{"field":"port","message":"must be 1-65535"}]}`
	notFound  = `{"error":"instance web/web-1 not found"}`

	members = `{"leader":"s1","self":"s2","members":[` +
		`{"id":"s1","address":"127.0.0.1:7001","voter":true,"http_addr":"127.0.0.1:8501","role":"leader","leader":"s1","last_contact_ms":0,"term":3,"last_index":40,"commit_index":40,"applied_index":40,"ready":true,"healthy":true},` +
		`{"id":"s2","address":"127.0.0.1:7002","voter":true,"http_addr":"127.0.0.1:8502","role":"follower","leader":"s1","last_contact_ms":12,"term":3,"last_index":40,"commit_index":40,"applied_index":39,"ready":true,"healthy":true},` +
		`{"id":"s3","address":"127.0.0.1:7003","voter":false,"role":"unreachable","last_contact_ms":-1,"ready":false,"healthy":false,"error":"dial tcp 127.0.0.1:7003: connection refused"}]}`
)

type goldenCase struct {
	name    string
	args    []string // {addr}: the fake agent, {down}: nobody listens, {dir}: a temp dir
	answers map[string][]answer
	files   map[string]string // files written in {dir} before the run
	env     map[string]string
	check   []string // files in {dir} whose content the golden file shows after the run
}

func goldenCases() []goldenCase {
	webPath := "/v1/services/web/instances"
	return []goldenCase{
		{name: "register", args: []string{"register", "--service", "web", "--id", "web-1", "--address", "10.0.0.1", "--port", "80", "--tag", "a", "--ttl", "30s", "--meta", "k=v", "--meta", "k=w", "--check-http", "http://x/h", "--canary", "--region", "eu"},
			answers: map[string][]answer{"PUT " + webPath + "/web-1": {jsonAnswer(200, "9", web1)}}},
		{name: "register-json", args: []string{"register", "--json", "--service", "web", "--id", "web-1", "--address", "10.0.0.1", "--port", "80", "--weight", "3", "--priority", "1", "--zone", "eu1", "--revision", "r1", "--repo", "git", "--deregister-after", "1m", "--check-tcp", "10.0.0.1:80", "--check-grpc", "10.0.0.1:81/h", "--check-interval", "5s", "--check-timeout", "1s"},
			answers: map[string][]answer{"PUT " + webPath + "/web-1": {jsonAnswer(200, "9", web1)}}},
		{name: "register-generated-id", args: []string{"register", "--service", "web", "--address", "fd00::2", "--port", "8080"},
			answers: map[string][]answer{"POST " + webPath: {jsonAnswer(201, "8", web2)}}},
		{name: "register-file", args: []string{"register", "--file", "{dir}/in.json", "--port", "81", "--tag", "b"},
			files:   map[string]string{"in.json": `{"service":"web","id":"web-1","address":"10.0.0.1","port":80,"tags":["a"],"meta":{"m":"1"},"checks":[{"type":"ttl","ttl":"10s"}]}`},
			answers: map[string][]answer{"PUT " + webPath + "/web-1": {jsonAnswer(200, "9", web1)}}},
		{name: "register-file-missing", args: []string{"register", "--file", "{dir}/missing.json"}},
		{name: "register-meta-without-equals", args: []string{"register", "--service", "web", "--address", "10.0.0.1", "--port", "80", "--meta", "k"}},
		{name: "register-no-service", args: []string{"register", "--address", "10.0.0.1", "--port", "80"}},
		{name: "register-bad-fields", args: []string{"register", "--service", "web", "--address", "not an address", "--port", "70000"},
			answers: map[string][]answer{"POST " + webPath: {jsonAnswer(400, "", badFields)}}},
		{name: "deregister", args: []string{"deregister", "web", "web-1"},
			answers: map[string][]answer{"DELETE " + webPath + "/web-1": {jsonAnswer(200, "11", "")}}},
		{name: "deregister-json", args: []string{"deregister", "--json", "web", "web-1"},
			answers: map[string][]answer{"DELETE " + webPath + "/web-1": {jsonAnswer(200, "11", "")}}},
		{name: "deregister-not-found", args: []string{"deregister", "web", "web-1"},
			answers: map[string][]answer{"DELETE " + webPath + "/web-1": {jsonAnswer(404, "11", notFound)}}},
		{name: "deregister-one-arg", args: []string{"deregister", "web"}},
		{name: "heartbeat", args: []string{"heartbeat", "web", "web-1"},
			answers: map[string][]answer{"PUT " + webPath + "/web-1/heartbeat": {jsonAnswer(200, "", "")}}},
		{name: "heartbeat-json", args: []string{"heartbeat", "web", "web-1", "--json"},
			answers: map[string][]answer{"PUT " + webPath + "/web-1/heartbeat": {jsonAnswer(200, "", "")}}},
		{name: "heartbeat-no-ttl", args: []string{"heartbeat", "web", "web-1"},
			answers: map[string][]answer{"PUT " + webPath + "/web-1/heartbeat": {jsonAnswer(409, "", `{"error":"instance web/web-1 has no TTL check"}`)}}},
		{name: "services", args: []string{"services"},
			answers: map[string][]answer{"GET /v1/services": {jsonAnswer(200, "12", `{"index":12,"services":[{"name":"api","instances":1,"passing":1,"warning":0,"critical":0,"modify_index":5},{"name":"web","instances":3,"passing":1,"warning":1,"critical":1,"modify_index":12}]}`)}}},
		{name: "services-json", args: []string{"services", "--json"},
			answers: map[string][]answer{"GET /v1/services": {jsonAnswer(200, "12", `{"index":12,"services":[{"name":"api","instances":1,"passing":1,"warning":0,"critical":0,"modify_index":5},{"name":"web","instances":3,"passing":1,"warning":1,"critical":1,"modify_index":12}]}`)}}},
		{name: "services-empty-json", args: []string{"services", "--json"},
			answers: map[string][]answer{"GET /v1/services": {jsonAnswer(200, "1", `{"index":0,"services":[]}`)}}},
		{name: "services-address-from-env", args: []string{"services"}, env: map[string]string{"ROSTER_HTTP_ADDR": "{addr}"},
			answers: map[string][]answer{"GET /v1/services": {jsonAnswer(200, "1", `{"index":0,"services":[]}`)}}},
		{name: "services-unreachable", args: []string{"services", "--http-addr", "{down}"}},
		{name: "services-bad-answer", args: []string{"services"},
			answers: map[string][]answer{"GET /v1/services": {{header: map[string]string{"Content-Type": "text/html"}, body: "<html>hello</html>"}}}},
		{name: "services-server-error-text", args: []string{"services"},
			answers: map[string][]answer{"GET /v1/services": {{status: 502, header: map[string]string{"Content-Type": "text/plain"}, body: "bad gateway\n"}}}},
		{name: "services-bad-address", args: []string{"services", "--http-addr", "foo bar"}},
		{name: "instances", args: []string{"instances", "web"},
			answers: map[string][]answer{"GET " + webPath: {jsonAnswer(200, "10", `{"service":"web","index":10,"instances":[`+web1+`,`+web2+`,`+web3+`]}`)}}},
		{name: "instances-json-filters", args: []string{"instances", "WEB", "--json", "--passing", "--tag", "b", "--tag", "a", "--meta", "k=v", "--meta", "k=w", "--meta", "j=", "--zone", "EU1"},
			answers: map[string][]answer{"GET /v1/services/WEB/instances": {jsonAnswer(200, "10", `{"service":"web","index":10,"instances":[`+web1+`]}`)}}},
		{name: "instances-healthy", args: []string{"instances", "web", "--healthy"},
			answers: map[string][]answer{"GET " + webPath: {jsonAnswer(200, "10", `{"service":"web","index":10,"instances":[`+web2+`]}`)}}},
		{name: "instances-empty-json", args: []string{"instances", "web", "--json"},
			answers: map[string][]answer{"GET " + webPath: {jsonAnswer(200, "1", `{"service":"web","index":0,"instances":[]}`)}}},
		{name: "instances-bad-meta", args: []string{"instances", "web", "--meta", "k", "--meta", "=v"},
			answers: map[string][]answer{"GET " + webPath: {jsonAnswer(400, "", `{"error":"invalid query","fields":[{"field":"meta","message":"must be key=value"},{"field":"meta","message":"must be key=value"}]}`)}}},
		{name: "watch", args: []string{"watch", "web", "--tag", "a"},
			answers: map[string][]answer{"GET /v1/services/web/watch": {
				sse(sseEvent("snapshot", "10", `{"index":10,"instances":[`+web1+`,`+web2+`]}`),
					sseEvent("change", "12", `{"index":12,"upserted":[`+web2+`,`+web3+`],"deleted":[]}`),
					sseEvent("change", "13", `{"index":13,"upserted":[],"deleted":[{"service":"web","id":"web-1"}]}`)),
				jsonAnswer(400, "", `{"error":"invalid query","fields":[{"field":"tag","message":"too many"}]}`)}}},
		{name: "watch-json", args: []string{"watch", "web", "--json"},
			answers: map[string][]answer{"GET /v1/services/web/watch": {
				sse(sseEvent("snapshot", "10", `{"index":10,"instances":[`+web1+`]}`),
					sseEvent("change", "12", `{"index":12,"upserted":[`+web3+`],"deleted":[]}`)),
				jsonAnswer(404, "", `{"error":"gone"}`)}}},
		{name: "watch-bad-event", args: []string{"watch", "web"},
			answers: map[string][]answer{"GET /v1/services/web/watch": {
				sse(sseEvent("snapshot", "10", `{"index":"ten"}`)),
				jsonAnswer(404, "", `{"error":"gone"}`)}}},
		{name: "snapshot-save", args: []string{"snapshot", "save", "{dir}/s.snap"}, check: []string{"s.snap"},
			answers: map[string][]answer{"GET /v1/registry/snapshot": {{header: map[string]string{"Content-Type": "application/x-ndjson"}, body: "{\"version\":1}\n{\"instance\":1}\n"}}}},
		{name: "snapshot-save-json", args: []string{"snapshot", "--json", "save", "{dir}/s.snap"}, check: []string{"s.snap"},
			answers: map[string][]answer{"GET /v1/registry/snapshot": {{body: "snapshot bytes\n"}}}},
		{name: "snapshot-save-unavailable", args: []string{"snapshot", "save", "{dir}/s.snap"}, check: []string{"s.snap"},
			answers: map[string][]answer{"GET /v1/registry/snapshot": {jsonAnswer(503, "", `{"error":"agent is not ready"}`)}}},
		{name: "snapshot-restore", args: []string{"snapshot", "restore", "{dir}/in.snap"}, files: map[string]string{"in.snap": "{\"version\":1}\n"},
			answers: map[string][]answer{"PUT /v1/registry/snapshot": {jsonAnswer(200, "42", `{"index":42}`)}}},
		{name: "snapshot-restore-json", args: []string{"snapshot", "restore", "--json", "{dir}/in.snap"}, files: map[string]string{"in.snap": "{\"version\":1}\n"},
			answers: map[string][]answer{"PUT /v1/registry/snapshot": {jsonAnswer(200, "42", `{"index":42}`)}}},
		{name: "snapshot-restore-bad", args: []string{"snapshot", "restore", "{dir}/in.snap"}, files: map[string]string{"in.snap": "garbage\n"},
			answers: map[string][]answer{"PUT /v1/registry/snapshot": {jsonAnswer(400, "", `{"error":"bad snapshot: line 1: invalid character 'g'"}`)}}},
		{name: "snapshot-restore-missing", args: []string{"snapshot", "restore", "{dir}/missing.snap"}},
		{name: "snapshot-bad-verb", args: []string{"snapshot", "take", "x"}},
		{name: "members", args: []string{"members"},
			answers: map[string][]answer{"GET /v1/cluster/members": {jsonAnswer(200, "", members)}}},
		{name: "members-json", args: []string{"members", "--json"},
			answers: map[string][]answer{"GET /v1/cluster/members": {jsonAnswer(200, "", members)}}},
		{name: "members-not-clustered", args: []string{"members"},
			answers: map[string][]answer{"GET /v1/cluster/members": {{status: 404, header: map[string]string{"Content-Type": "text/plain; charset=utf-8"}, body: "404 page not found\n"}}}},
		{name: "members-no-leader", args: []string{"members"},
			answers: map[string][]answer{"GET /v1/cluster/members": {jsonAnswer(503, "", `{"error":"no cluster leader"}`)}}},
		{name: "remove-peer", args: []string{"operator", "raft", "remove-peer", "127.0.0.1:7003"},
			answers: map[string][]answer{"DELETE /v1/cluster/peers/127.0.0.1:7003": {jsonAnswer(200, "", `{"removed":"s3"}`)}}},
		{name: "remove-peer-json", args: []string{"operator", "raft", "remove-peer", "s3", "--json"},
			answers: map[string][]answer{"DELETE /v1/cluster/peers/s3": {jsonAnswer(200, "", `{"removed":"s3"}`)}}},
		{name: "remove-peer-unknown", args: []string{"operator", "raft", "remove-peer", "s9"},
			answers: map[string][]answer{"DELETE /v1/cluster/peers/s9": {jsonAnswer(404, "", `{"error":"no server s9 in the cluster"}`)}}},
		{name: "remove-peer-not-clustered", args: []string{"operator", "raft", "remove-peer", "s9"},
			answers: map[string][]answer{"DELETE /v1/cluster/peers/s9": {{status: 404, header: map[string]string{"Content-Type": "text/plain; charset=utf-8"}, body: "404 page not found\n"}}}},
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestGolden runs every client command against a scripted agent and
// compares what it sent, its exit code and every byte it printed with
// testdata/golden/NAME.txt (-update rewrites them).
func TestGolden(t *testing.T) {
	down := closedAddr(t)
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAgent(t, tc.answers)
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			expand := strings.NewReplacer("{addr}", f.addr(), "{down}", down, "{dir}", dir)
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = expand.Replace(a)
			}
			if tc.env["ROSTER_HTTP_ADDR"] == "" && !hasFlag(args, "--http-addr") {
				args = append(args, "--http-addr", f.addr())
			}
			t.Setenv("ROSTER_HTTP_ADDR", expand.Replace(tc.env["ROSTER_HTTP_ADDR"]))
			var stdout, stderr bytes.Buffer
			code := Main(args, &stdout, &stderr)

			hide := strings.NewReplacer(f.addr(), "{addr}", down, "{down}", dir, "{dir}")
			var b strings.Builder
			fmt.Fprintf(&b, "$ roster %s\n", hide.Replace(strings.Join(args, " ")))
			for _, r := range f.requests() {
				fmt.Fprintf(&b, "> %s\n", r)
			}
			fmt.Fprintf(&b, "exit %d\n--- stdout\n%s--- stderr\n%s", code, hide.Replace(stdout.String()), hide.Replace(stderr.String()))
			for _, name := range tc.check {
				content, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					fmt.Fprintf(&b, "--- file %s: %v\n", name, hide.Replace(err.Error()))
					continue
				}
				fmt.Fprintf(&b, "--- file %s\n%s", name, content)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if _, ok := tc.files[e.Name()]; !ok && !slices.Contains(tc.check, e.Name()) {
					fmt.Fprintf(&b, "--- stray file %s\n", e.Name())
				}
			}
			got := b.String()

			golden := filepath.Join("testdata", "golden", tc.name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if d := cmp.Diff(string(want), got); d != "" {
				t.Errorf("%s differs (-want +got):\n%s", golden, d)
			}
		})
	}
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}
