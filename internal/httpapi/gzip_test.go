package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strconv"
	"testing"

	"github.com/rosterhq/roster/internal/registry"
)

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func TestInstancesGzip(t *testing.T) {
	s := newStack(t)
	for i := range 40 {
		s.register(t, &registry.Instance{Service: "web", ID: fmt.Sprintf("web-%02d", i), Address: "10.0.0.1", Port: 8080,
			Tags: []string{"v1", "http"}, Meta: map[string]string{"version": "1.2.3"}})
	}
	const path = "/v1/services/web/instances?status=passing"
	plain := s.mustDo(t, 200, "GET", path, "", "Accept-Encoding", "identity")
	if plain.header.Get("Content-Encoding") != "" || plain.header.Get("Vary") != "Accept-Encoding" || len(plain.body) < 1024 {
		t.Fatalf("plain answer: %v, %d bytes", plain.header, len(plain.body))
	}
	zipped := s.mustDo(t, 200, "GET", path, "", "Accept-Encoding", "br;q=1.0, gzip;q=0.8")
	h := zipped.header
	if h.Get("Content-Encoding") != "gzip" || h.Get("Vary") != "Accept-Encoding" || h.Get("Content-Length") != strconv.Itoa(len(zipped.body)) ||
		h.Get("Content-Type") != "application/json" || h.Get("X-Roster-Index") != plain.header.Get("X-Roster-Index") {
		t.Fatalf("gzip answer headers %v (%d bytes)", h, len(zipped.body))
	}
	if got := gunzip(t, zipped.body); !bytes.Equal(got, plain.body) {
		t.Fatalf("gzip answer inflates to %q, want %q", got, plain.body)
	}
	if len(zipped.body)*3 > len(plain.body) {
		t.Errorf("gzip answer %d bytes for %d plain", len(zipped.body), len(plain.body))
	}
	// Compressed once: the next answer is the same bytes, from the cache.
	hits := s.counter(t, "roster_http_answer_cache_hits_total")
	again := s.mustDo(t, 200, "GET", path, "", "Accept-Encoding", "gzip")
	if !bytes.Equal(again.body, zipped.body) || s.counter(t, "roster_http_answer_cache_hits_total") != hits+1 {
		t.Errorf("second gzip answer differs or missed the cache")
	}
	// HEAD, a refused gzip and a small answer are plain.
	head := s.mustDo(t, 200, "HEAD", path, "", "Accept-Encoding", "gzip")
	if head.header.Get("Content-Encoding") != "" || head.header.Get("Content-Length") != strconv.Itoa(len(plain.body)) {
		t.Errorf("HEAD headers %v", head.header)
	}
	if r := s.mustDo(t, 200, "GET", path, "", "Accept-Encoding", "gzip;q=0, deflate"); r.header.Get("Content-Encoding") != "" || !bytes.Equal(r.body, plain.body) {
		t.Errorf("gzip;q=0 answered %v", r.header)
	}
	if r := s.mustDo(t, 200, "GET", "/v1/services/none/instances", "", "Accept-Encoding", "gzip"); r.header.Get("Content-Encoding") != "" || r.header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("small answer headers %v", r.header)
	}
	// Go's client asks for gzip on its own and inflates it.
	if r := s.mustDo(t, 200, "GET", path, ""); !bytes.Equal(r.body, plain.body) {
		t.Errorf("default client read %d bytes, want the plain %d", len(r.body), len(plain.body))
	}
}
