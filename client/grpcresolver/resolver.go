package grpcresolver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/balance"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
)

// Scheme is the target scheme: roster:///payment-service.
const Scheme = "roster"

// serviceConfig selects the roster balancer for every target the resolver
// serves.
const serviceConfig = `{"loadBalancingConfig":[{"` + Name + `":{}}]}`

// Builder builds resolvers for roster:/// targets over one client.Resolver:
// every ClientConn dialled through it shares the resolver's cache and its
// watches. Pass it to grpc.NewClient with grpc.WithResolvers, or register
// it for the whole process with Register.
type Builder struct {
	r *client.Resolver
}

// NewBuilder returns a builder over r. Closing r stops following changes;
// connections keep the last set.
func NewBuilder(r *client.Resolver) *Builder { return &Builder{r: r} }

// Register registers a builder over r as the process-wide resolver of the
// roster scheme. Like resolver.Register, call it at initialization, before
// any grpc.NewClient with a roster target.
func Register(r *client.Resolver) { resolver.Register(NewBuilder(r)) }

// Scheme returns "roster".
func (b *Builder) Scheme() string { return Scheme }

// Build starts following the target's service. It does not wait for the
// first answer: the ClientConn gets its addresses when the cache has them.
func (b *Builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	if b.r == nil {
		return nil, errors.New("roster resolver: no client.Resolver (use NewBuilder)")
	}
	sp, err := parseTarget(target.URL.Host, target.Endpoint(), target.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	sc := cc.ParseServiceConfig(serviceConfig)
	if sc.Err != nil {
		return nil, fmt.Errorf("roster resolver: service config: %w", sc.Err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{
		r: b.r, cc: cc, spec: sp, sc: sc, ctx: ctx, cancel: cancel,
		now:  make(chan struct{}, 1),
		info: &targetInfo{service: sp.service, balancer: sp.filter.Balancer, hashHeader: sp.hashHeader},
	}
	w.wg.Go(w.run)
	return w, nil
}

// watcher follows one target and pushes its endpoints to a ClientConn.
type watcher struct {
	r      *client.Resolver
	cc     resolver.ClientConn
	spec   *spec
	sc     *serviceconfig.ParseResult
	info   *targetInfo
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	now    chan struct{} // ResolveNow: retry a failed first lookup at once
}

// ResolveNow retries at once when the service has never been resolved; a
// followed service needs nothing (its cache is fed by a watch).
func (w *watcher) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case w.now <- struct{}{}:
	default:
	}
}

// Close stops following the target.
func (w *watcher) Close() {
	w.cancel()
	w.wg.Wait()
}

// Retry delays of a first lookup that failed (the agent unreachable before
// anything was known); the cache's own watch reconnects in the background.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 5 * time.Second
)

func (w *watcher) run() {
	var t *client.Target
	for delay := minRetry; ; delay = min(2*delay, maxRetry) {
		var err error
		if t, err = w.r.Target(w.ctx, w.spec.service, w.spec.filter); err == nil {
			break
		}
		if w.ctx.Err() != nil {
			return
		}
		w.cc.ReportError(fmt.Errorf("roster resolver: %w", err))
		d := delay/2 + rand.N(delay/2+1)
		tm := time.NewTimer(d)
		select {
		case <-tm.C:
		case <-w.now:
			tm.Stop()
		case <-w.ctx.Done():
			tm.Stop()
			return
		}
	}
	defer t.Close()
	w.info.target = t
	var last []*balance.Endpoint
	for first := true; ; first = false {
		changed := t.Changed()
		eps := t.Endpoints()
		// The SDK keeps an instance's Endpoint while it does not change,
		// so the same pointers mean the same set: a change elsewhere in
		// the service is not pushed.
		if first || !samePointers(eps, last) {
			// An error means the balancer rejected the state (an empty
			// set); the watch brings the next one, nothing to retry.
			_ = w.cc.UpdateState(w.state(eps))
			last = eps
		}
		select {
		case <-changed:
		case <-w.ctx.Done():
			return
		}
	}
}

// state is the resolver state of a set of endpoints: one resolver.Endpoint
// per instance, carrying the SDK's endpoint (weight, priority, zone,
// metadata and the shared in-flight and outlier state) in its attributes,
// and the plain addresses for LB policies that still read Addresses. (Not
// in the addresses' attributes: BalancerAttributes is deprecated, and
// Attributes are part of a connection's identity, so a change of weight
// would reconnect.)
func (w *watcher) state(eps []*balance.Endpoint) resolver.State {
	st := resolver.State{
		Addresses:     make([]resolver.Address, len(eps)),
		Endpoints:     make([]resolver.Endpoint, len(eps)),
		ServiceConfig: w.sc,
		Attributes:    attributes.New(targetKey{}, w.info),
	}
	for i, e := range eps {
		st.Addresses[i] = resolver.Address{Addr: e.Addr}
		st.Endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: e.Addr}}, Attributes: attributes.New(endpointKey{}, e)}
	}
	return st
}

func samePointers(a, b []*balance.Endpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// endpointKey holds an instance's *balance.Endpoint in attributes.
type endpointKey struct{}

// targetKey holds the *targetInfo of a resolver's state.
type targetKey struct{}

// targetInfo is what the balancer learns of the target from the resolver.
// target is set once, before the first state that carries the info.
type targetInfo struct {
	service    string
	target     *client.Target
	balancer   balance.Balancer
	hashHeader string
}

// FromAttributes returns the instance behind the Attributes of a
// resolver.Endpoint pushed by this resolver: its ID, address, weight,
// priority, zone, tags, metadata and canary flag, shared with the SDK (do
// not modify). Nil when the attributes did not come from this resolver.
func FromAttributes(a *attributes.Attributes) *balance.Endpoint {
	e, _ := a.Value(endpointKey{}).(*balance.Endpoint)
	return e
}
