package proxy

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/client/balance"
)

// metrics are the proxy's Prometheus collectors. Requests are counted
// twice: once as the client saw them (requests_total, by the service
// routed to, "" for no route) and once per try on an instance
// (upstream_requests_total).
type metrics struct {
	requests   *prometheus.CounterVec   // service, code
	duration   *prometheus.HistogramVec // service
	upRequests *prometheus.CounterVec   // service, instance, code
	upLatency  *prometheus.HistogramVec // service, instance
	upActive   *prometheus.GaugeVec     // service, instance
	ejections  *prometheus.CounterVec   // service, instance
	conns      *prometheus.GaugeVec     // address
	retries    *prometheus.CounterVec   // service
	overflow   *prometheus.CounterVec   // service
}

var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newMetrics(reg prometheus.Registerer) *metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "roster", Subsystem: "proxy", Name: name, Help: help}
	}
	hist := func(name, help string) prometheus.HistogramOpts {
		return prometheus.HistogramOpts{Namespace: "roster", Subsystem: "proxy", Name: name, Help: help, Buckets: latencyBuckets}
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts(opts("requests_total",
			"Requests answered by the proxy, by the service routed to (empty: no route) and status code.")), []string{"service", "code"}),
		duration: prometheus.NewHistogramVec(hist("request_duration_seconds",
			"Time from a request's arrival to the end of its answer (streamed bodies included), by service."), []string{"service"}),
		upRequests: prometheus.NewCounterVec(prometheus.CounterOpts(opts("upstream_requests_total",
			"Tries of requests on an instance, by service, instance and status code (error: no answer; canceled: the client went away).")),
			[]string{"service", "instance", "code"}),
		upLatency: prometheus.NewHistogramVec(hist("upstream_response_seconds",
			"Time from sending a request to an instance to its response headers."), []string{"service", "instance"}),
		upActive: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("upstream_active_requests",
			"Requests on an instance until their response body is done.")), []string{"service", "instance"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts(opts("upstream_ejections_total",
			"Times passive outlier detection ejected an instance.")), []string{"service", "instance"}),
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("upstream_connections",
			"Open connections to an instance, by address.")), []string{"address"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts(opts("retries_total",
			"Requests tried again on another instance, by service.")), []string{"service"}),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts(opts("pending_overflow_total",
			"Requests answered 503 because the route had max_pending requests waiting, by service.")), []string{"service"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.upRequests, m.upLatency, m.upActive, m.ejections, m.conns,
			m.retries, m.overflow)
	}
	return m
}

// codeCounters caches the counter of each status code of one label set,
// so that a request costs a lock-free map read, not a label lookup.
type codeCounters struct {
	vec    *prometheus.CounterVec
	labels []string // the labels before "code"
	m      sync.Map // int -> prometheus.Counter
}

// Codes other than HTTP statuses.
const (
	codeError    = 0
	codeCanceled = 1
)

func (c *codeCounters) inc(code int) {
	if v, ok := c.m.Load(code); ok {
		v.(prometheus.Counter).Inc()
		return
	}
	var s string
	switch code {
	case codeError:
		s = "error"
	case codeCanceled:
		s = "canceled"
	default:
		s = strconv.Itoa(code)
	}
	ctr := c.vec.WithLabelValues(append(c.labels[:len(c.labels):len(c.labels)], s)...)
	v, _ := c.m.LoadOrStore(code, ctr)
	v.(prometheus.Counter).Inc()
}

// endpointStats are the metrics of one instance, found by its endpoint.
type endpointStats struct {
	service, instance string
	codes             codeCounters
	latency           prometheus.Observer
	active            prometheus.Gauge
	ejections         prometheus.Counter
	// ejected is set when an ejection was counted and cleared when the
	// endpoint is picked again, so that one ejection counts once.
	ejected atomic.Bool
}

// statsFor returns the endpoint's metrics, creating them on first use.
func (p *Proxy) statsFor(ep *balance.Endpoint) *endpointStats {
	if v, ok := p.stats.Load(ep); ok {
		return v.(*endpointStats)
	}
	s := &endpointStats{
		service: ep.Service, instance: ep.ID,
		codes:     codeCounters{vec: p.m.upRequests, labels: []string{ep.Service, ep.ID}},
		latency:   p.m.upLatency.WithLabelValues(ep.Service, ep.ID),
		active:    p.m.upActive.WithLabelValues(ep.Service, ep.ID),
		ejections: p.m.ejections.WithLabelValues(ep.Service, ep.ID),
	}
	v, _ := p.stats.LoadOrStore(ep, s)
	return v.(*endpointStats)
}

// pruneStats forgets the metrics of endpoints no target uses any more
// (instances deregistered or changed), keeping label sets still used by
// a live endpoint of the same instance.
func (p *Proxy) pruneStats() {
	live := map[*balance.Endpoint]bool{}
	for _, up := range p.upstreams() {
		if t := up.target.Load(); t != nil {
			for _, e := range t.Endpoints() {
				live[e] = true
			}
		}
	}
	type key struct{ service, instance string }
	keep := map[key]bool{}
	var gone []*endpointStats
	p.stats.Range(func(k, v any) bool {
		s := v.(*endpointStats)
		if live[k.(*balance.Endpoint)] {
			keep[key{s.service, s.instance}] = true
			return true
		}
		if k.(*balance.Endpoint).InFlight() > 0 {
			keep[key{s.service, s.instance}] = true // requests still finishing
			return true
		}
		p.stats.Delete(k)
		gone = append(gone, s)
		return true
	})
	for _, s := range gone {
		if keep[key{s.service, s.instance}] {
			continue
		}
		labels := prometheus.Labels{"service": s.service, "instance": s.instance}
		p.m.upRequests.DeletePartialMatch(labels)
		p.m.upLatency.Delete(labels)
		p.m.upActive.Delete(labels)
		p.m.ejections.Delete(labels)
	}
}

// connCounter counts open connections per address.
type connCounter struct {
	gauge *prometheus.GaugeVec
	mu    sync.Mutex
	open  map[string]int
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (c *connCounter) wrap(dial dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c.add(addr, 1)
		return &countedConn{Conn: conn, c: c, addr: addr}, nil
	}
}

func (c *connCounter) add(addr string, d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.open[addr] + d
	if n <= 0 {
		delete(c.open, addr)
		c.gauge.DeleteLabelValues(addr)
		return
	}
	c.open[addr] = n
	c.gauge.WithLabelValues(addr).Set(float64(n))
}

// countedConn decrements its address's count once when closed.
type countedConn struct {
	net.Conn
	c    *connCounter
	addr string
	once sync.Once
}

// NetConn returns the connection counted (for h1.Transport's check of
// an idle connection).
func (c *countedConn) NetConn() net.Conn { return c.Conn }

func (c *countedConn) Close() error {
	c.once.Do(func() { c.c.add(c.addr, -1) })
	return c.Conn.Close()
}
