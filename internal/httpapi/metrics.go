package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	cacheHits prometheus.Counter
	watchers  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "roster", Subsystem: "http",
			Name: "requests_total", Help: "HTTP requests by route, method and status code."}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "roster", Subsystem: "http",
			Name: "request_duration_seconds", Help: "HTTP request latency by route (blocking queries include their wait).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5, 30, 300}}, []string{"route"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "roster", Subsystem: "http",
			Name: "answer_cache_hits_total", Help: "Instance queries and watch change events served from an already-encoded answer."}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "http",
			Name: "watch_streams", Help: "Open SSE watch streams."}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.cacheHits, m.watchers)
	}
	return m
}

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

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (m *metrics) instrument(route string, h http.HandlerFunc) http.Handler {
	lat := m.latency.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		lat.Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	})
}
