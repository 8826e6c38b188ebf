package balance

import (
	"slices"
	"strconv"
)

// A ring holds PointsPerWeight points for each unit of an endpoint's
// weight, so that an endpoint's points do not depend on the rest of the set
// (which is what keeps movement minimal). A set whose total would pass
// MaxRingPoints (24 bytes a point) is scaled down to fit; only such a
// large set moves more keys than the minimum when it changes.
const (
	PointsPerWeight = 160
	MaxRingPoints   = 1 << 18
)

// RingHash is consistent hashing on the caller's key (a ring hash with
// points in proportion to each endpoint's weight): the same key goes to
// the same endpoint while the set does not change, and when an endpoint
// joins or leaves only about 1/n of the keys move. A key whose endpoint is
// ejected goes to the next available endpoint along the ring, so it moves
// back when the ejection ends.
//
// Points are placed by endpoint ID, so an instance that re-registers with
// a new address under the same ID keeps its keys, and every client of a
// fleet builds the same ring.
func RingHash() Balancer {
	return BalancerFunc(func(eps []*Endpoint) Picker { return newRing(eps) })
}

type ringPoint struct {
	hash uint64
	ep   *Endpoint
}

type ring struct {
	points []ringPoint
	hashes []uint64    // points[i].hash, for the binary search
	eps    []*Endpoint // the set, one entry per endpoint
}

func newRing(eps []*Endpoint) *ring {
	r := &ring{eps: eps}
	if len(eps) == 0 {
		return r
	}
	var total int
	for _, e := range eps {
		total += max(e.Weight, 1)
	}
	perWeight := PointsPerWeight
	if total*perWeight > MaxRingPoints {
		perWeight = max(1, MaxRingPoints/total)
	}
	buf := make([]byte, 0, 160)
	for _, e := range eps {
		n := perWeight * max(e.Weight, 1)
		for i := range n {
			buf = append(buf[:0], e.ID...)
			buf = append(buf, '#')
			buf = strconv.AppendInt(buf, int64(i), 10)
			r.points = append(r.points, ringPoint{hash: HashBytes(buf), ep: e})
		}
	}
	slices.SortFunc(r.points, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		// Equal hashes (rare): order by ID so every client agrees.
		switch {
		case a.ep.ID < b.ep.ID:
			return -1
		case a.ep.ID > b.ep.ID:
			return 1
		}
		return 0
	})
	r.hashes = make([]uint64, len(r.points))
	for i, p := range r.points {
		r.hashes[i] = p.hash
	}
	return r
}

func (r *ring) Pick(key uint64) *Endpoint {
	n := len(r.points)
	if n == 0 {
		return nil
	}
	i, _ := slices.BinarySearch(r.hashes, key)
	if i == n {
		i = 0
	}
	if e := r.points[i].ep; e.Available() {
		return e
	}
	// The key's endpoint is ejected. When every endpoint is, tell after
	// one look at each endpoint, not at each of the ring's points (160
	// per unit of weight).
	if probe(r.eps, 0) == nil {
		return nil
	}
	for j := 1; j < n; j++ {
		if e := r.points[(i+j)%n].ep; e.Available() {
			return e
		}
	}
	return nil
}

// HashString hashes a request key (a user ID, a session) for Pick: 64-bit
// FNV-1a followed by a finalizer that spreads nearby inputs. Every process
// computes the same value.
func HashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

// HashBytes is HashString over bytes.
func HashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix(h)
}

// mix is the 64-bit finalizer of MurmurHash3.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
