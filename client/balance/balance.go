// Package balance chooses one endpoint out of a set of healthy instances of
// a service, for every request, without allocating.
//
// A Balancer is a policy: it builds a Picker from a set of endpoints when
// the set changes (rarely; off the request path), and the Picker chooses an
// endpoint for each request (often; on the request path). The policies are
// RoundRobin, Random, WeightedRandom, Priority (RFC 2782 priority, then
// weight), RingHash (consistent hashing on a caller key) and LeastLoaded
// (power of two choices on in-flight requests). Every Picker skips endpoints
// that passive outlier detection has ejected (see Outlier) and returns nil
// only when no endpoint of its set is available.
//
// The package knows nothing of the registry: the client package turns
// registry instances into Endpoints and keeps one Endpoint per instance
// across changes of the set, so that in-flight counts and failure history
// survive a rebuild of the Picker.
package balance

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Endpoint is one instance a Picker may choose. The exported fields are
// set when the endpoint is created and never change afterwards; the
// counters (in-flight requests, consecutive failures, ejection) are updated
// atomically by Begin, End and Report from any goroutine.
type Endpoint struct {
	// Service and ID identify the instance in the registry.
	Service string
	ID      string
	// Addr is the host:port to connect to.
	Addr string
	// Weight (≥ 1) and Priority (lower is preferred) are the instance's.
	Weight   int
	Priority int
	// Zone, Meta, Tags and Canary describe the instance for filters.
	Zone   string
	Meta   map[string]string
	Tags   []string
	Canary bool
	// Outlier ejects the endpoint after consecutive failures; nil turns
	// outlier detection off for it.
	Outlier *Outlier

	inflight     atomic.Int64
	fails        atomic.Int32
	ejections    atomic.Int32
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 when not ejected
	lastEjected  atomic.Int64 // unix nanoseconds of the last ejection's end
}

// Balancer is a load-balancing policy. Build is called when the set of
// endpoints changes, from one goroutine at a time; it may sort or index the
// endpoints but must not modify the slice it is given (it may keep it). A
// Balancer is stateless: the state of a policy (a round-robin counter, a
// hash ring) lives in the Picker it builds.
type Balancer interface {
	Build(endpoints []*Endpoint) Picker
}

// Picker chooses an endpoint for one request. Pick is called concurrently
// from many goroutines and must not allocate. key is the caller's hash of a
// request attribute (HashString) for policies that hash; the others ignore
// it. Pick returns an available endpoint (see Endpoint.Available), or nil
// when none of the set is available.
type Picker interface {
	Pick(key uint64) *Endpoint
}

// BalancerFunc adapts a function to Balancer.
type BalancerFunc func(endpoints []*Endpoint) Picker

// Build calls f.
func (f BalancerFunc) Build(endpoints []*Endpoint) Picker { return f(endpoints) }

// Outlier configures passive outlier detection: an endpoint that fails
// ConsecutiveFailures times in a row (as reported by this client) is
// ejected for BaseEjection, doubled for each ejection since it last stayed
// healthy for MaxEjection, up to MaxEjection. An Outlier is read-only once
// endpoints use it.
type Outlier struct {
	// ConsecutiveFailures ejects after this many failures in a row
	// (default 5).
	ConsecutiveFailures int
	// BaseEjection is the first ejection's length (default 10s).
	BaseEjection time.Duration
	// MaxEjection caps an ejection (default 5m).
	MaxEjection time.Duration
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

func (o *Outlier) now() int64 {
	if o.Now != nil {
		return o.Now().UnixNano()
	}
	return time.Now().UnixNano()
}

func (o *Outlier) threshold() int32 {
	if o.ConsecutiveFailures <= 0 {
		return 5
	}
	return int32(o.ConsecutiveFailures)
}

func (o *Outlier) maxEjection() time.Duration {
	if o.MaxEjection <= 0 {
		return 5 * time.Minute
	}
	return o.MaxEjection
}

func (o *Outlier) ejection(n int32) time.Duration {
	base, limit := o.BaseEjection, o.maxEjection()
	if base <= 0 {
		base = 10 * time.Second
	}
	d := base
	for i := int32(1); i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// Begin records the start of a request to the endpoint. Pair it with End.
func (e *Endpoint) Begin() { e.inflight.Add(1) }

// End records the end of a request begun with Begin and reports its
// outcome to outlier detection.
func (e *Endpoint) End(ok bool) {
	e.inflight.Add(-1)
	e.Report(ok)
}

// Cancel ends a request begun with Begin without reporting an outcome, for
// a request the caller gave up on (its context was canceled) before the
// endpoint answered: that says nothing of the endpoint, so it neither
// counts as a failure nor, as a success would, ends a run of consecutive
// failures. A request that timed out is an outcome: End it with false.
func (e *Endpoint) Cancel() { e.inflight.Add(-1) }

// InFlight is the number of requests begun and not yet ended.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Report feeds outlier detection with one outcome without touching the
// in-flight count (for callers that do not use Begin/End).
func (e *Endpoint) Report(ok bool) {
	o := e.Outlier
	if o == nil {
		return
	}
	if ok {
		if e.fails.Load() != 0 {
			e.fails.Store(0)
		}
		// A long healthy stretch forgives earlier ejections.
		if e.ejections.Load() != 0 {
			if last := e.lastEjected.Load(); o.now()-last > int64(o.maxEjection()) {
				e.ejections.Store(0)
			}
		}
		return
	}
	if e.fails.Add(1) < o.threshold() {
		return
	}
	e.fails.Store(0)
	now := o.now()
	if u := e.ejectedUntil.Load(); u != 0 && now < u {
		return // already ejected: in-flight failures do not extend it
	}
	n := e.ejections.Add(1)
	until := now + int64(o.ejection(n))
	e.ejectedUntil.Store(until)
	e.lastEjected.Store(until)
}

// Available reports whether the endpoint may be picked: it is not ejected.
func (e *Endpoint) Available() bool {
	u := e.ejectedUntil.Load()
	if u == 0 {
		return true
	}
	now := time.Now().UnixNano()
	if e.Outlier != nil {
		now = e.Outlier.now()
	}
	if now >= u {
		e.ejectedUntil.CompareAndSwap(u, 0)
		return true
	}
	return false
}

// Eject ejects the endpoint for d at once (for callers that learn of a
// failure another way, such as a refused connection). It works with
// outlier detection off (a nil Outlier) too.
func (e *Endpoint) Eject(d time.Duration) {
	now := time.Now().UnixNano()
	if e.Outlier != nil {
		now = e.Outlier.now()
	}
	e.ejectedUntil.Store(now + int64(d))
	e.lastEjected.Store(now + int64(d))
}

// randIndex returns a uniformly random index below n (n > 0).
func randIndex(n int) int { return int(rand.Uint64N(uint64(n))) }

// probe returns the first available endpoint at or after start, wrapping;
// nil when none is available.
func probe(eps []*Endpoint, start int) *Endpoint {
	n := len(eps)
	for i := range n {
		e := eps[(start+i)%n]
		if e.Available() {
			return e
		}
	}
	return nil
}
