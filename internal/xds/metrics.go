package xds

import (
	"context"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// Protocol variants, as metric labels.
const (
	protoSotW  = "sotw"
	protoDelta = "delta"
)

type metrics struct {
	streams   *prometheus.GaugeVec   // protocol
	responses *prometheus.CounterVec // type, protocol
	nacks     *prometheus.CounterVec // type
	push      prometheus.Histogram
	snapshots prometheus.Counter
	rebuilt   prometheus.Counter
	services  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "xds",
			Name: "streams", Help: "Open xDS streams, by protocol variant (sotw, delta)."}, []string{"protocol"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "roster", Subsystem: "xds",
			Name: "responses_total", Help: "xDS responses sent (pushes), by resource type and protocol variant."}, []string{"type", "protocol"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "roster", Subsystem: "xds",
			Name: "nacks_total", Help: "xDS requests that rejected the last response (NACK), by resource type."}, []string{"type"}),
		push: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "roster", Subsystem: "xds",
			Name: "push_duration_seconds", Help: "Time from noticing a registry change to handing the new snapshot to every open stream.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "roster", Subsystem: "xds",
			Name: "snapshots_total", Help: "Snapshots set: registry changes that changed a served resource."}),
		rebuilt: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "roster", Subsystem: "xds",
			Name: "services_rebuilt_total", Help: "Services whose resources were rebuilt after their index moved."}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "xds",
			Name: "services", Help: "Services served (each as a cluster, endpoints, listener and route)."}),
	}
	for _, p := range []string{protoSotW, protoDelta} {
		m.streams.WithLabelValues(p)
		for k := range numKinds {
			m.responses.WithLabelValues(kindLabel[k], p)
		}
	}
	if reg != nil {
		reg.MustRegister(m.streams, m.responses, m.nacks, m.push, m.snapshots, m.rebuilt, m.services)
	}
	return m
}

// pushed records a snapshot set after a change noticed at start.
func (m *metrics) pushed(start time.Time, services int) {
	m.push.Observe(time.Since(start).Seconds())
	m.snapshots.Inc()
	m.services.Set(float64(services))
}

// typeLabel is the metric label of a type URL ("other" for one not
// served).
func typeLabel(url string) string {
	if k := kindOf(url); k < numKinds {
		return kindLabel[k]
	}
	return "other"
}

// callbacks counts streams, responses and NACKs from the xDS server's
// hooks, which it calls from each stream's goroutine.
type callbacks struct{ m *metrics }

func (m *metrics) callbacks() callbacks { return callbacks{m} }

func (c callbacks) OnStreamOpen(context.Context, int64, string) error {
	c.m.streams.WithLabelValues(protoSotW).Inc()
	return nil
}

func (c callbacks) OnStreamClosed(int64, *corev3.Node) {
	c.m.streams.WithLabelValues(protoSotW).Dec()
}

func (c callbacks) OnStreamRequest(_ int64, req *discoveryv3.DiscoveryRequest) error {
	if req.GetErrorDetail() != nil {
		c.m.nacks.WithLabelValues(typeLabel(req.GetTypeUrl())).Inc()
	}
	return nil
}

func (c callbacks) OnStreamResponse(_ context.Context, _ int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	c.m.responses.WithLabelValues(typeLabel(resp.GetTypeUrl()), protoSotW).Inc()
}

func (c callbacks) OnDeltaStreamOpen(context.Context, int64, string) error {
	c.m.streams.WithLabelValues(protoDelta).Inc()
	return nil
}

func (c callbacks) OnDeltaStreamClosed(int64, *corev3.Node) {
	c.m.streams.WithLabelValues(protoDelta).Dec()
}

func (c callbacks) OnStreamDeltaRequest(_ int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	if req.GetErrorDetail() != nil {
		c.m.nacks.WithLabelValues(typeLabel(req.GetTypeUrl())).Inc()
	}
	return nil
}

func (c callbacks) OnStreamDeltaResponse(_ int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	c.m.responses.WithLabelValues(typeLabel(resp.GetTypeUrl()), protoDelta).Inc()
}

func (c callbacks) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error { return nil }

func (c callbacks) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}
