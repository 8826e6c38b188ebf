package dnsserver

import (
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	queries     *prometheus.CounterVec
	latency     [2]prometheus.Observer // udp, tcp
	truncated   [2]prometheus.Counter  // udp, tcp
	rateLimited prometheus.Counter
	forwarded   *prometheus.CounterVec
	malformed   prometheus.Counter
	// forwardDenied counts questions for other names not forwarded, by
	// reason (deniedSource, deniedNoRD, deniedBusy).
	forwardDenied   map[string]prometheus.Counter
	forwardInFlight prometheus.Gauge
	tcpRejected     prometheus.Counter
	stale           prometheus.Counter

	// byCode caches queries' children per type and rcode, so the hot path
	// does not hash label values; the slot past the last rcode is DROPPED.
	byCode [len(metricTypes) + 1][dns.RcodeBadCookie + 2]atomic.Pointer[prometheus.Counter]
}

// metricTypes are the question types with their own label value; every
// other type counts as OTHER.
var metricTypes = [...]uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypePTR, dns.TypeANY,
	dns.TypeSOA, dns.TypeNS, dns.TypeCNAME, dns.TypeHTTPS, dns.TypeSVCB, dns.TypeMX}

// dropped is the rcode slot of queries given no answer.
const dropped = dns.RcodeBadCookie + 1

func newMetrics(reg prometheus.Registerer) *metrics {
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "roster", Subsystem: "dns",
		Name: "request_duration_seconds", Help: "Time to answer a DNS query, by transport.",
		Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1, 5}}, []string{"transport"})
	truncated := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "roster", Subsystem: "dns",
		Name: "truncated_total", Help: "DNS answers sent with TC set because records did not fit."}, []string{"transport"})
	denied := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "roster", Subsystem: "dns",
		Name: "forward_denied_total", Help: "DNS questions for other names not forwarded, by reason (source, no_rd: REFUSED; busy: SERVFAIL)."}, []string{"reason"})
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "roster", Subsystem: "dns",
			Name: "queries_total", Help: "DNS queries by question type and response code (DROPPED: no answer sent)."}, []string{"type", "rcode"}),
		latency:   [2]prometheus.Observer{latency.WithLabelValues("udp"), latency.WithLabelValues("tcp")},
		truncated: [2]prometheus.Counter{truncated.WithLabelValues("udp"), truncated.WithLabelValues("tcp")},
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "roster", Subsystem: "dns",
			Name: "rate_limited_total", Help: "DNS queries over the per-source rate limit."}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "roster", Subsystem: "dns",
			Name: "forwarded_total", Help: "DNS queries sent to recursors, by result (ok, error)."}, []string{"result"}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "roster", Subsystem: "dns",
			Name: "malformed_total", Help: "DNS packets that could not be parsed or were rejected before the handler."}),
		forwardDenied: map[string]prometheus.Counter{},
		forwardInFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "dns",
			Name: "forward_in_flight", Help: "DNS questions being forwarded to recursors."}),
		tcpRejected: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "roster", Subsystem: "dns",
			Name: "tcp_rejected_total", Help: "DNS TCP connections closed at once because their source had too many open."}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "roster", Subsystem: "dns",
			Name: "stale_refused_total", Help: "DNS questions answered SERVFAIL because this agent has had no contact with a leader for longer than -max-stale."}),
	}
	for _, r := range []string{deniedSource, deniedNoRD, deniedBusy} {
		m.forwardDenied[r] = denied.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.queries, latency, truncated, m.rateLimited, m.forwarded, m.malformed,
			denied, m.forwardInFlight, m.tcpRejected, m.stale)
	}
	return m
}

// observe counts one query with its rcode (or dropped) and its latency.
func (m *metrics) observe(req *dns.Msg, rcode int, tcp bool, start time.Time) {
	t := len(metricTypes) // OTHER
	typ := "OTHER"
	if len(req.Question) > 0 {
		for i, x := range metricTypes {
			if x == req.Question[0].Qtype {
				t, typ = i, dns.TypeToString[x]
				break
			}
		}
	}
	// Latency first: a reader that sees the count sees the latency too.
	m.latency[tcpIndex(tcp)].Observe(time.Since(start).Seconds())
	m.queryCounter(t, typ, rcode).Inc()
}

func (m *metrics) queryCounter(t int, typ string, rcode int) prometheus.Counter {
	if rcode < 0 || rcode > dropped {
		return m.queries.WithLabelValues(typ, "OTHER")
	}
	slot := &m.byCode[t][rcode]
	if c := slot.Load(); c != nil {
		return *c
	}
	name := "DROPPED"
	if rcode != dropped {
		name = rcodeName(rcode)
	}
	c := m.queries.WithLabelValues(typ, name)
	slot.Store(&c)
	return c
}

func tcpIndex(tcp bool) int {
	if tcp {
		return 1
	}
	return 0
}
