package store

import "github.com/prometheus/client_golang/prometheus"

// RegisterMetrics exposes the registry's size on reg.
func (s *Store) RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "registry",
			Name: "instances", Help: "Registered instances."}, func() float64 { return float64(s.Stats().Instances) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "registry",
			Name: "services", Help: "Services with at least one instance."}, func() float64 { return float64(s.Stats().Services) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "registry",
			Name: "watched_keys", Help: "Distinct keys with blocked watchers."}, func() float64 { return float64(s.hub.watchers()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "registry",
			Name: "index", Help: "Index of the last applied write."}, func() float64 { return float64(s.LastIndex()) }),
	)
}
