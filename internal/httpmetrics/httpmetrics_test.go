package httpmetrics

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestWrapAndObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, "test", "Test")
	h := m.Wrap("GET /x", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("teapot") {
			w.WriteHeader(http.StatusTeapot)
		}
		// no write at all: counted as 200
	}))
	for _, u := range []string{"/x", "/x", "/x?teapot"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", u, nil))
	}
	m.Observe(httptest.NewRecorder(), httptest.NewRequest("GET", "/y", nil), func(w http.ResponseWriter, r *http.Request) string {
		w.WriteHeader(http.StatusNotFound)
		w.WriteHeader(http.StatusOK) // the first code counts
		return "GET /y"
	})
	for _, c := range []struct {
		route, code string
		want        float64
	}{{"GET /x", "200", 2}, {"GET /x", "418", 1}, {"GET /y", "404", 1}} {
		var got dto.Metric
		if err := m.Count.WithLabelValues(c.route, c.code).Write(&got); err != nil {
			t.Fatal(err)
		}
		if got.GetCounter().GetValue() != c.want {
			t.Errorf("requests{%s,%s} = %v, want %v", c.route, c.code, got.GetCounter().GetValue(), c.want)
		}
	}
	ch := make(chan prometheus.Metric, 8)
	m.Latency.Collect(ch)
	if n := len(ch); n != 2 {
		t.Errorf("%d latency series, want 2", n)
	}
}
