package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkRegister is one registration through the handler, the registry,
// the store and the in-memory log, without the network: the agent's CPU
// per registration apart from HTTP parsing and the socket.
func BenchmarkRegister(b *testing.B) {
	s := newStack(b)
	h := s.api.Handler()
	body := `{"address":"10.1.2.3","port":8080,"tags":["v1","http","primary"],"meta":{"version":"1.4.2","team":"payments"},"zone":"zone-a","ttl":"10m"}`
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		req := httptest.NewRequest(http.MethodPut, fmt.Sprintf("/v1/services/reg-%03d/instances/i%08d", i%100, i), strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			b.Fatalf("register: %d %s", w.Code, w.Body)
		}
	}
}
