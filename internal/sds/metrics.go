package sds

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	checkIns   *prometheus.CounterVec
	cacheHits  prometheus.Counter
	memoHits   prometheus.Counter
	weightSets prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "roster", "sds"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "requests_total", Help: "SDS API requests by route and status code."}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "request_duration_seconds", Help: "SDS API request latency by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5}}, []string{"route"}),
		checkIns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "check_ins_total", Help: "Registration POSTs by outcome: created, updated, heartbeat (no log write) or refused."}, []string{"result"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "cache_hits_total", Help: "Service answers served from the CACHE_TTL cache (possibly stale)."}),
		memoHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "answer_reuse_total", Help: "Service answers reused because the service did not change (never stale)."}),
		weightSets: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "weight_changes_total", Help: "Hosts whose weight /v1/loadbalancing changed."}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.checkIns, m.cacheHits, m.memoHits, m.weightSets)
	}
	for _, r := range []string{"created", "updated", "heartbeat", "refused"} {
		m.checkIns.WithLabelValues(r)
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

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// observe runs h for a request whose route label route returns once h
// has routed it.
func (m *metrics) observe(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request) string) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	route := h(sw, r)
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
}
