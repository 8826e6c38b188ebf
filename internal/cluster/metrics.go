package cluster

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	forwardedOut    prometheus.Counter
	forwardedIn     prometheus.Counter
	leasesForwarded prometheus.Counter
	leaseErrors     prometheus.Counter
	consistentReads prometheus.Counter
	deadRemoved     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, c *Cluster) *metrics {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "roster", Subsystem: "cluster", Name: name, Help: help}
	}
	m := &metrics{
		forwardedOut:    prometheus.NewCounter(opts("forwarded_writes_total", "Writes this agent forwarded to the leader and saw committed.")),
		forwardedIn:     prometheus.NewCounter(opts("forwarded_writes_served_total", "Writes forwarded by followers that this agent, as leader, committed.")),
		leasesForwarded: prometheus.NewCounter(opts("lease_renewals_forwarded_total", "Lease renewals (and removals) this agent passed on to the leader.")),
		leaseErrors:     prometheus.NewCounter(opts("lease_forward_errors_total", "Batches of lease renewals that did not reach the leader.")),
		consistentReads: prometheus.NewCounter(opts("consistent_reads_total", "Reads with ?consistent served after confirming the leader's index.")),
		deadRemoved:     prometheus.NewCounter(opts("dead_servers_removed_total", "Servers this agent, as leader, removed from the configuration after -dead-server-after unreachable.")),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.forwardedOut, m.forwardedIn, m.leasesForwarded, m.leaseErrors, m.consistentReads, m.deadRemoved,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "cluster", Name: "unreachable_servers",
			Help: "Servers this agent, as leader with dead-server cleanup on, cannot reach now; 0 elsewhere."}, func() float64 {
			return float64(len(c.autopilot.unreachable()))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "cluster", Name: "last_contact_seconds",
			Help: "Seconds since this agent heard from the leader: 0 on the leader, -1 when it never has."}, func() float64 {
			_, d := c.LeaderState()
			if d < 0 {
				return -1
			}
			return d.Seconds()
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "cluster", Name: "known_leader",
			Help: "1 while this agent knows a leader."}, func() float64 {
			if known, _ := c.LeaderState(); known {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "cluster", Name: "term",
			Help: "Current raft term."}, func() float64 { return float64(c.node.Term()) }),
	)
	return m
}
