package client_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/balance"
	"github.com/rosterhq/roster/client/internal/testagent"
)

// hotPath registers n instances of "bench" (no TTL, nothing listens) and
// returns a resolver that has looked the service up once.
func hotPath(tb testing.TB, n int) *client.Resolver {
	tb.Helper()
	a := testagent.Start(tb)
	c := newClient(tb, a)
	for i := range n {
		in := &client.Instance{Service: "bench", ID: fmt.Sprint("bench-", i), Address: "10.0.0.1", Port: 1000 + i, Weight: i%3 + 1}
		if _, err := c.Put(ctxT(tb), in); err != nil {
			tb.Fatal(err)
		}
	}
	r := fastResolver(tb, c, client.ResolverConfig{})
	if _, err := r.Instances(ctxT(tb), "bench"); err != nil {
		tb.Fatal(err)
	}
	return r
}

type hotCase struct {
	name string
	fn   func() error
}

func hotCases(tb testing.TB, r *client.Resolver) []hotCase {
	ctx := context.Background()
	rr, err := r.Target(ctx, "bench", client.Filter{})
	if err != nil {
		tb.Fatal(err)
	}
	ring, err := r.Target(ctx, "bench", client.Filter{Balancer: balance.RingHash()})
	if err != nil {
		tb.Fatal(err)
	}
	p2c, err := r.Target(ctx, "bench", client.Filter{Balancer: balance.LeastLoaded()})
	if err != nil {
		tb.Fatal(err)
	}
	split, err := r.Target(ctx, "bench", client.Filter{Balancer: balance.WeightedRandom(), Subsets: []client.Subset{
		{Meta: map[string]string{}, Weight: 9}, {Tags: []string{"none"}, Weight: 1}}})
	if err != nil {
		tb.Fatal(err)
	}
	return []hotCase{
		{"resolver_pick", func() error { _, err := r.Pick(ctx, "bench", ""); return err }},
		{"resolver_instances", func() error { _, err := r.Instances(ctx, "bench"); return err }},
		{"target_round_robin", func() error { _, err := rr.Pick(""); return err }},
		{"target_ring_hash_key", func() error { _, err := ring.Pick("user-12345"); return err }},
		{"target_least_loaded", func() error {
			e, err := p2c.Pick("")
			if err == nil {
				e.Begin()
				e.End(true)
			}
			return err
		}},
		{"target_subsets_weighted", func() error { _, err := split.Pick(""); return err }},
	}
}

// BenchmarkHotPath is a cached lookup plus a balancer pick over 50
// instances: the budget is under 1µs and zero allocations.
func BenchmarkHotPath(b *testing.B) {
	r := hotPath(b, 50)
	for _, hc := range hotCases(b, r) {
		b.Run(hc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := hc.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestHotPathDoesNotAllocate holds the zero-allocation budget in every
// test run.
func TestHotPathDoesNotAllocate(t *testing.T) {
	r := hotPath(t, 20)
	for _, hc := range hotCases(t, r) {
		if n := testing.AllocsPerRun(200, func() {
			if err := hc.fn(); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", hc.name, n)
		}
	}
}

// BenchmarkWatch10000Services follows 10,000 services (one instance each)
// with one resolver and reports the heap it holds per service, its
// goroutines, and (as ns/op) how long a change takes to reach the cache
// when changes come back to back (so it includes the watch's pacing,
// MinInterval plus jitter, 100-200ms by default).
func BenchmarkWatch10000Services(b *testing.B) {
	const services = 10000
	a := testagent.Start(b)
	c := newClient(b, a)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= services {
					return
				}
				in := &client.Instance{Service: fmt.Sprint("s", i), ID: "i-0", Address: "10.0.0.1", Port: 80,
					Meta: map[string]string{"version": "v1"}, Zone: "a"}
				if _, err := c.Put(ctxT(b), in); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	r := client.NewResolver(c, client.ResolverConfig{Logger: testLogger(b)})
	defer r.Close()
	next.Store(0)
	for range 64 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= services {
					return
				}
				ins, err := r.Instances(ctxT(b), fmt.Sprint("s", i))
				if err != nil || len(ins) != 1 {
					b.Errorf("s%d: %v %v", i, ins, err)
					return
				}
			}
		})
	}
	wg.Wait()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	spawned := runtime.NumGoroutine() - goroutines

	// Each iteration changes one service and waits for the cache to see it.
	n := 0
	for b.Loop() {
		n++
		svc := fmt.Sprint("s", (n*7919)%services)
		in := &client.Instance{Service: svc, ID: fmt.Sprint("new-", n), Address: "10.0.0.2", Port: 80}
		if _, err := c.Put(ctxT(b), in); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			ins, _ := r.Instances(ctxT(b), svc)
			if len(ins) >= 2 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s: change not seen", svc)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if s := r.Stats(); s.Services != services || s.Stale != 0 {
		b.Fatalf("stats %+v", s)
	}
	// Reported after the loop, which resets earlier metrics.
	b.ReportMetric(heap/services, "heap-B/service")
	b.ReportMetric(heap/(1<<20), "heap-MiB")
	b.ReportMetric(float64(spawned), "goroutines")
}
