package balance_test

import (
	"testing"

	"github.com/rosterhq/roster/client/balance"
)

// BenchmarkPick measures one pick of each policy over 20 endpoints; every
// policy must pick without allocating.
func BenchmarkPick(b *testing.B) {
	policies := []struct {
		name string
		b    balance.Balancer
	}{
		{"round_robin", balance.RoundRobin()}, {"random", balance.Random()},
		{"weighted", balance.WeightedRandom()}, {"priority", balance.Priority()},
		{"ring_hash", balance.RingHash()}, {"least_loaded", balance.LeastLoaded()},
	}
	weights := make([]int, 20)
	for i := range weights {
		weights[i] = i%5 + 1
	}
	for _, pc := range policies {
		b.Run(pc.name, func(b *testing.B) {
			p := pc.b.Build(endpoints(weights...))
			key := balance.HashString("user-1234")
			b.ReportAllocs()
			for b.Loop() {
				if p.Pick(key) == nil {
					b.Fatal("nil pick")
				}
				key++
			}
		})
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, bl := range []balance.Balancer{balance.RoundRobin(), balance.Random(), balance.WeightedRandom(),
		balance.Priority(), balance.RingHash(), balance.LeastLoaded()} {
		p := bl.Build(endpoints(1, 2, 3))
		if n := testing.AllocsPerRun(100, func() { p.Pick(42) }); n != 0 {
			t.Fatalf("%T: %v allocations per pick", p, n)
		}
	}
}
