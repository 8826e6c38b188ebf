package consulapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/httpmetrics"
)

type metrics struct {
	*httpmetrics.Requests
	cacheHits prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		Requests: httpmetrics.New(reg, "consul", "Consul-compatible API"),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "roster", Subsystem: "consul",
			Name: "answer_cache_hits_total", Help: "Health and catalog service queries served from an already-encoded answer."}),
	}
	if reg != nil {
		reg.MustRegister(m.cacheHits)
	}
	return m
}

func (m *metrics) instrument(route string, h http.Handler) http.Handler { return m.Wrap(route, h) }
