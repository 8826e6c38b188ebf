package xds

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// pushBudget is the latency a registry change must reach a connected
// client within.
const pushBudget = 50 * time.Millisecond

// BenchmarkPushLatency measures the time from a registration's return to
// the EDS response on an open ADS stream, with 1,000 services served. It
// reports the median, 99th percentile and worst, and fails when the 99th
// percentile passes pushBudget.
func BenchmarkPushLatency(b *testing.B) {
	ctx := ctxFor(b, 10*time.Minute)
	reg := newRegistry()
	populate(b, reg, 1000, 3)
	_, addr := startServer(b, reg)
	s := openSotW(b, ctx, addr)
	eds := typeURL[kindEndpoints]
	s.request(eds, []string{"svc-500"}, "", "")
	s.expect(eds, []string{"svc-500"})

	w := 1
	push := func() time.Duration {
		w = w%100 + 1
		start := time.Now()
		put(b, reg, registry.Instance{Service: "svc-500", ID: "0", Address: addrOf(500, 0, 3), Port: 80, Zone: "z0", Region: "r1", Weight: w}, registry.Passing)
		for {
			r := s.expect(eds, []string{"svc-500"})
			if got := unpack(b, r, newCLA)["svc-500"]; got.GetEndpoints()[0].GetLbEndpoints()[0].GetLoadBalancingWeight().GetValue() == uint32(w) {
				return time.Since(start)
			}
		}
	}
	push() // warm up: the first change also pays for connection setup
	var lat []time.Duration
	for b.Loop() {
		lat = append(lat, push())
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	b.ReportMetric(float64(pct(0.5).Microseconds()), "p50-µs")
	b.ReportMetric(float64(pct(0.99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	if p99 := pct(0.99); p99 > pushBudget {
		b.Errorf("p99 push latency %v, over the %v budget", p99, pushBudget)
	}
}

// BenchmarkRebuildOneOf1000 measures the work after one service of 1,000
// changes: reading the service list, rebuilding that service and
// assembling and checking the snapshot (the registration itself is
// outside the timer).
func BenchmarkRebuildOneOf1000(b *testing.B) {
	reg := newRegistry()
	populate(b, reg, 1000, 3)
	bl := newBuilder(testOpts)
	build(b, bl, reg)
	w := 1
	for b.Loop() {
		b.StopTimer()
		w = w%100 + 1
		put(b, reg, registry.Instance{Service: "svc-500", ID: "0", Address: addrOf(500, 0, 3), Port: 80, Zone: "z0", Region: "r1", Weight: w}, registry.Passing)
		b.StartTimer()
		if snap, rebuilt := update(b, bl, reg); snap == nil || rebuilt != 1 {
			b.Fatalf("snapshot %v, rebuilt %d", snap != nil, rebuilt)
		}
	}
}

// populate registers services svc-0 … svc-(n-1) with per instances each.
func populate(b testing.TB, reg *registry.Service, n, per int) {
	b.Helper()
	for i := range n {
		for j := range per {
			put(b, reg, registry.Instance{
				Service: fmt.Sprintf("svc-%d", i), ID: fmt.Sprint(j),
				Address: addrOf(i, j, per), Port: 80,
				Zone: fmt.Sprintf("z%d", j%2), Region: "r1",
			}, registry.Passing)
		}
	}
}

// addrOf is the address populate gives instance j of service i.
func addrOf(i, j, per int) string {
	a := i*per + j
	return fmt.Sprintf("10.%d.%d.%d", 1+a/65536, a/256%256, a%256)
}
