package clusterapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/cluster"
	"github.com/rosterhq/roster/internal/registry"
)

// fakeCluster answers as a cluster in a given state.
type fakeCluster struct {
	known   bool
	contact time.Duration
	leads   bool
	err     error // every call fails with it when set
	members cluster.Membership

	mu      sync.Mutex
	removed []string
}

func (f *fakeCluster) LeaderState() (bool, time.Duration) { return f.known, f.contact }

func (f *fakeCluster) ConsistentRead(ctx context.Context) (bool, error) {
	if _, ok := ctx.Deadline(); !ok {
		return false, errors.New("ConsistentRead without a deadline")
	}
	return f.leads, f.err
}

func (f *fakeCluster) Membership(context.Context) (cluster.Membership, error) {
	return f.members, f.err
}

func (f *fakeCluster) RemovePeer(ctx context.Context, name string) (string, error) {
	if f.err != nil {
		return "", f.err
	}
	if name != "node-2" && name != "127.0.0.1:8302" {
		return "", fmt.Errorf("no server %q in the cluster: %w", name, registry.ErrNotFound)
	}
	f.mu.Lock()
	f.removed = append(f.removed, name)
	f.mu.Unlock()
	return "node-2", nil
}

// echo answers with the query it got.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.URL.RawQuery)) })

func TestWrapStalenessHeaders(t *testing.T) {
	for _, tc := range []struct {
		name        string
		known       bool
		contact     time.Duration
		wantKnown   string
		wantContact string
	}{
		{"leader", true, 0, "true", "0"},
		{"follower in touch", true, 1500 * time.Millisecond, "true", "1500"},
		{"never heard of a leader", false, -1, "false", "-1"},
		{"lost the leader", false, 3 * time.Second, "false", "3000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			New(&fakeCluster{known: tc.known, contact: tc.contact}).Wrap(echo).ServeHTTP(rec, httptest.NewRequest("GET", "/v1/services", nil))
			if got := rec.Header().Get(HeaderKnownLeader); got != tc.wantKnown {
				t.Errorf("%s = %q, want %q", HeaderKnownLeader, got, tc.wantKnown)
			}
			if got := rec.Header().Get(HeaderLastContact); got != tc.wantContact {
				t.Errorf("%s = %q, want %q", HeaderLastContact, got, tc.wantContact)
			}
			if rec.Header().Get(HeaderConsistent) != "" {
				t.Errorf("%s on a read without ?consistent", HeaderConsistent)
			}
		})
	}
}

func TestWrapConsistent(t *testing.T) {
	noLeader := fmt.Errorf("no leader: no cluster leader is known: %w", registry.ErrNotLeader)
	for _, tc := range []struct {
		name       string
		method     string
		target     string
		leads      bool
		err        error
		wantCode   int
		wantBody   string // the query the handler saw, or the error body
		consistent bool
	}{
		{"follower", "GET", "/v1/services?consistent&x=1", false, nil, 200, "x=1", true},
		{"leader", "GET", "/v1/services?consistent&x=1", true, nil, 200, "consistent&x=1", true},
		{"head", "HEAD", "/v1/services?consistent=", false, nil, 200, "", true},
		{"no leader", "GET", "/v1/services?consistent", false, noLeader, 503,
			`{"error":"no leader: no cluster leader is known: not the leader"}` + "\n", false},
		{"a write is not a read", "PUT", "/v1/services/web/instances/1?consistent", false, noLeader, 200, "consistent", false},
		{"a parameter that only contains the word", "GET", "/v1/services?inconsistent=1", false, noLeader, 200, "inconsistent=1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			New(&fakeCluster{known: true, leads: tc.leads, err: tc.err}).Wrap(echo).ServeHTTP(rec, httptest.NewRequest(tc.method, tc.target, nil))
			if rec.Code != tc.wantCode || rec.Body.String() != tc.wantBody {
				t.Fatalf("%s %s = %d %q, want %d %q", tc.method, tc.target, rec.Code, rec.Body, tc.wantCode, tc.wantBody)
			}
			if got := rec.Header().Get(HeaderConsistent) == "true"; got != tc.consistent {
				t.Errorf("%s = %q", HeaderConsistent, rec.Header().Get(HeaderConsistent))
			}
			if tc.wantCode == 503 && rec.Header().Get("Retry-After") != "1" {
				t.Errorf("503 without Retry-After: 1")
			}
		})
	}
}

func TestMembers(t *testing.T) {
	f := &fakeCluster{members: cluster.Membership{Leader: "node-1", Self: "node-2", Members: []cluster.Member{
		{ID: "node-1", Address: "127.0.0.1:8301", Voter: true, Role: "leader", LastContactMS: 0, Term: 3, Ready: true, Healthy: true},
		{ID: "node-2", Address: "127.0.0.1:8302", Role: "unreachable", LastContactMS: -1, Error: "dial: refused"},
	}}}
	mux := http.NewServeMux()
	New(f).MountOn(muxMounter{mux})
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/cluster/members", nil))
	want := `{"leader":"node-1","self":"node-2","members":[` +
		`{"id":"node-1","address":"127.0.0.1:8301","voter":true,"role":"leader","last_contact_ms":0,"term":3,"ready":true,"healthy":true},` +
		`{"id":"node-2","address":"127.0.0.1:8302","voter":false,"role":"unreachable","last_contact_ms":-1,"ready":false,"healthy":false,"error":"dial: refused"}]}` + "\n"
	if rec.Code != 200 || rec.Body.String() != want {
		t.Fatalf("members = %d %s\nwant %s", rec.Code, rec.Body, want)
	}
	if rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Content-Length") != fmt.Sprint(len(want)) {
		t.Errorf("headers = %v", rec.Header())
	}
}

func TestRemovePeer(t *testing.T) {
	for _, tc := range []struct {
		name, peer string
		wantCode   int
		wantBody   string
	}{
		{"by id", "node-2", 200, `{"removed":"node-2"}`},
		{"by address", "127.0.0.1:8302", 200, `{"removed":"node-2"}`},
		{"unknown", "nobody", 404, `{"error":"no server \"nobody\" in the cluster: not found"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			New(&fakeCluster{}).MountOn(muxMounter{mux})
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("DELETE", "/v1/cluster/peers/"+tc.peer, nil))
			if rec.Code != tc.wantCode || strings.TrimSpace(rec.Body.String()) != tc.wantBody {
				t.Fatalf("DELETE %s = %d %s, want %d %s", tc.peer, rec.Code, rec.Body, tc.wantCode, tc.wantBody)
			}
		})
	}
}

// TestErrorKinds: every kind answers the native API's code
// (internal/httpapi/errors.go), from every endpoint. Outcome unknown is
// 503: the native API answers that for a forwarded write that may still
// commit, which is ErrNotLeader as well.
func TestErrorKinds(t *testing.T) {
	verr := &registry.ValidationError{}
	verr.Add("id", "required")
	errOf := map[registry.Kind]error{
		registry.KindInternal:       errors.New("disk on fire"),
		registry.KindInvalid:        verr,
		registry.KindNotFound:       fmt.Errorf("x: %w", registry.ErrNotFound),
		registry.KindConflict:       fmt.Errorf("x: %w", registry.ErrConflict),
		registry.KindNoTTL:          fmt.Errorf("x: %w", registry.ErrNoTTL),
		registry.KindNotReady:       fmt.Errorf("x: %w", registry.ErrNotReady),
		registry.KindNotLeader:      fmt.Errorf("x: %w", registry.ErrNotLeader),
		registry.KindOutcomeUnknown: fmt.Errorf("x: %w: %w", registry.ErrOutcomeUnknown, registry.ErrNotLeader),
		registry.KindTimeout:        fmt.Errorf("x: %w", context.DeadlineExceeded),
		registry.KindCanceled:       fmt.Errorf("x: %w", context.Canceled),
		registry.KindTooLarge:       fmt.Errorf("x: %w", registry.ErrTooLarge),
	}
	wantCode := map[registry.Kind]int{
		registry.KindInternal: 500, registry.KindInvalid: 400, registry.KindNotFound: 404,
		registry.KindConflict: 409, registry.KindNoTTL: 409, registry.KindNotReady: 503,
		registry.KindNotLeader: 503, registry.KindOutcomeUnknown: 503, registry.KindTimeout: 504,
		registry.KindCanceled: 499, registry.KindTooLarge: 413,
	}
	requests := []struct{ method, target string }{
		{"GET", "/v1/cluster/members"},
		{"DELETE", "/v1/cluster/peers/node-2"},
		{"GET", "/v1/services?consistent"},
	}
	for _, k := range registry.Kinds() {
		err, ok := errOf[k]
		if !ok || registry.KindOf(err) != k {
			t.Fatalf("no test error of kind %v", k)
		}
		for _, req := range requests {
			t.Run(k.String()+" "+req.method+" "+req.target, func(t *testing.T) {
				api := New(&fakeCluster{err: err})
				mux := http.NewServeMux()
				api.MountOn(muxMounter{mux})
				rec := httptest.NewRecorder()
				api.Wrap(mux).ServeHTTP(rec, httptest.NewRequest(req.method, req.target, nil))
				if rec.Code != wantCode[k] {
					t.Fatalf("code %d, want %d (%s)", rec.Code, wantCode[k], rec.Body)
				}
				if got, want := rec.Header().Get("Retry-After") == "1", wantCode[k] == 503; got != want {
					t.Errorf("Retry-After = %q", rec.Header().Get("Retry-After"))
				}
				wantBody := `{"error":` + fmt.Sprintf("%q", err.Error())
				if k == registry.KindInvalid {
					wantBody += `,"fields":[{"field":"id","message":"required"}]`
				}
				if got := rec.Body.String(); got != wantBody+"}\n" {
					t.Errorf("body %s, want %s}", got, wantBody)
				}
			})
		}
	}
}

type muxMounter struct{ *http.ServeMux }

func (m muxMounter) Mount(p string, h http.Handler) { m.Handle(p, h) }
