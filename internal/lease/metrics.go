package lease

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	renewals     prometheus.Counter
	expired      prometheus.Counter
	deregistered prometheus.Counter
	guarding     prometheus.Gauge
	lapsed       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, count func() float64) *metrics {
	m := &metrics{
		renewals: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "roster", Subsystem: "lease",
			Name: "renewals_total", Help: "Heartbeats that renewed a lease."}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "roster", Subsystem: "lease",
			Name: "expired_total", Help: "Leases that expired and turned their TTL check critical."}),
		deregistered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "roster", Subsystem: "lease",
			Name: "deregistered_total", Help: "Instances removed after being critical for deregister_after."}),
		guarding: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "lease",
			Name: "self_preservation", Help: "1 while too many leases lapsed at once and expiry is held back."}),
		lapsed: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "lease",
			Name: "lapsed", Help: "Leases past their deadline within the last TTL."}),
	}
	if reg != nil {
		reg.MustRegister(m.renewals, m.expired, m.deregistered, m.guarding, m.lapsed,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "lease",
				Name: "active", Help: "Leases held in memory."}, count))
	}
	return m
}
