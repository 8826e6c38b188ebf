package health

import "github.com/prometheus/client_golang/prometheus"

// metrics are the scheduler's metrics. Labels are bounded: type is one of
// http, tcp, grpc; result and status one of passing, warning, critical.
type metrics struct {
	runs            *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	running         *prometheus.GaugeVec
	transitions     *prometheus.CounterVec
	deregistrations prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "roster", "health"
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "check_runs_total", Help: "Active check runs, by check type and result."},
			[]string{"type", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "check_duration_seconds", Help: "Time taken by one active check run, by check type.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"type"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "checks_running", Help: "Active checks being run, by check type."},
			[]string{"type"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "status_transitions_total", Help: "Check status changes written to the registry, by check type and new status."},
			[]string{"type", "status"}),
		deregistrations: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "deregistrations_total", Help: "Instances removed after an active check was critical for deregister_after."}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.duration, m.running, m.transitions, m.deregistrations)
	}
	return m
}
