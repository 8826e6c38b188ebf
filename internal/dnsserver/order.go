package dnsserver

import (
	"math"
	"math/rand/v2"
	"slices"
)

// order shuffles ts for this answer: lower priority first and, within a
// priority, a random order in which an instance comes early in proportion
// to its weight (each draws the key log(u)/weight, and larger keys come
// first: a weighted random permutation). Clients that take the first
// record spread their load by weight; SRV clients still see priority and
// weight in the records.
func order(ts []target) {
	if len(ts) < 2 {
		return
	}
	uniform := true
	for _, t := range ts[1:] {
		if t.in.Priority != ts[0].in.Priority || t.in.Weight != ts[0].in.Weight {
			uniform = false
			break
		}
	}
	if uniform {
		rand.Shuffle(len(ts), func(i, j int) { ts[i], ts[j] = ts[j], ts[i] })
		return
	}
	type keyed struct {
		key float64
		t   target
	}
	ks := make([]keyed, len(ts))
	for i, t := range ts {
		w := float64(max(t.in.Weight, 1))
		ks[i] = keyed{key: math.Log(1-rand.Float64()) / w, t: t}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if a.t.in.Priority != b.t.in.Priority {
			return a.t.in.Priority - b.t.in.Priority
		}
		switch {
		case a.key > b.key:
			return -1
		case a.key < b.key:
			return 1
		}
		return 0
	})
	for i := range ks {
		ts[i] = ks[i].t
	}
}
