package health

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// result is the outcome of one probe.
type result struct {
	status registry.Health
	output string
}

// prober probes one check's target. probe is called by the check's
// goroutine only, one call at a time, with a context bounded by the check's
// timeout; close is called once, after the last probe.
type prober interface {
	probe(ctx context.Context) result
	close()
}

// newProber returns the prober of c's type.
func (s *Scheduler) newProber(c registry.Check, interval, timeout time.Duration) prober {
	switch c.Type {
	case registry.CheckHTTP:
		return &httpProber{client: s.httpClient, target: c.Target}
	case registry.CheckTCP:
		return &tcpProber{dialer: s.dialer, target: c.Target}
	default:
		return newGRPCProber(c.Target, interval, timeout)
	}
}

// runner runs one check in its own goroutine.
type runner struct {
	s      *Scheduler
	ref    registry.CheckRef // as it was when the runner started
	log    *slog.Logger
	cancel context.CancelFunc // set by reconcile; stops run
	done   chan struct{}

	// interval, timeout and the thresholds, with defaults filled in.
	interval, timeout     time.Duration
	toCritical, toPassing int

	// Owned by the run goroutine.
	status        registry.Health // the status the thresholds arrived at
	written       registry.Health // the status last known in the registry; "" when unknown
	criticalSince time.Time       // when written turned critical
	failures      int             // consecutive failures
	successes     int             // consecutive passes
	writeErrors   int             // consecutive failed writes

	mu       sync.Mutex
	observed *registry.Check // the registry's latest view, handed over by reconcile
}

func newRunner(s *Scheduler, ref registry.CheckRef) *runner {
	c := ref.Check
	r := &runner{
		s:   s,
		ref: ref,
		log: s.log.With("service", ref.Key.Service, "instance", ref.Key.ID,
			"check", c.ID, "type", string(c.Type)),
		done:       make(chan struct{}),
		interval:   c.Interval.D(),
		timeout:    c.Timeout.D(),
		toCritical: c.FailuresBeforeCritical,
		toPassing:  c.SuccessesBeforePassing,
	}
	if r.interval <= 0 {
		r.interval = registry.DefaultCheckInterval
	}
	if r.timeout <= 0 || r.timeout > r.interval {
		r.timeout = min(registry.DefaultCheckTimeout, r.interval)
	}
	if r.toCritical <= 0 {
		r.toCritical = registry.DefaultFailuresBeforeCritical
	}
	if r.toPassing <= 0 {
		r.toPassing = registry.DefaultSuccessesBeforePassing
	}
	r.status = c.Status
	if !r.status.Valid() {
		r.status = registry.Critical
	}
	r.adopt(c)
	return r
}

// adopt takes the registry's view of the check's status as the last
// written one. Called before run starts and then from run only.
func (r *runner) adopt(c registry.Check) {
	switch {
	case c.Status != registry.Critical:
		r.criticalSince = time.Time{}
	case !c.CriticalSince.IsZero():
		r.criticalSince = c.CriticalSince
	case r.written != registry.Critical:
		r.criticalSince = time.Time{} // set when first seen critical
	}
	r.written = c.Status
}

// observe hands the registry's latest view of the check to the runner; it
// adopts it before its next decision. Called by reconcile.
func (r *runner) observe(c registry.Check) {
	r.mu.Lock()
	r.observed = &c
	r.mu.Unlock()
}

// finished reports whether the runner's goroutine has ended.
func (r *runner) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// run probes the target until ctx ends or the instance is gone.
func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	m := r.s.metrics
	typ := string(r.ref.Check.Type)
	m.running.WithLabelValues(typ).Inc()
	defer m.running.WithLabelValues(typ).Dec()
	p := r.s.newProber(r.ref.Check, r.interval, r.timeout)
	defer p.close()

	// Spread the first runs of many checks over up to a second.
	first := time.Duration(0)
	if d := min(r.interval, time.Second); d > 0 {
		first = rand.N(d)
	}
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		timer.Reset(r.interval)
		if !r.once(ctx, p) {
			return
		}
	}
}

// once runs one probe and acts on its result. It returns false when the
// check should stop.
func (r *runner) once(ctx context.Context, p prober) bool {
	m := r.s.metrics
	typ := string(r.ref.Check.Type)
	pctx, cancel := context.WithTimeout(ctx, r.timeout)
	start := time.Now()
	res := p.probe(pctx)
	m.duration.WithLabelValues(typ).Observe(time.Since(start).Seconds())
	cancel()
	if ctx.Err() != nil {
		return false // stopping: the probe was cut short, not failed
	}
	m.runs.WithLabelValues(typ, string(res.status)).Inc()

	r.mu.Lock()
	obs := r.observed
	r.observed = nil
	r.mu.Unlock()
	if obs != nil {
		r.adopt(*obs)
	}

	r.status = r.next(res.status)
	if r.status != r.written && !r.write(ctx, res.output) {
		return false
	}
	return r.maybeDeregister(ctx)
}

// next applies a probe result to the thresholds and returns the status to
// report. A failure turns the check critical after toCritical failures in a
// row, a pass turns it passing after toPassing passes in a row. A warning
// (HTTP 429) is reported at once; it ends a run of failures and of passes.
func (r *runner) next(h registry.Health) registry.Health {
	switch h {
	case registry.Passing:
		r.failures = 0
		r.successes++
		if r.successes >= r.toPassing {
			return registry.Passing
		}
	case registry.Warning:
		r.failures, r.successes = 0, 0
		return registry.Warning
	default:
		r.successes = 0
		r.failures++
		if r.failures >= r.toCritical {
			return registry.Critical
		}
	}
	return r.status
}

// write records r.status in the registry. It returns false when the check
// should stop because its instance or the check itself is gone.
func (r *runner) write(ctx context.Context, output string) bool {
	key, id := r.ref.Key, r.ref.Check.ID
	_, err := r.s.reg.SetCheckStatus(ctx, key, id, r.status, output)
	switch {
	case err == nil:
		r.log.Info("check status changed", "from", string(r.written), "to", string(r.status), "output", output)
		r.written = r.status
		r.writeErrors = 0
		r.criticalSince = time.Time{}
		if r.status == registry.Critical {
			r.criticalSince = r.s.now()
		}
		r.s.metrics.transitions.WithLabelValues(string(r.ref.Check.Type), string(r.status)).Inc()
		return true
	case errors.Is(err, registry.ErrNotFound):
		r.log.Debug("check gone, stopping", "err", err)
		return false
	case ctx.Err() != nil:
		return false
	default:
		// Retried at the next run. Warn once per streak: a follower or
		// a registry being restored fails every write for a while.
		r.writeErrors++
		lvl := slog.LevelDebug
		if r.writeErrors == 1 {
			lvl = slog.LevelWarn
		}
		r.log.Log(ctx, lvl, "write check status failed", "status", string(r.status), "err", err)
		return true
	}
}

// maybeDeregister removes the instance once the check has been critical
// for longer than deregister_after. It returns false when the check should
// stop.
func (r *runner) maybeDeregister(ctx context.Context) bool {
	after := r.ref.Check.DeregisterAfter.D()
	if after <= 0 || r.status != registry.Critical || r.written != registry.Critical {
		return true
	}
	now := r.s.now()
	if r.criticalSince.IsZero() {
		r.criticalSince = now // critical since before we knew
	}
	if now.Sub(r.criticalSince) <= after {
		return true
	}
	_, err := r.s.reg.DeregisterIfCritical(ctx, r.ref.Key, r.ref.Check.ID)
	switch {
	case err == nil:
		r.log.Info("instance deregistered: check critical past deregister_after",
			"critical_since", r.criticalSince, "deregister_after", after)
		r.s.metrics.deregistrations.Inc()
		return false
	case errors.Is(err, registry.ErrNotFound):
		r.log.Debug("deregister: instance already gone", "err", err)
		return false
	case errors.Is(err, registry.ErrConflict):
		// The registry's status is not critical after all: forget what
		// we believed, so the next run writes our status again.
		r.log.Debug("deregister: check no longer critical", "err", err)
		r.written, r.criticalSince = "", time.Time{}
		return true
	case ctx.Err() != nil:
		return false
	default:
		r.log.Warn("deregister failed", "err", err)
		return true
	}
}
