package client

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"sync/atomic"

	"github.com/rosterhq/roster/client/balance"
)

// Canary selects canary instances.
type Canary int

// Canary modes.
const (
	CanaryInclude Canary = iota // canaries and the rest alike (default)
	CanaryExclude               // never canaries
	CanaryOnly                  // only canaries
)

// Filter selects which healthy instances of a service a Target uses and
// how it balances over them. The zero Filter takes every passing instance,
// prefers the resolver's zone, and balances round robin.
type Filter struct {
	// Tags: the instance must carry every one. Meta: the instance must
	// hold every key with that value.
	Tags []string
	Meta map[string]string
	// Canary includes (default), excludes or selects only canaries.
	Canary Canary
	// Zone is the preferred zone; empty means the resolver's. Instances of
	// the preferred zone are used while any of them is available; the
	// other zones only when none is (spill-over).
	Zone string
	// Subsets split traffic between groups of instances by weight, such
	// as 90% to meta version=v1 and 10% to version=v2. A request keyed by
	// Pick's key always lands in the same subset. When the chosen subset
	// has no available instance (none matches, or every one is ejected),
	// its requests go to the next subset in the list, wrapping around
	// from the last to the first, and on to the one after while that has
	// none either: an empty subset's whole share goes to the next one, it
	// is not spread over the others. (A subset of weight 0 is never
	// chosen, but still takes the share of an empty subset before it.)
	// An instance matching several subsets belongs to each. Instances in
	// no subset get no traffic. Empty: one subset of everything.
	Subsets []Subset
	// Balancer is the policy within a subset and zone (default
	// balance.RoundRobin()).
	Balancer balance.Balancer
}

// Subset is one weighted group of instances of a Filter.
type Subset struct {
	// Name labels the subset (for people).
	Name string
	// Tags and Meta select the subset's instances, like Filter's.
	Tags []string
	Meta map[string]string
	// Weight is the subset's share of requests, relative to the others.
	Weight int
}

func matches(e *balance.Endpoint, tags []string, meta map[string]string) bool {
	for _, t := range tags {
		found := false
		for _, x := range e.Tags {
			if x == t {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for k, v := range meta {
		if got, ok := e.Meta[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// clone copies the filter's slices and maps, so that the caller may reuse
// them once a Target holds the filter.
func (f Filter) clone() Filter {
	f.Tags = slices.Clone(f.Tags)
	f.Meta = maps.Clone(f.Meta)
	f.Subsets = slices.Clone(f.Subsets)
	for i := range f.Subsets {
		f.Subsets[i].Tags = slices.Clone(f.Subsets[i].Tags)
		f.Subsets[i].Meta = maps.Clone(f.Subsets[i].Meta)
	}
	return f
}

func (f *Filter) match(e *balance.Endpoint) bool {
	switch f.Canary {
	case CanaryExclude:
		if e.Canary {
			return false
		}
	case CanaryOnly:
		if !e.Canary {
			return false
		}
	}
	return matches(e, f.Tags, f.Meta)
}

// Target is a filtered, balanced view of one service's healthy instances,
// rebuilt whenever the set changes. Pick reads memory only and does not
// allocate. A Target is safe for concurrent use; Close it when done: until
// then it keeps its service in the resolver's cache (see
// ResolverConfig.IdleTimeout).
type Target struct {
	r      *Resolver
	svc    *service
	filter Filter
	zone   string
	view   atomic.Pointer[view]
	// internal targets (Pick's defaults, Transport's and Dialer's) do not
	// hold their service: it goes when no request uses it.
	internal bool
}

// view is one immutable, balanced picture of the target.
type view struct {
	// changed is closed when a newer view replaces this one.
	changed chan struct{}
	index   uint64
	all     []*balance.Endpoint // every endpoint that passed the filter and is in a subset
	subsets []subsetView
	cum     []uint64 // cumulative subset weights
	total   uint64
}

// subsetView holds a subset's pickers in order of preference: the
// preferred zone, then the rest.
type subsetView struct {
	tiers []balance.Picker
}

// Target returns a target over service's healthy instances selected by f,
// waiting for the service's first fetch. The target keeps a copy of f's
// slices and maps: the caller may change them afterwards.
func (r *Resolver) Target(ctx context.Context, service string, f Filter) (*Target, error) {
	return r.target(ctx, service, f, false)
}

func (r *Resolver) target(ctx context.Context, service string, f Filter, internal bool) (*Target, error) {
	f = f.clone()
	if f.Balancer == nil {
		f.Balancer = balance.RoundRobin()
	}
	zone := f.Zone
	if zone == "" {
		zone = r.cfg.Zone
	}
	for {
		svc, err := r.lookup(ctx, service)
		if err != nil {
			return nil, err
		}
		t := &Target{r: r, svc: svc, filter: f, zone: zone, internal: internal}
		svc.mu.Lock()
		if svc.dropped.Load() {
			// Dropped since the lookup: it would never change again.
			svc.mu.Unlock()
			continue
		}
		svc.targets[t] = struct{}{}
		if !internal {
			svc.held.Add(1)
		}
		t.rebuild(svc.snap.Load())
		svc.mu.Unlock()
		return t, nil
	}
}

// Close stops rebuilding the target, and lets its service leave the cache
// once idle; Pick keeps answering from the last set. Closing twice is
// harmless.
func (t *Target) Close() {
	t.svc.mu.Lock()
	if _, ok := t.svc.targets[t]; ok {
		delete(t.svc.targets, t)
		if !t.internal {
			t.svc.held.Add(-1)
		}
	}
	t.svc.mu.Unlock()
	t.svc.touch() // the idle time counts from here
}

// Service is the target's service name.
func (t *Target) Service() string { return t.svc.name }

// Stale reports whether the target serves a last known set that the
// registry has not confirmed since an error.
func (t *Target) Stale() bool { return t.svc.stale.Load() }

// Endpoints returns the endpoints that pass the filter (shared; do not
// modify).
func (t *Target) Endpoints() []*balance.Endpoint {
	if v := t.view.Load(); v != nil {
		return v.all
	}
	return nil
}

// Changed returns a channel that is closed when the target is next
// rebuilt: the service's healthy set changed (this target's endpoints may
// or may not have). Take the channel before reading Endpoints, then wait
// on it: a change in between closes it, so none is missed. After Close no
// rebuild comes and the channel stays open: wait on a context too.
func (t *Target) Changed() <-chan struct{} { return t.view.Load().changed }

// rebuild computes the view of snap and wakes the waiters of the previous
// one; called with svc.mu held.
func (t *Target) rebuild(snap *snapshot) {
	v := &view{index: snap.index, changed: make(chan struct{})}
	if old := t.view.Load(); old != nil {
		defer close(old.changed)
	}
	var passed []*balance.Endpoint
	for _, e := range snap.endpoints {
		if t.filter.match(e) {
			passed = append(passed, e)
		}
	}
	subsets := t.filter.Subsets
	if len(subsets) == 0 {
		subsets = []Subset{{Weight: 1}}
	}
	inSubset := make(map[*balance.Endpoint]bool, len(passed))
	for _, s := range subsets {
		var local, rest []*balance.Endpoint
		for _, e := range passed {
			if !matches(e, s.Tags, s.Meta) {
				continue
			}
			if !inSubset[e] {
				inSubset[e] = true
				v.all = append(v.all, e)
			}
			if t.zone != "" && e.Zone == t.zone {
				local = append(local, e)
			} else {
				rest = append(rest, e)
			}
		}
		var sv subsetView
		if len(local) > 0 {
			sv.tiers = append(sv.tiers, t.filter.Balancer.Build(local))
		}
		if len(rest) > 0 {
			sv.tiers = append(sv.tiers, t.filter.Balancer.Build(rest))
		}
		v.subsets = append(v.subsets, sv)
		v.total += uint64(max(s.Weight, 0))
		v.cum = append(v.cum, v.total)
	}
	t.view.Store(v)
}

// Pick chooses an endpoint for one request. key, when not empty, is hashed
// to choose the subset and, for hashing balancers, the endpoint; the same
// key goes to the same endpoint while the set does not change. When every
// endpoint is ejected by outlier detection, Pick still returns one (a
// random one: better than failing every request). It returns
// ErrNoInstances when the filter matches no healthy instance.
func (t *Target) Pick(key string) (*balance.Endpoint, error) {
	var h uint64
	if key == "" {
		h = rand.Uint64()
	} else {
		h = balance.HashString(key)
	}
	return t.PickHash(h)
}

// PickHash is Pick with the key already hashed (balance.HashString).
func (t *Target) PickHash(h uint64) (*balance.Endpoint, error) {
	t.svc.touch()
	v := t.view.Load()
	if v == nil || len(v.all) == 0 {
		return nil, ErrNoInstances
	}
	n := len(v.subsets)
	start := 0
	if n > 1 && v.total > 0 {
		// A hash of the hash, so that the subset and the ring position
		// are not correlated.
		r := (h * 0x9e3779b97f4a7c15 >> 11) % v.total
		for start < n-1 && v.cum[start] <= r {
			start++
		}
	}
	for i := range n {
		sv := &v.subsets[(start+i)%n]
		for _, p := range sv.tiers {
			if e := p.Pick(h); e != nil {
				return e, nil
			}
		}
	}
	// Everything is ejected: panic mode, ignore ejection.
	return v.all[h%uint64(len(v.all))], nil
}
