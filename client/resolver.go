package client

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rosterhq/roster/client/balance"
)

// ResolverConfig configures a Resolver. Zero values take the defaults.
type ResolverConfig struct {
	// Zone is this client's zone: targets prefer instances in it and
	// spill over to other zones when it has none available. Empty: no
	// preference (a Filter may still name one).
	Zone string
	// Wait is how long one blocking query waits for a change (default 5m).
	Wait time.Duration
	// MinInterval is the least time between an answer and the next query
	// of one watch (default 100ms), plus a random Jitter (default 100ms):
	// a change that wakes a whole fleet at once is not followed by the
	// fleet's next queries arriving at once, and a watch never spins.
	MinInterval time.Duration
	Jitter      time.Duration
	// MinBackoff and MaxBackoff bound the delay before reconnecting after
	// an error (defaults 250ms and 30s; exponential with jitter).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// IdleTimeout drops a service nobody has used for that long: its watch
	// stops and its set leaves the cache; a later lookup fetches it again.
	// A lookup (Instances, Pick, Target, a request through Transport or
	// Dialer, a pick of a Target) is a use, and a Target not yet closed
	// counts as use all along. The service goes between IdleTimeout and
	// 1.5×IdleTimeout after its last use (default 10m; negative: never).
	IdleTimeout time.Duration
	// RejectedTTL is how long the agent's refusal of a service name (a 4xx
	// answer, other than 408 and 429, to the service's first fetch, such
	// as 400 for a name that is not a valid service name) is remembered:
	// lookups in that time fail at once with that error, without a
	// request; then the name is dropped, not retried in the background,
	// and the next lookup asks again (default 30s).
	RejectedTTL time.Duration
	// MaxDirectWatches is how many services get a blocking query of their
	// own (default 64). Services past it are followed through one blocking
	// query on the service list, which names every service's last index,
	// and fetched when their index moves: one connection follows any
	// number of services.
	MaxDirectWatches int
	// Outlier configures passive outlier detection for every endpoint
	// (default: 5 consecutive failures eject for 10s, doubling up to 5m).
	// Set ConsecutiveFailures to -1 to turn it off.
	Outlier *balance.Outlier
	// Hooks are called on watch events (metrics).
	Hooks Hooks
	// Logger receives stale/fresh transitions; nil: the client's logger.
	Logger *slog.Logger
}

// Hooks are optional callbacks for metrics. They are called from watch
// goroutines, some with the resolver's locks held: they must not block,
// and must not call the Resolver or a Target (Updated runs while the
// service's targets are rebuilt; a lookup from Stale may deadlock).
type Hooks struct {
	// Updated: a service's healthy set changed.
	Updated func(service string, index uint64, instances int)
	// Stale: the registry could not be reached; the service's last known
	// set is served, marked stale.
	Stale func(service string, err error)
	// Fresh: a stale service was refreshed.
	Fresh func(service string)
	// IndexReset: the registry's index went backwards (a restored or new
	// registry); the watch starts over from 0.
	IndexReset func(service string, from, to uint64)
	// Dropped: a service left the cache (idle for IdleTimeout, or a name
	// the agent rejected, after RejectedTTL); its watch stopped.
	Dropped func(service string)
}

// Stats are the resolver's counters.
type Stats struct {
	// Services is how many services are followed; Stale how many of them
	// are served from a last known set the registry could not confirm.
	Services int
	Stale    int
	// Queries counts requests to the agent; Updates changed sets; Errors
	// failed requests; IndexResets indexes that went backwards; Dropped
	// services dropped from the cache (idle, or a rejected name).
	Queries     uint64
	Updates     uint64
	Errors      uint64
	IndexResets uint64
	Dropped     uint64
}

// Resolver keeps the healthy (passing) instances of every service it is
// asked about in memory, fed by blocking queries on the agent: the first
// lookup of a service fills the cache and starts its watch; later lookups
// read memory only. When the agent cannot be reached it keeps serving the
// last known set, marked stale, and reconnects with backoff; it never
// empties a set because the registry blinked. An empty set comes only
// from a registry that answers that the service has no passing instance.
//
// A Resolver is safe for concurrent use. Close stops its watches.
type Resolver struct {
	c     *Client
	cfg   ResolverConfig
	log   *slog.Logger
	ctx   context.Context // the resolver's lifetime, cancelled by Close
	stop  context.CancelFunc
	wg    sync.WaitGroup
	outl  *balance.Outlier
	hooks Hooks

	mu       sync.RWMutex
	services map[string]*service
	direct   int
	closed   bool
	catalog  *catalogWatch
	// defaults holds the target each service's Pick uses.
	defaults map[string]*Target
	janitor  bool // the idle sweep runs

	queries, updates, errs, resets, dropped atomic.Uint64
}

// NewResolver returns a resolver that asks the agent behind c. It starts
// no goroutine until the first lookup.
func NewResolver(c *Client, cfg ResolverConfig) *Resolver {
	if cfg.Wait <= 0 {
		cfg.Wait = 5 * time.Minute
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = 100 * time.Millisecond
	}
	if cfg.Jitter <= 0 {
		cfg.Jitter = 100 * time.Millisecond
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.RejectedTTL <= 0 {
		cfg.RejectedTTL = 30 * time.Second
	}
	if cfg.MaxDirectWatches == 0 {
		cfg.MaxDirectWatches = 64
	}
	log := cfg.Logger
	if log == nil {
		log = c.log
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &Resolver{c: c, cfg: cfg, log: log, ctx: ctx, stop: stop, hooks: cfg.Hooks,
		services: map[string]*service{}, defaults: map[string]*Target{}}
	switch {
	case cfg.Outlier == nil:
		r.outl = &balance.Outlier{}
	case cfg.Outlier.ConsecutiveFailures >= 0:
		r.outl = cfg.Outlier
	}
	return r
}

// Close stops every watch and waits for them.
func (r *Resolver) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stop()
	r.wg.Wait()
	return nil
}

// Stats returns the resolver's counters.
func (r *Resolver) Stats() Stats {
	r.mu.RLock()
	s := Stats{Services: len(r.services)}
	for _, svc := range r.services {
		if svc.stale.Load() {
			s.Stale++
		}
	}
	r.mu.RUnlock()
	s.Queries, s.Updates, s.Errors, s.IndexResets = r.queries.Load(), r.updates.Load(), r.errs.Load(), r.resets.Load()
	s.Dropped = r.dropped.Load()
	return s
}

// service is the cache entry of one service.
type service struct {
	name  string
	ready chan struct{} // closed after the first fetch, success or not
	once  sync.Once
	snap  atomic.Pointer[snapshot]
	stale atomic.Bool
	err   atomic.Pointer[error] // last error while no set is known

	// ctx ends when the service is dropped or the resolver closes: it
	// stops the service's watch and fetches.
	ctx    context.Context
	cancel context.CancelFunc
	direct bool // followed by a watch of its own, else by the catalog's
	// used is set by every use; the idle sweep clears it and notes when
	// in lastUse (read and written with Resolver.mu held).
	used    atomic.Bool
	lastUse time.Time
	// dropped is set (with mu held) when the service leaves the cache; a
	// Target is never added to a dropped service.
	dropped atomic.Bool
	held    atomic.Int32 // Targets not yet closed, other than internal ones

	mu      sync.Mutex // serializes apply and guards targets
	targets map[*Target]struct{}
}

// touch records a use; it does not allocate and, once set, does not write.
func (s *service) touch() {
	if !s.used.Load() {
		s.used.Store(true)
	}
}

// snapshot is one immutable healthy set of a service.
type snapshot struct {
	index     uint64
	instances []Instance
	endpoints []*balance.Endpoint // endpoints[i] is instances[i]
}

func (s *service) markReady() { s.once.Do(func() { close(s.ready) }) }

// lookup returns the service's entry, creating it and starting its watch
// on first use, and waits for its first fetch.
func (r *Resolver) lookup(ctx context.Context, name string) (*service, error) {
	for {
		r.mu.RLock()
		svc := r.services[name]
		r.mu.RUnlock()
		if svc == nil {
			var err error
			if svc, err = r.add(name); err != nil {
				return nil, err
			}
		}
		svc.touch()
		select {
		case <-svc.ready:
		default:
			select {
			case <-svc.ready:
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-svc.ctx.Done():
				if r.ctx.Err() != nil {
					// Closed during the first fetch: the watch ends without one.
					return nil, fmt.Errorf("resolve %s: %w", name, ErrClosed)
				}
				continue // dropped during its first fetch: start again
			}
		}
		if err := svc.lookupErr(); err != nil {
			return nil, err
		}
		return svc, nil
	}
}

// lookupErr is nil when svc has a set, else why it has none.
func (svc *service) lookupErr() error {
	name := svc.name
	if svc.snap.Load() == nil {
		if p := svc.err.Load(); p != nil {
			return fmt.Errorf("resolve %s: %w", name, *p)
		}
		return fmt.Errorf("resolve %s: %w", name, ErrNoInstances)
	}
	return nil
}

func (r *Resolver) add(name string) (*service, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if svc := r.services[name]; svc != nil {
		return svc, nil
	}
	svc := &service{name: name, ready: make(chan struct{}), targets: map[*Target]struct{}{}, lastUse: time.Now()}
	svc.ctx, svc.cancel = context.WithCancel(r.ctx)
	r.services[name] = svc
	if !r.janitor && r.cfg.IdleTimeout > 0 {
		r.janitor = true
		r.wg.Go(r.sweepIdle)
	}
	if r.direct < r.cfg.MaxDirectWatches {
		r.direct++
		svc.direct = true
		r.wg.Go(func() { r.watchService(svc) })
		return svc, nil
	}
	if r.catalog == nil {
		r.catalog = newCatalogWatch(r)
		r.wg.Go(r.catalog.run)
	}
	r.catalog.add(svc)
	return svc, nil
}

// Instances returns the passing instances of service: from memory once
// the service is known, after its first fetch otherwise. The slice is
// shared: do not modify it. While the registry cannot be reached the last
// known set is returned (see Stale).
func (r *Resolver) Instances(ctx context.Context, service string) ([]Instance, error) {
	svc, err := r.lookup(ctx, service)
	if err != nil {
		return nil, err
	}
	return svc.snap.Load().instances, nil
}

// Stale reports whether service's set is the last known one, not
// confirmed by the registry since its last error.
func (r *Resolver) Stale(service string) bool {
	r.mu.RLock()
	svc := r.services[service]
	r.mu.RUnlock()
	return svc != nil && svc.stale.Load()
}

// Pick chooses an instance of service with the resolver's default target
// for it (round robin, preferring the resolver's zone). key, when not
// empty, is hashed for hashing balancers. After the first call for a
// service it reads memory only and does not allocate.
func (r *Resolver) Pick(ctx context.Context, service, key string) (*balance.Endpoint, error) {
	r.mu.RLock()
	t := r.defaults[service]
	r.mu.RUnlock()
	if t == nil {
		var err error
		if t, err = r.defaultTarget(ctx, service); err != nil {
			return nil, err
		}
	}
	return t.Pick(key)
}

func (r *Resolver) defaultTarget(ctx context.Context, service string) (*Target, error) {
	for {
		t, err := r.target(ctx, service, Filter{}, true)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		old := r.defaults[service]
		// Dropping a service (with r.mu held) also removes its default.
		keep := old == nil && !t.svc.dropped.Load()
		if keep {
			r.defaults[service] = t
		}
		r.mu.Unlock()
		switch {
		case keep:
			return t, nil
		case old != nil:
			t.Close() // another caller won the race
			return old, nil
		}
		// The service was dropped in between: look it up again.
	}
}

// apply installs a new healthy set, carrying endpoints (and their load and
// failure counts) over for instances that did not change, and rebuilds
// every target of the service. An answer older than the current one is
// ignored unless reset (the registry's index went backwards).
func (r *Resolver) apply(svc *service, index uint64, instances []Instance, reset bool) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	old := svc.snap.Load()
	if old != nil && !reset && index <= old.index {
		return
	}
	prev := map[string]*balance.Endpoint{}
	if old != nil {
		for i, e := range old.endpoints {
			if sameEndpoint(&old.instances[i], e) {
				prev[e.ID] = e
			}
		}
	}
	snap := &snapshot{index: index, instances: instances, endpoints: make([]*balance.Endpoint, len(instances))}
	for i := range instances {
		in := &instances[i]
		if e := prev[in.ID]; e != nil && sameEndpoint(in, e) {
			snap.endpoints[i] = e
			continue
		}
		snap.endpoints[i] = &balance.Endpoint{
			Service: in.Service, ID: in.ID, Addr: in.Addr(), Weight: max(in.Weight, 1), Priority: in.Priority,
			Zone: in.Zone, Meta: in.Meta, Tags: in.Tags, Canary: in.Canary, Outlier: r.outl,
		}
	}
	svc.snap.Store(snap)
	for t := range svc.targets {
		t.rebuild(snap)
	}
	r.updates.Add(1)
	if r.hooks.Updated != nil {
		r.hooks.Updated(svc.name, index, len(instances))
	}
}

func sameEndpoint(in *Instance, e *balance.Endpoint) bool {
	if e.ID != in.ID || e.Addr != in.Addr() || e.Weight != max(in.Weight, 1) || e.Priority != in.Priority ||
		e.Zone != in.Zone || e.Canary != in.Canary || len(e.Meta) != len(in.Meta) || len(e.Tags) != len(in.Tags) {
		return false
	}
	for k, v := range in.Meta {
		if w, ok := e.Meta[k]; !ok || w != v {
			return false
		}
	}
	for i := range in.Tags {
		if e.Tags[i] != in.Tags[i] {
			return false
		}
	}
	return true
}

// failed records a failed fetch: the last known set stays, marked stale.
func (r *Resolver) failed(svc *service, err error) {
	r.errs.Add(1)
	if svc.snap.Load() == nil {
		svc.err.Store(&err)
		svc.markReady()
		return
	}
	if !svc.stale.Swap(true) {
		n := len(svc.snap.Load().instances)
		r.log.Warn("registry unreachable; serving the last known instances", "service", svc.name, "instances", n, "err", err)
		if r.hooks.Stale != nil {
			r.hooks.Stale(svc.name, err)
		}
	}
}

// fresh records a successful fetch.
func (r *Resolver) fresh(svc *service) {
	svc.err.Store(nil)
	if svc.stale.Swap(false) {
		r.log.Info("registry reachable again; instances fresh", "service", svc.name)
		if r.hooks.Fresh != nil {
			r.hooks.Fresh(svc.name)
		}
	}
}

func (r *Resolver) indexReset(name string, from, to uint64) {
	r.resets.Add(1)
	r.log.Info("registry index went backwards; watching from 0", "service", name, "from", from, "to", to)
	if r.hooks.IndexReset != nil {
		r.hooks.IndexReset(name, from, to)
	}
}

// pace waits until at least MinInterval plus jitter has passed since
// last, the previous answer of the watch; it returns false when ctx (the
// watch's) ends. Pacing from the answer, not from the start of the
// query, matters after a long blocking query: a change wakes every client
// of a fleet at once, and their next queries then spread over the jitter
// instead of arriving together.
func (r *Resolver) pace(ctx context.Context, last time.Time) bool {
	if last.IsZero() {
		return ctx.Err() == nil
	}
	d := r.cfg.MinInterval + time.Duration(rand.Int64N(int64(r.cfg.Jitter)+1))
	return sleep(ctx, time.Until(last.Add(d)))
}

// sleep waits for d; it returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// watchService follows one service with blocking queries.
func (r *Resolver) watchService(svc *service) {
	var (
		ctx      = svc.ctx
		index    uint64
		last     time.Time
		failures int
	)
	for r.pace(ctx, last) {
		r.queries.Add(1)
		ins, got, err := r.c.Instances(ctx, svc.name, QueryOptions{Status: Passing, Index: index, Wait: r.cfg.Wait})
		last = time.Now() // pace from the answer: see pace
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if svc.snap.Load() == nil && rejected(err) {
				r.reject(svc, err)
				return
			}
			failures++
			r.failed(svc, err)
			if !sleep(ctx, backoff(failures, r.cfg.MinBackoff, r.cfg.MaxBackoff)) {
				return
			}
			continue
		}
		failures = 0
		r.fresh(svc)
		switch {
		case got < index:
			// A new or restored registry: take its answer and start over.
			r.indexReset(svc.name, index, got)
			r.apply(svc, got, nonNilInstances(ins), true)
			index = 0
		case got == index && svc.snap.Load() != nil:
			// The wait ended without a change.
		default:
			r.apply(svc, got, nonNilInstances(ins), false)
			index = max(got, 1)
		}
		svc.markReady()
	}
}

func nonNilInstances(s []Instance) []Instance {
	if s == nil {
		return []Instance{}
	}
	return s
}
