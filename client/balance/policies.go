package balance

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"
)

// RoundRobin takes the endpoints in turn, starting at a random one so that
// a fleet of clients does not start on the same endpoint.
func RoundRobin() Balancer {
	return BalancerFunc(func(eps []*Endpoint) Picker {
		p := &roundRobin{eps: eps}
		p.next.Store(rand.Uint64())
		return p
	})
}

type roundRobin struct {
	eps  []*Endpoint
	next atomic.Uint64
}

func (p *roundRobin) Pick(uint64) *Endpoint {
	n := len(p.eps)
	if n == 0 {
		return nil
	}
	return probe(p.eps, int(p.next.Add(1)%uint64(n)))
}

// Random picks an endpoint uniformly at random.
func Random() Balancer {
	return BalancerFunc(func(eps []*Endpoint) Picker { return random(eps) })
}

type random []*Endpoint

func (p random) Pick(uint64) *Endpoint {
	if len(p) == 0 {
		return nil
	}
	return probe(p, randIndex(len(p)))
}

// WeightedRandom picks an endpoint at random in proportion to its weight.
func WeightedRandom() Balancer {
	return BalancerFunc(func(eps []*Endpoint) Picker { return newWeighted(eps) })
}

// weighted picks by cumulative weights.
type weighted struct {
	eps   []*Endpoint
	cum   []uint64 // cum[i] = sum of weights of eps[:i+1]
	total uint64
}

func newWeighted(eps []*Endpoint) *weighted {
	w := &weighted{eps: eps, cum: make([]uint64, len(eps))}
	for i, e := range eps {
		w.total += uint64(max(e.Weight, 1))
		w.cum[i] = w.total
	}
	return w
}

func (p *weighted) Pick(uint64) *Endpoint {
	if len(p.eps) == 0 {
		return nil
	}
	r := rand.Uint64N(p.total)
	i, _ := slices.BinarySearch(p.cum, r+1)
	if e := p.eps[i]; e.Available() {
		return e
	}
	return p.pickAvailable()
}

// pickAvailable is the slow path once an ejected endpoint was drawn: a
// weighted draw over the available endpoints only.
func (p *weighted) pickAvailable() *Endpoint {
	var total uint64
	for _, e := range p.eps {
		if e.Available() {
			total += uint64(max(e.Weight, 1))
		}
	}
	if total == 0 {
		return nil
	}
	r := rand.Uint64N(total)
	for _, e := range p.eps {
		if !e.Available() {
			continue
		}
		w := uint64(max(e.Weight, 1))
		if r < w {
			return e
		}
		r -= w
	}
	return nil
}

// Priority is RFC 2782 selection: the endpoints with the lowest priority
// value are used, chosen at random in proportion to their weight; the
// next priority is used only when no endpoint of the better one is
// available.
func Priority() Balancer {
	return BalancerFunc(func(eps []*Endpoint) Picker {
		sorted := slices.Clone(eps)
		slices.SortStableFunc(sorted, func(a, b *Endpoint) int { return a.Priority - b.Priority })
		var p priority
		for i := 0; i < len(sorted); {
			j := i
			for j < len(sorted) && sorted[j].Priority == sorted[i].Priority {
				j++
			}
			p = append(p, newWeighted(sorted[i:j]))
			i = j
		}
		return p
	})
}

type priority []*weighted

func (p priority) Pick(key uint64) *Endpoint {
	for _, g := range p {
		if e := g.Pick(key); e != nil {
			return e
		}
	}
	return nil
}

// LeastLoaded draws two endpoints at random and takes the one with fewer
// in-flight requests per unit of weight (the power of two choices). It
// needs callers to use Endpoint.Begin and End.
func LeastLoaded() Balancer {
	return BalancerFunc(func(eps []*Endpoint) Picker { return leastLoaded(eps) })
}

type leastLoaded []*Endpoint

func (p leastLoaded) Pick(uint64) *Endpoint {
	n := len(p)
	switch n {
	case 0:
		return nil
	case 1:
		return probe(p, 0)
	}
	i := randIndex(n)
	j := randIndex(n - 1)
	if j >= i {
		j++
	}
	a, b := p[i], p[j]
	switch {
	case !a.Available():
		if b.Available() {
			return b
		}
		return probe(p, i)
	case !b.Available():
		return a
	}
	// a.inflight/a.weight <= b.inflight/b.weight, without division.
	if a.InFlight()*int64(max(b.Weight, 1)) <= b.InFlight()*int64(max(a.Weight, 1)) {
		return a
	}
	return b
}
