// Package health runs roster's active health checks: the http, tcp and grpc
// checks of registered instances. A Scheduler follows the registry's set of
// active checks, runs one goroutine per check that probes its target every
// interval, applies the consecutive-result thresholds, and reports status
// transitions back through the registry (SetCheckStatus). It also removes
// instances whose check stayed critical for longer than deregister_after
// (DeregisterIfCritical).
//
// It does not run TTL checks (package lease owns those), does not store
// anything itself beyond the per-check counters it keeps in memory, and
// does not decide which agent runs the checks: whoever starts Run does.
// Only transitions are written; a probe's output is recorded with the
// transition that produced it and not updated on its own.
package health

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/registry"
)

// Registry is what the scheduler needs from the registry; *registry.Service
// satisfies it. Every method may be called from any of the scheduler's
// goroutines at the same time.
type Registry interface {
	// Checks lists every check of one type with its instance key.
	Checks(typ registry.CheckType) (uint64, []registry.CheckRef)
	// Watch returns a channel closed at the next change of key; the
	// scheduler watches registry.WatchChecks.
	Watch(key string) (<-chan struct{}, func())
	// SetCheckStatus records a check's new status.
	SetCheckStatus(ctx context.Context, key registry.Key, checkID string, status registry.Health, output string) (registry.ApplyResult, error)
	// DeregisterIfCritical removes an instance while checkID is critical.
	DeregisterIfCritical(ctx context.Context, key registry.Key, checkID string) (uint64, error)
}

var _ Registry = (*registry.Service)(nil)

// Config configures a Scheduler.
type Config struct {
	// Registry is where checks are read and transitions written. Required.
	Registry Registry
	// Logger receives the scheduler's logs; nil discards them.
	Logger *slog.Logger
	// Metrics is where the scheduler's metrics are registered; nil means
	// they are kept but not exported.
	Metrics prometheus.Registerer
	// Now is the clock used for critical-since and deregister_after; nil
	// means time.Now.
	Now func() time.Time
}

// reconcileEvery is the shortest time between two reconciles: changes to
// the checks that arrive faster are coalesced.
const reconcileEvery = 100 * time.Millisecond

// activeTypes are the check types the scheduler runs.
var activeTypes = []registry.CheckType{registry.CheckHTTP, registry.CheckTCP, registry.CheckGRPC}

// Scheduler runs the active checks of the registry: one goroutine per
// check, each probing its target every interval and writing its status
// transitions. Create it with New and call Run once.
type Scheduler struct {
	reg     Registry
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time

	// Shared by every http and tcp check.
	httpClient *http.Client
	transport  *http.Transport
	dialer     *net.Dialer

	// checks and wg belong to the goroutine running Run.
	checks map[checkKey]*runner
	wg     sync.WaitGroup
}

// checkKey names one check of one instance.
type checkKey struct {
	key registry.Key
	id  string
}

// New returns a Scheduler. It panics when cfg.Registry is nil.
func New(cfg Config) *Scheduler {
	if cfg.Registry == nil {
		panic("health: Config.Registry is nil")
	}
	s := &Scheduler{
		reg:     cfg.Registry,
		log:     cfg.Logger,
		metrics: newMetrics(cfg.Metrics),
		now:     cfg.Now,
		dialer:  &net.Dialer{},
		checks:  map[checkKey]*runner{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "health")
	if s.now == nil {
		s.now = time.Now
	}
	s.transport = newTransport(s.dialer)
	s.httpClient = newHTTPClient(s.transport)
	return s
}

// Run follows the registry's active checks and runs them until ctx is
// cancelled. It then stops every check, waits for their goroutines and
// returns nil. The agent runs it each time it gains leadership: Run may be
// called again once the previous call has returned, never concurrently.
func (s *Scheduler) Run(ctx context.Context) error {
	s.log.Info("health scheduler started")
	defer func() {
		n := len(s.checks)
		for k, r := range s.checks {
			r.cancel()
			delete(s.checks, k)
		}
		s.wg.Wait()
		s.transport.CloseIdleConnections()
		s.log.Info("health scheduler stopped", "checks", n)
	}()
	for {
		// Take the watch before reading, so no change slips between.
		ch, release := s.reg.Watch(registry.WatchChecks)
		s.reconcile(ctx)
		select {
		case <-ch:
			release()
		case <-ctx.Done():
			release()
			return nil
		}
		// Coalesce bursts of changes: at most one reconcile per period.
		select {
		case <-time.After(reconcileEvery):
		case <-ctx.Done():
			return nil
		}
	}
}

// reconcile makes the running checks match the registry's: it starts new
// checks, stops removed ones and restarts redefined ones. Checks whose
// goroutine ended on its own (instance gone) are started again when the
// registry still lists them.
func (s *Scheduler) reconcile(ctx context.Context) {
	want := map[checkKey]registry.CheckRef{}
	for _, typ := range activeTypes {
		_, refs := s.reg.Checks(typ)
		for _, ref := range refs {
			want[checkKey{key: ref.Key, id: ref.Check.ID}] = ref
		}
	}
	var started, stopped int
	for k, r := range s.checks {
		ref, ok := want[k]
		switch {
		case !ok || r.finished():
		case definition(ref.Check) != definition(r.ref.Check):
		default:
			// Unchanged: pass on the registry's view of its status, so a
			// check whose instance was registered again starts over.
			r.observe(ref.Check)
			delete(want, k)
			continue
		}
		r.cancel()
		delete(s.checks, k)
		stopped++
	}
	for k, ref := range want {
		r := newRunner(s, ref)
		rctx, cancel := context.WithCancel(ctx)
		r.cancel = cancel
		s.checks[k] = r
		started++
		s.wg.Go(func() { r.run(rctx) })
	}
	if started > 0 || stopped > 0 {
		s.log.Debug("checks reconciled", "started", started, "stopped", stopped, "running", len(s.checks))
	}
}

// definition is the part of a check that, when changed, restarts it: all of
// it but its status.
func definition(c registry.Check) registry.Check {
	c.Status, c.Output, c.CriticalSince = "", "", time.Time{}
	return c
}
