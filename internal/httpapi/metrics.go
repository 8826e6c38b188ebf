package httpapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/httpmetrics"
)

type metrics struct {
	*httpmetrics.Requests
	cacheHits prometheus.Counter
	watchers  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		Requests: httpmetrics.New(reg, "http", "HTTP"),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "roster", Subsystem: "http",
			Name: "answer_cache_hits_total", Help: "Instance queries and watch change events served from an already-encoded answer."}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "http",
			Name: "watch_streams", Help: "Open SSE watch streams."}),
	}
	if reg != nil {
		reg.MustRegister(m.cacheHits, m.watchers)
	}
	return m
}

func (m *metrics) instrument(route string, h http.HandlerFunc) http.Handler {
	return m.Wrap(route, h)
}
