package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/testutil"
)

func TestHTTPProbe(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("all good\n")) })
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database down", http.StatusInternalServerError)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 3000)))
	})
	mux.HandleFunc("/endless", func(w http.ResponseWriter, r *http.Request) {
		// More than the probe reads, then nothing until the client
		// goes: a probe that read the whole body would time out.
		_, _ = w.Write([]byte(strings.Repeat("y", 3*maxBody)))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/binary", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("\x00\x01up\r\n\tsince \xff today"))
	})
	mux.HandleFunc("/redirect-here", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/redirect-away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://roster-test.invalid/ok", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	closed := "http://" + closedPort(t) + "/ok"

	tests := []struct {
		name       string
		target     string
		timeout    time.Duration
		want       registry.Health
		wantOutput string // exact output when set
		contains   []string
		excludes   []string
	}{
		{name: "200 passing", target: srv.URL + "/ok", want: registry.Passing,
			wantOutput: "HTTP GET " + srv.URL + "/ok: 200 OK Output: all good"},
		{name: "204 passing", target: srv.URL + "/empty", want: registry.Passing,
			wantOutput: "HTTP GET " + srv.URL + "/empty: 204 No Content"},
		{name: "429 warning", target: srv.URL + "/busy", want: registry.Warning,
			wantOutput: "HTTP GET " + srv.URL + "/busy: 429 Too Many Requests"},
		{name: "500 critical", target: srv.URL + "/fail", want: registry.Critical,
			wantOutput: "HTTP GET " + srv.URL + "/fail: 500 Internal Server Error Output: database down"},
		{name: "404 critical", target: srv.URL + "/nothing", want: registry.Critical,
			contains: []string{"404 Not Found"}},
		{name: "slow times out", target: srv.URL + "/slow", timeout: 100 * time.Millisecond,
			want: registry.Critical, wantOutput: "HTTP GET " + srv.URL + "/slow: timed out"},
		{name: "connection refused", target: closed, want: registry.Critical,
			contains: []string{"HTTP GET " + closed + ": ", "refused"}},
		{name: "long body truncated", target: srv.URL + "/big", want: registry.Passing,
			contains: []string{"200 OK Output: xxx", "..."}},
		{name: "reads at most 4 KiB", target: srv.URL + "/endless", timeout: 5 * time.Second,
			want: registry.Passing, contains: []string{"200 OK Output: yyy"}},
		{name: "body made printable", target: srv.URL + "/binary", want: registry.Passing,
			contains: []string{"Output: up since today"}},
		{name: "same-host redirect followed", target: srv.URL + "/redirect-here", want: registry.Passing,
			contains: []string{"200 OK Output: all good"}},
		{name: "other-host redirect not followed", target: srv.URL + "/redirect-away",
			want: registry.Critical, contains: []string{"302 Found"}},
		{name: "bad url", target: "http://bad host/", want: registry.Critical,
			contains: []string{"HTTP GET "}},
		{name: "credentials redacted", target: strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1) + "/ok",
			want: registry.Passing, excludes: []string{"s3cret"}, contains: []string{"user:xxxxx@"}},
	}
	s := New(Config{Registry: newFakeRegistry()})
	t.Cleanup(s.transport.CloseIdleConnections)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeout := cmpOr(tc.timeout, 2*time.Second)
			ctx, cancel := context.WithTimeout(testutil.Context(t, 20*time.Second), timeout)
			defer cancel()
			p := s.newProber(registry.Check{Type: registry.CheckHTTP, Target: tc.target}, time.Second, timeout)
			defer p.close()
			got := p.probe(ctx)
			if got.status != tc.want {
				t.Errorf("status = %s, want %s (output %q)", got.status, tc.want, got.output)
			}
			if tc.wantOutput != "" && got.output != tc.wantOutput {
				t.Errorf("output = %q, want %q", got.output, tc.wantOutput)
			}
			for _, c := range tc.contains {
				if !strings.Contains(got.output, c) {
					t.Errorf("output %q does not contain %q", got.output, c)
				}
			}
			for _, c := range tc.excludes {
				if strings.Contains(got.output, c) {
					t.Errorf("output %q contains %q", got.output, c)
				}
			}
			if len(got.output) > len(tc.target)+100+maxBodyOutput {
				t.Errorf("output is %d bytes, want it bounded", len(got.output))
			}
		})
	}
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

func TestTCPProbe(t *testing.T) {
	open := listen(t).Addr().String()
	closed := closedPort(t)
	tests := []struct {
		name       string
		target     string
		want       registry.Health
		wantPrefix string
	}{
		{"listening", open, registry.Passing, "TCP connect " + open + ": success"},
		{"closed port", closed, registry.Critical, "TCP connect " + closed + ": "},
		{"bad address", "127.0.0.1", registry.Critical, "TCP connect 127.0.0.1: "},
	}
	p := &tcpProber{dialer: &net.Dialer{}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(testutil.Context(t, 20*time.Second), 2*time.Second)
			defer cancel()
			p.target = tc.target
			got := p.probe(ctx)
			if got.status != tc.want || !strings.HasPrefix(got.output, tc.wantPrefix) {
				t.Errorf("probe = %s %q, want %s %q...", got.status, got.output, tc.want, tc.wantPrefix)
			}
		})
	}
}

func TestGRPCProbe(t *testing.T) {
	addr, hs := startGRPC(t)
	hs.SetServingStatus("web", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	closed := closedPort(t)
	tests := []struct {
		name       string
		target     string
		want       registry.Health
		wantOutput string
		contains   string
	}{
		{name: "server serving", target: addr, want: registry.Passing,
			wantOutput: "gRPC health check " + addr + ": SERVING"},
		{name: "service serving", target: addr + "/web", want: registry.Passing,
			wantOutput: "gRPC health check " + addr + "/web: SERVING"},
		{name: "service not serving", target: addr + "/down", want: registry.Critical,
			wantOutput: "gRPC health check " + addr + "/down: NOT_SERVING"},
		{name: "unknown service", target: addr + "/nope", want: registry.Critical, contains: "NotFound"},
		{name: "nothing listening", target: closed, want: registry.Critical, contains: "Unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(testutil.Context(t, 20*time.Second), 2*time.Second)
			defer cancel()
			p := newGRPCProber(tc.target, time.Second, time.Second)
			defer p.close()
			got := p.probe(ctx)
			if got.status != tc.want {
				t.Errorf("status = %s, want %s (output %q)", got.status, tc.want, got.output)
			}
			if tc.wantOutput != "" && got.output != tc.wantOutput {
				t.Errorf("output = %q, want %q", got.output, tc.wantOutput)
			}
			if !strings.Contains(got.output, tc.contains) {
				t.Errorf("output %q does not contain %q", got.output, tc.contains)
			}
		})
	}

	t.Run("flip on one connection", func(t *testing.T) {
		hs.SetServingStatus("flip", healthpb.HealthCheckResponse_SERVING)
		p := newGRPCProber(addr+"/flip", time.Second, time.Second)
		defer p.close()
		probe := func() registry.Health {
			ctx, cancel := context.WithTimeout(testutil.Context(t, 20*time.Second), 2*time.Second)
			defer cancel()
			return p.probe(ctx).status
		}
		if got := probe(); got != registry.Passing {
			t.Fatalf("serving: status = %s, want passing", got)
		}
		hs.SetServingStatus("flip", healthpb.HealthCheckResponse_NOT_SERVING)
		if got := probe(); got != registry.Critical {
			t.Fatalf("not serving: status = %s, want critical", got)
		}
		hs.SetServingStatus("flip", healthpb.HealthCheckResponse_SERVING)
		if got := probe(); got != registry.Passing {
			t.Fatalf("serving again: status = %s, want passing", got)
		}
	})
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"longer than ten", 10, "longer tha..."},
		{"héllo", 2, "h..."}, // does not cut é in half
	}
	for _, tc := range tests {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
