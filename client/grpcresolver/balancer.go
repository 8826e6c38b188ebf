package grpcresolver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/rosterhq/roster/client/balance"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/status"
)

// Name is the name of the roster load-balancing policy, which the roster
// resolver selects through its service config.
const Name = "roster"

func init() { balancer.Register(builder{}) }

type builder struct{}

func (builder) Name() string { return Name }

// lbConfig is the policy's (empty) configuration: the target's query
// chooses the balancer.
type lbConfig struct {
	serviceconfig.LoadBalancingConfig
}

func (builder) ParseConfig(json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	return &lbConfig{}, nil
}

// Build returns the roster policy: one pick_first child per instance
// (gRPC's endpointsharding) to hold its connection, and a picker that
// chooses among the ready ones with the SDK's Target.
func (builder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	b := &rosterBalancer{ClientConn: cc}
	b.child = endpointsharding.NewBalancer(b, opts, balancer.Get(pickfirst.Name).Build, endpointsharding.Options{})
	return b
}

// rosterBalancer wraps endpointsharding and intercepts its state updates
// (through the embedded ClientConn) to install its own picker.
type rosterBalancer struct {
	balancer.ClientConn
	child balancer.Balancer

	mu     sync.Mutex
	info   *targetInfo
	resErr error // the last resolver error, while no endpoint is known
	empty  bool  // the last resolver state had no endpoint
}

var errNoTarget = errors.New("roster balancer: the target was not resolved by the roster resolver (dial roster:///service)")

func (b *rosterBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	info, _ := s.ResolverState.Attributes.Value(targetKey{}).(*targetInfo)
	b.mu.Lock()
	b.info, b.resErr, b.empty = info, nil, len(s.ResolverState.Endpoints) == 0
	b.mu.Unlock()
	if info == nil {
		b.ClientConn.UpdateState(balancer.State{ConnectivityState: connectivity.TransientFailure, Picker: errPicker{errNoTarget}})
		return balancer.ErrBadResolverState
	}
	// The SDK's Target drives the choice; the children only hold the
	// connections. Children are keyed by address, so an instance whose
	// weight or metadata changed keeps its connection.
	return b.child.UpdateClientConnState(balancer.ClientConnState{
		ResolverState: pickfirst.EnableHealthListener(s.ResolverState),
	})
}

func (b *rosterBalancer) ResolverError(err error) {
	b.mu.Lock()
	b.resErr = err
	b.mu.Unlock()
	b.child.ResolverError(err)
}

func (b *rosterBalancer) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}

func (b *rosterBalancer) ExitIdle() { b.child.ExitIdle() }

func (b *rosterBalancer) Close() { b.child.Close() }

// UpdateState receives endpointsharding's aggregate state and replaces its
// round-robin picker by one over the ready instances.
func (b *rosterBalancer) UpdateState(state balancer.State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	children := endpointsharding.ChildStatesFromPicker(state.Picker)
	if b.info == nil || len(children) == 0 {
		err := b.resErr
		switch {
		case err != nil:
			// The resolver's error, as reported (it names the resolver).
		case b.info == nil:
			err = errNoTarget
		case b.empty:
			err = fmt.Errorf("roster: no passing instance of %q matches the target", b.info.service)
		default:
			err = errors.New("roster: no instance to pick from")
		}
		b.ClientConn.UpdateState(balancer.State{ConnectivityState: connectivity.TransientFailure, Picker: errPicker{err}})
		return
	}
	p := &picker{info: b.info, ready: map[string]readyChild{}}
	var eps []*balance.Endpoint
	for _, c := range children {
		if c.State.ConnectivityState != connectivity.Ready {
			continue
		}
		e := FromAttributes(c.Endpoint.Attributes)
		if e == nil || len(c.Endpoint.Addresses) == 0 {
			continue
		}
		p.ready[e.Addr] = readyChild{e: e, p: c.State.Picker}
		eps = append(eps, e)
	}
	if len(eps) == 0 {
		// Nothing ready: endpointsharding's picker queues or fails RPCs
		// as the children's states say (connecting, or all failing).
		b.ClientConn.UpdateState(state)
		return
	}
	p.all = eps
	p.fallback = b.info.balancer.Build(eps)
	b.ClientConn.UpdateState(balancer.State{ConnectivityState: connectivity.Ready, Picker: p})
}

type readyChild struct {
	e *balance.Endpoint
	p balancer.Picker // the pick_first child's picker (its connection)
}

// picker picks with the SDK's Target (filters, zone preference, subsets,
// the target's policy, outlier ejection). When the Target's choice has no
// ready connection here (still connecting, or failing while the registry
// still lists it), it draws again, then falls back to the same policy over
// the ready instances.
type picker struct {
	info     *targetInfo
	ready    map[string]readyChild // by address
	all      []*balance.Endpoint   // ready, for the fallback
	fallback balance.Picker
}

// targetDraws is how many picks the Target gets before the fallback.
const targetDraws = 3

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	h, keyed := p.key(info.Ctx)
	var c readyChild
	found := false
	if t := p.info.target; t != nil {
		for i := range targetDraws {
			if i > 0 {
				if keyed {
					h = rehash(h) // the same next choice for the same key
				} else {
					h = rand.Uint64()
				}
			}
			e, err := t.PickHash(h)
			if err != nil {
				break
			}
			if c, found = p.ready[e.Addr]; found {
				break
			}
		}
	}
	if !found {
		e := p.fallback.Pick(h)
		if e == nil {
			// Every ready instance is ejected: better any than none.
			e = p.all[h%uint64(len(p.all))]
		}
		c = p.ready[e.Addr]
	}
	res, err := c.p.Pick(info)
	if err != nil {
		return res, err
	}
	e := c.e
	e.Begin()
	done := res.Done
	res.Done = func(di balancer.DoneInfo) {
		if status.Code(di.Err) == codes.Canceled {
			// The caller gave up: neither a failure of the instance nor a
			// success that would end its run of failures.
			e.Cancel()
		} else {
			e.End(!failed(di.Err))
		}
		if done != nil {
			done(di)
		}
	}
	return res, nil
}

// key hashes the RPC's key: WithKey's, else the target's hash_header in
// the outgoing metadata, else a random draw.
func (p *picker) key(ctx context.Context) (uint64, bool) {
	if k, ok := ctx.Value(keyCtx{}).(string); ok {
		return balance.HashString(k), true
	}
	if p.info.hashHeader != "" {
		if md, ok := metadata.FromOutgoingContext(ctx); ok {
			if v := md.Get(p.info.hashHeader); len(v) > 0 {
				return balance.HashString(v[0]), true
			}
		}
	}
	return rand.Uint64(), false
}

// rehash derives the next hash of a keyed pick (a splitmix64 step).
func rehash(h uint64) uint64 {
	h += 0x9e3779b97f4a7c15
	h = (h ^ h>>30) * 0xbf58476d1ce4e5b9
	h = (h ^ h>>27) * 0x94d049bb133111eb
	return h ^ h>>31
}

// failed reports whether an RPC's outcome counts as a failure of the
// instance for outlier detection: the codes of a server or connection
// fault (gRPC's equivalents of a 5xx, and DeadlineExceeded: the instance
// did not answer in time), not the application's answers (NotFound,
// InvalidArgument...). The caller's cancellation (Canceled) is no outcome
// at all: Pick's Done reports nothing for it.
func failed(err error) bool {
	if err == nil {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown, codes.DataLoss:
		return true
	}
	return false
}

type keyCtx struct{}

// WithKey returns a context whose RPCs are keyed by key: a ring_hash
// target sends the same key to the same instance, and weighted subsets
// put it in the same subset. It takes precedence over hash_header.
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

type errPicker struct{ err error }

func (p errPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{}, status.Error(codes.Unavailable, p.err.Error())
}
