package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Blocking query limits.
const (
	DefaultWait = 5 * time.Minute
	MaxWait     = 10 * time.Minute
)

// Config configures a Service.
type Config struct {
	State State
	Log   Applier
	// Leases receives heartbeats; nil means heartbeats only check that the
	// instance exists.
	Leases Leases
	// Ready reports whether State has been restored; until then reads and
	// writes fail with ErrNotReady. Nil means always ready.
	Ready func() bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Consistent returns once State holds every write acknowledged
	// before the call, anywhere in the cluster (a linearizable read
	// barrier: on a leader it confirms that it still leads). A write that
	// would answer ErrNotFound from State asks it first, so that a stale
	// copy never refuses a write the log would accept: a follower behind
	// the leader, or a leader deposed while it was paused that does not
	// know it yet. Nil means State is never behind (a single agent).
	Consistent func(ctx context.Context) error
}

// Service is the one read/write service every front door calls. It
// validates writes, sends them through the log, and answers reads from
// State, blocking when asked to.
type Service struct {
	state  State
	log    Applier
	leases Leases
	ready  func() bool
	now    func() time.Time
	// consistent: see Config.Consistent; never nil.
	consistent func(ctx context.Context) error

	drainOnce sync.Once
	drain     chan struct{}
}

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{state: cfg.State, log: cfg.Log, leases: cfg.Leases, ready: cfg.Ready, now: cfg.Now, consistent: cfg.Consistent, drain: make(chan struct{})}
	if s.consistent == nil {
		s.consistent = func(context.Context) error { return nil }
	}
	if s.ready == nil {
		s.ready = func() bool { return true }
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// SetLeases attaches the lease table; called once while the agent starts.
func (s *Service) SetLeases(l Leases) { s.leases = l }

// Drain makes every blocking query return its current answer at once, and
// later ones not block: the agent is shutting down.
func (s *Service) Drain() { s.drainOnce.Do(func() { close(s.drain) }) }

// Draining is closed once Drain was called.
func (s *Service) Draining() <-chan struct{} { return s.drain }

// Ready reports whether the registry's state has been restored.
func (s *Service) Ready() bool { return s.ready() }

func (s *Service) checkReady() error {
	if !s.ready() {
		return ErrNotReady
	}
	return nil
}

// Register validates in, then creates or replaces it. in is changed by
// normalisation (see Normalize). It returns the instance as stored.
func (s *Service) Register(ctx context.Context, in *Instance) (ApplyResult, error) {
	if err := s.checkReady(); err != nil {
		return ApplyResult{}, err
	}
	if err := Normalize(in); err != nil {
		return ApplyResult{}, err
	}
	res, err := s.log.Apply(ctx, &RegisterOp{Instance: in, At: s.now().UTC()})
	if err != nil {
		return res, err
	}
	if c := res.Instance.TTLCheck(); c != nil && s.leases != nil {
		s.leases.Renew(res.Instance.Key(), *c)
	}
	return res, nil
}

// Deregister removes an instance; ErrNotFound when it does not exist.
func (s *Service) Deregister(ctx context.Context, key Key) (uint64, error) {
	return s.deregister(ctx, &DeregisterOp{Key: normKey(key)})
}

// DeregisterIfCritical removes an instance only while its check checkID is
// still critical. Used by the owners of deregister_after.
func (s *Service) DeregisterIfCritical(ctx context.Context, key Key, checkID string) (uint64, error) {
	return s.deregister(ctx, &DeregisterOp{Key: normKey(key), IfCritical: checkID})
}

func (s *Service) deregister(ctx context.Context, op *DeregisterOp) (uint64, error) {
	if err := s.checkReady(); err != nil {
		return 0, err
	}
	// An unknown instance needs no trip through the log; the state
	// machine checks again, so a concurrent removal is still caught.
	if _, err := s.known(ctx, op.Key); err != nil {
		return 0, err
	}
	res, err := s.log.Apply(ctx, op)
	if err == nil && s.leases != nil {
		s.leases.Forget(op.Key)
	}
	return res.Index, err
}

// Heartbeat renews the TTL lease of an instance. It returns ErrNotFound when
// the registry does not know the instance (the caller should register
// again) and ErrNoTTL when the instance has no TTL. A heartbeat is not
// written to the log unless it changes the TTL check's status.
func (s *Service) Heartbeat(ctx context.Context, key Key) error {
	if err := s.checkReady(); err != nil {
		return err
	}
	key = normKey(key)
	in, err := s.known(ctx, key)
	if err != nil {
		return err
	}
	c := in.TTLCheck()
	if c == nil {
		return ErrNoTTL
	}
	if s.leases != nil {
		s.leases.Renew(key, *c)
	}
	if c.Status != Passing {
		_, err := s.SetCheckStatus(ctx, key, c.ID, Passing, "heartbeat received")
		return err
	}
	return nil
}

// known returns the instance key as State holds it. Before it answers
// ErrNotFound it makes sure State is not behind the log (Consistent): a
// write must not be refused as "not found" by a copy that missed the
// instance's registration. Answers that find the instance need no such
// round trip: the write goes through the log, whose state machine checks
// again.
func (s *Service) known(ctx context.Context, key Key) (*Instance, error) {
	in, err := s.state.Instance(key)
	if !errors.Is(err, ErrNotFound) {
		return in, err
	}
	if cerr := s.consistent(ctx); cerr != nil {
		return nil, fmt.Errorf("confirming that %s/%s does not exist: %w", key.Service, key.ID, cerr)
	}
	return s.state.Instance(key)
}

// SetCheckStatus records a check's new status. It is how leases, active
// checks and operators report transitions.
func (s *Service) SetCheckStatus(ctx context.Context, key Key, checkID string, status Health, output string) (ApplyResult, error) {
	if err := s.checkReady(); err != nil {
		return ApplyResult{}, err
	}
	if !status.Valid() {
		v := &ValidationError{}
		v.Add("status", "must be passing, warning or critical")
		return ApplyResult{}, v
	}
	output = CleanOutput(output)
	return s.log.Apply(ctx, &SetCheckOp{Key: normKey(key), CheckID: checkID, Status: status, Output: output, At: s.now().UTC()})
}

// Reindex marks every service changed (see ReindexOp); called after a
// snapshot restore.
func (s *Service) Reindex(ctx context.Context) (uint64, error) {
	res, err := s.log.Apply(ctx, &ReindexOp{})
	return res.Index, err
}

// Get returns one instance, without blocking.
func (s *Service) Get(key Key) (*Instance, error) {
	if err := s.checkReady(); err != nil {
		return nil, err
	}
	return s.state.Instance(normKey(key))
}

// Instance returns one instance, blocking like Instances: it returns when
// the instance's ModifyIndex passes minIndex or the instance is removed
// (then ErrNotFound). The index returned is the instance's ModifyIndex,
// or the service's index when it is absent.
func (s *Service) Instance(ctx context.Context, key Key, minIndex uint64, wait time.Duration) (*Instance, uint64, error) {
	key = normKey(key)
	var (
		in  *Instance
		idx uint64
		err error
	)
	berr := s.Block(ctx, WatchService(key.Service), minIndex, wait, func() uint64 {
		in, err = s.state.Instance(key)
		if err != nil {
			idx = max(s.state.ServiceIndex(key.Service), 1)
			return idx
		}
		idx = in.ModifyIndex
		return idx
	})
	if berr != nil {
		return nil, 0, berr
	}
	return in, max(idx, 1), err
}

// Result is the answer to an instance query.
type Result struct {
	// Index is the service's index; never 0.
	Index     uint64
	Instances []*Instance
}

// Instances answers q. With minIndex > 0 it blocks until the service's
// index passes minIndex, wait elapses or ctx ends (see Block).
func (s *Service) Instances(ctx context.Context, q Query, minIndex uint64, wait time.Duration) (Result, error) {
	q.Service = NormalizeName(q.Service)
	var res Result
	err := s.Block(ctx, WatchService(q.Service), minIndex, wait, func() uint64 {
		idx, all := s.state.Instances(q.Service)
		res = Result{Index: idx, Instances: filter(all, &q)}
		return idx
	})
	res.Index = max(res.Index, 1)
	return res, err
}

// ServiceIndex returns the current index of a service without building a
// result; front doors use it to serve cached answers.
func (s *Service) ServiceIndex(name string) uint64 {
	return max(s.state.ServiceIndex(NormalizeName(name)), 1)
}

func filter(all []*Instance, q *Query) []*Instance {
	out := make([]*Instance, 0, len(all))
	for _, in := range all {
		if q.Match(in) {
			out = append(out, in)
		}
	}
	return out
}

// InstancesByRepo returns every instance whose Repo is repo, ordered by
// service and ID, from the State's repo index. An empty repo matches
// nothing. It fails with errors.ErrUnsupported when the State has no such
// index (see RepoIndex): the registry never answers it with a scan.
func (s *Service) InstancesByRepo(repo string) ([]*Instance, error) {
	if err := s.checkReady(); err != nil {
		return nil, err
	}
	ri, ok := s.state.(RepoIndex)
	if !ok {
		return nil, fmt.Errorf("instances by repo: %w", errors.ErrUnsupported)
	}
	if repo == "" {
		return nil, nil
	}
	return ri.InstancesByRepo(repo), nil
}

// Services lists every service with its counts; blocking like Instances.
func (s *Service) Services(ctx context.Context, minIndex uint64, wait time.Duration) (uint64, []ServiceSummary, error) {
	var idx uint64
	var out []ServiceSummary
	err := s.Block(ctx, WatchServices, minIndex, wait, func() uint64 {
		idx, out = s.state.Services()
		return idx
	})
	return max(idx, 1), out, err
}

// Checks lists every check of a type; for leases and the health scheduler.
func (s *Service) Checks(typ CheckType) (uint64, []CheckRef) { return s.state.Checks(typ) }

// EachCheck visits every check of a type without copying (State.EachCheck).
func (s *Service) EachCheck(typ CheckType, fn func(Key, *Check) bool) uint64 {
	return s.state.EachCheck(typ, fn)
}

// Watch exposes State.Watch for components that follow changes.
func (s *Service) Watch(key string) (<-chan struct{}, func()) { return s.state.Watch(key) }

// LastIndex is the index of the last applied write.
func (s *Service) LastIndex() uint64 { return max(s.state.LastIndex(), 1) }

// Block runs read, and while minIndex > 0 and the index read returns is
// not past minIndex, waits for a change of key and reads again. It returns
// at the first index past minIndex, after wait (capped at MaxWait, with up
// to 1/16 added as jitter so that watchers spread out), or when ctx ends;
// the last read stands in every case. A minIndex ahead of the registry's
// last index (the client saw a different history, say before a restore)
// returns at once so the client starts over.
func (s *Service) Block(ctx context.Context, key string, minIndex uint64, wait time.Duration, read func() uint64) error {
	if err := s.checkReady(); err != nil {
		return err
	}
	// Answers report an index of at least 1, so 1 is "nothing yet".
	if minIndex == 0 || minIndex > max(s.state.LastIndex(), 1) {
		read()
		return nil
	}
	if wait <= 0 {
		wait = DefaultWait
	}
	wait = min(wait, MaxWait)
	wait += rand.N(wait/16 + 1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		// Take the watch before reading, so no change can slip between.
		ch, release := s.state.Watch(key)
		if idx := read(); idx > minIndex {
			release()
			return nil
		}
		select {
		case <-ch:
			release()
		case <-timer.C:
			release()
			return nil
		case <-s.drain:
			release()
			return nil
		case <-ctx.Done():
			release()
			return fmt.Errorf("blocking query: %w", ctx.Err())
		}
	}
}

func normKey(k Key) Key { return Key{Service: NormalizeName(k.Service), ID: k.ID} }
