package proxy

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkForward sends GETs through the proxy to one instance over
// kept-alive connections on both sides: the proxy's cost per request
// (with the client's and the backend's, all in this process).
func BenchmarkForward(b *testing.B) {
	e := newEnv(b, nil)
	e.backend("bench", "bench-1", backendOpts{})
	p := e.proxy(DefaultConfig())
	req, _ := http.NewRequest("GET", p.url+"/", nil)
	req.Host = "bench"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := testClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
