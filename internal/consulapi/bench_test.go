package consulapi_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// seedService registers n instances of web, each with a TTL check.
func seedService(b *testing.B, s *stack, n int) {
	b.Helper()
	for i := range n {
		s.register(b, &registry.Instance{Service: "web", ID: fmt.Sprintf("web-%03d", i), Address: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1),
			Port: 8080, Tags: []string{"v2", "prod"}, Meta: map[string]string{"version": "v2"},
			Checks: []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute)}}})
	}
}

// BenchmarkServiceRead compares the Consul health read of a 100-instance
// service with the native instances read of the same service, over HTTP
// with Go's client (which asks for gzip and inflates the answer): both
// serve an encoded answer cached for the service's index.
func BenchmarkServiceRead(b *testing.B) {
	s := newStack(b)
	seedService(b, s, 100)
	client := s.srv.Client()
	for _, bc := range []struct{ name, path string }{
		{"native", "/v1/services/web/instances"},
		{"consul-health", "/v1/health/service/web"},
		{"consul-health-passing", "/v1/health/service/web?passing"},
		{"consul-catalog", "/v1/catalog/service/web"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			url := s.srv.URL + bc.path
			var n int64
			for b.Loop() {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				m, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %d", bc.path, resp.StatusCode)
				}
				n = m
			}
			b.ReportMetric(float64(n), "bytes/answer")
		})
	}
}

// discardWriter is a ResponseWriter that keeps only the status, so that a
// benchmark measures the server's work without the network's.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(c int)   { d.code = c }
func (d *discardWriter) Write(p []byte) (int, error) {
	d.n += len(p)
	return len(p), nil
}

// BenchmarkServiceReadHandler is BenchmarkServiceRead without the network:
// the handlers' own cost per request, the way the agent serves them.
func BenchmarkServiceReadHandler(b *testing.B) {
	s := newStack(b)
	seedService(b, s, 100)
	h := s.srv.Config.Handler
	for _, bc := range []struct{ name, path, enc string }{
		{"native", "/v1/services/web/instances", ""},
		{"native-gzip", "/v1/services/web/instances", "gzip"},
		{"consul-health", "/v1/health/service/web", ""},
		{"consul-health-gzip", "/v1/health/service/web", "gzip"},
		{"consul-catalog", "/v1/catalog/service/web", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			req, err := http.NewRequest("GET", bc.path, nil)
			if err != nil {
				b.Fatal(err)
			}
			if bc.enc != "" {
				req.Header.Set("Accept-Encoding", bc.enc)
			}
			for b.Loop() {
				w := &discardWriter{h: http.Header{}}
				h.ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("GET %s: %d", bc.path, w.code)
				}
			}
		})
	}
}
