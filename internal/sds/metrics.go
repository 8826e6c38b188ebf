package sds

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/httpmetrics"
)

type metrics struct {
	*httpmetrics.Requests
	checkIns   *prometheus.CounterVec
	cacheHits  prometheus.Counter
	memoHits   prometheus.Counter
	weightSets prometheus.Counter
	// staleRefused counts reads refused under MaxStale.
	staleRefused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "roster", "sds"
	m := &metrics{
		Requests: httpmetrics.New(reg, sub, "SDS API"),
		checkIns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "check_ins_total", Help: "Registration POSTs by outcome: created, updated, heartbeat (no log write) or refused."}, []string{"result"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "cache_hits_total", Help: "Service answers served from the CACHE_TTL cache (possibly stale)."}),
		memoHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "answer_reuse_total", Help: "Service answers reused because the service did not change (never stale)."}),
		weightSets: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "weight_changes_total", Help: "Hosts whose weight /v1/loadbalancing changed."}),
		staleRefused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "stale_refused_total", Help: "Reads answered 503 because this agent has had no contact with a leader for longer than -max-stale."}),
	}
	if reg != nil {
		reg.MustRegister(m.checkIns, m.cacheHits, m.memoHits, m.weightSets, m.staleRefused)
	}
	for _, r := range []string{"created", "updated", "heartbeat", "refused"} {
		m.checkIns.WithLabelValues(r)
	}
	return m
}

// observe runs h for a request whose route label route returns once h
// has routed it.
func (m *metrics) observe(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request) string) {
	m.Observe(w, r, h)
}
