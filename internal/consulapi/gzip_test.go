package consulapi_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/testutil"
)

// doEncoding sends a request with Accept-Encoding set by hand, so that the
// transport hands over the body as it came.
func (s *stack) doEncoding(t *testing.T, method, path, enc string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(testutil.Context(t, 30*time.Second), method, s.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", enc)
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, b)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

func TestServiceReadGzip(t *testing.T) {
	s := newStack(t)
	for i := range 20 {
		s.register(t, &registry.Instance{Service: "web", ID: fmt.Sprintf("web-%02d", i), Address: "10.0.0.1", Port: 8080, Tags: []string{"v1"}})
	}
	for _, path := range []string{"/v1/health/service/web?passing=true", "/v1/catalog/service/web"} {
		t.Run(path, func(t *testing.T) {
			plain := s.doEncoding(t, "GET", path, "identity")
			if plain.header.Get("Content-Encoding") != "" || plain.header.Get("Vary") != "Accept-Encoding" {
				t.Fatalf("plain headers %v", plain.header)
			}
			zipped := s.doEncoding(t, "GET", path, "gzip")
			h := zipped.header
			if h.Get("Content-Encoding") != "gzip" || h.Get("Vary") != "Accept-Encoding" || h.Get("Content-Length") != strconv.Itoa(len(zipped.body)) ||
				h.Get("X-Consul-Index") != plain.header.Get("X-Consul-Index") || h.Get("Content-Type") != "application/json" {
				t.Fatalf("gzip headers %v", h)
			}
			zr, err := gzip.NewReader(bytes.NewReader(zipped.body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(got, plain.body) {
				t.Fatalf("inflated %q (%v), want %q", got, err, plain.body)
			}
			if again := s.doEncoding(t, "GET", path, "gzip"); !bytes.Equal(again.body, zipped.body) {
				t.Error("second gzip answer differs")
			}
			if head := s.doEncoding(t, "HEAD", path, "gzip"); head.header.Get("Content-Encoding") != "" || head.header.Get("Content-Length") != strconv.Itoa(len(plain.body)) {
				t.Errorf("HEAD headers %v", head.header)
			}
			// What HashiCorp's client does: Go's transport asks and inflates.
			if r := s.mustDo(t, 200, "GET", path, ""); !bytes.Equal(r.body, plain.body) {
				t.Error("default client read a different body")
			}
		})
	}
	if r := s.doEncoding(t, "GET", "/v1/health/service/none", "gzip"); r.header.Get("Content-Encoding") != "" || r.text() != "[]" {
		t.Errorf("small answer: %v %q", r.header, r.body)
	}
}
