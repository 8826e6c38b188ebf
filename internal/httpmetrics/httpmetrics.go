// Package httpmetrics counts and times the requests of one HTTP front door
// by route and status code: roster_<subsystem>_requests_total{route,code}
// and roster_<subsystem>_request_duration_seconds{route}. The native,
// Consul-compatible and SDS APIs each have their own subsystem.
package httpmetrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Buckets suit request latencies from 100 µs to blocking queries of
// minutes.
var Buckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5, 30, 300}

// Requests is the pair of metrics of one front door.
type Requests struct {
	Count   *prometheus.CounterVec
	Latency *prometheus.HistogramVec
}

// New builds the metrics of subsystem; what names the front door in
// their help ("HTTP", "Consul-compatible API", ...). They are registered
// on reg unless it is nil.
func New(reg prometheus.Registerer, subsystem, what string) *Requests {
	m := &Requests{
		Count: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "roster", Subsystem: subsystem,
			Name: "requests_total", Help: what + " requests by route and status code."}, []string{"route", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "roster", Subsystem: subsystem,
			Name: "request_duration_seconds", Help: what + " request latency by route (blocking queries include their wait).",
			Buckets: Buckets}, []string{"route"}),
	}
	if reg != nil {
		reg.MustRegister(m.Count, m.Latency)
	}
	return m
}

// Wrap counts and times h under route.
func (m *Requests) Wrap(route string, h http.Handler) http.Handler {
	lat := m.Latency.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		lat.Observe(time.Since(start).Seconds())
		m.Count.WithLabelValues(route, strconv.Itoa(sw.status())).Inc()
	})
}

// Observe runs h, which routes the request itself and returns the route
// it took, and counts and times it under that route.
func (m *Requests) Observe(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request) string) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	route := h(sw, r)
	m.Latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	m.Count.WithLabelValues(route, strconv.Itoa(sw.status())).Inc()
}

// statusWriter remembers the status code a handler sent.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush, deadlines and the
// connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// status is the code sent, 200 when the handler wrote nothing.
func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}
