// Package lease keeps the TTL leases of instances in memory and expires
// them. A heartbeat only moves a deadline in memory; the log sees a lease
// only when its TTL check changes status (passing→critical on expiry,
// critical→passing on the heartbeat that follows, through registry) and
// when deregister_after removes the instance.
//
// The Table runs on the agent that owns expiry (the leader). When it
// starts, every lease gets a fresh grace period of one TTL, so a restart
// or a change of leader never evicts an instance that kept heartbeating.
//
// Self-preservation: when more than a configured share of all leases lapse
// within one TTL (the registry, not the fleet, is more likely at fault:
// a partition, a stalled agent), the Table stops expiring and says so in
// its log and metrics until heartbeats return.
package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/registry"
)

// Registry is what the Table needs; *registry.Service satisfies it.
type Registry interface {
	EachCheck(typ registry.CheckType, fn func(registry.Key, *registry.Check) bool) uint64
	SetCheckStatus(ctx context.Context, key registry.Key, checkID string, status registry.Health, output string) (registry.ApplyResult, error)
	DeregisterIfCritical(ctx context.Context, key registry.Key, checkID string) (uint64, error)
}

// Config configures a Table.
type Config struct {
	Registry Registry
	Logger   *slog.Logger
	Metrics  prometheus.Registerer
	// Tick is how often leases are scanned for expiry (default 500ms).
	Tick time.Duration
	// ResyncInterval is how often the table is reconciled with the
	// registry's TTL checks, to adopt instances it did not see registered
	// (a restored snapshot) and drop ones it missed the removal of.
	ResyncInterval time.Duration
	// GuardFraction: when more than this share of leases lapse within one
	// TTL, expiry stops (self-preservation). 0 means the default 0.5; a
	// value of 1 or more disables the guard.
	GuardFraction float64
	// GuardMinLeases: the guard applies only with at least this many
	// leases (default 10), so a small fleet still expires its dead.
	GuardMinLeases int
	// Workers bounds concurrent writes of expiries (default 32).
	Workers int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Table holds the leases. Renew and Forget may be called from any
// goroutine; Run owns expiry.
type Table struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	epoch   time.Time // instants count from here
	metrics *metrics

	mu sync.Mutex
	// leases are kept by value in a slice, found through pos: a scan of
	// every lease then reads contiguous memory rather than chasing a
	// pointer per lease.
	leases []lease
	pos    map[registry.Key]int
	// guarding is true while self-preservation holds expiry back.
	guarding bool
	// gen counts resyncs.
	gen uint32
}

type lease struct {
	key      registry.Key
	checkID  string
	ttl      time.Duration
	deadline instant
	// deregAfter and criticalAt drive deregister_after once expired.
	deregAfter time.Duration
	criticalAt instant
	expired    bool
	// busy is set while a write for this lease is in flight.
	busy bool
	// gen is the last resync that found the lease's check.
	gen uint32
}

// instant is a point in time as the offset from the table's epoch: a
// lease is kept for every instance, so it stays small (a time.Time is
// three words), and offsets keep the monotonic clock's ordering.
type instant time.Duration

// never is the instant of a time that is not set.
const never = instant(math.MinInt64)

func (t *Table) at(tm time.Time) instant {
	if tm.IsZero() {
		return never
	}
	return instant(tm.Sub(t.epoch))
}

// New returns a Table.
func New(cfg Config) *Table {
	if cfg.Tick <= 0 {
		cfg.Tick = 500 * time.Millisecond
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 30 * time.Second
	}
	if cfg.GuardFraction == 0 {
		cfg.GuardFraction = 0.5
	}
	if cfg.GuardMinLeases == 0 {
		cfg.GuardMinLeases = 10
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	t := &Table{cfg: cfg, log: cfg.Logger, now: cfg.Now, pos: map[registry.Key]int{}}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.log = t.log.With("component", "lease")
	if t.now == nil {
		t.now = time.Now
	}
	t.epoch = t.now()
	t.metrics = newMetrics(cfg.Metrics, t.count)
	return t
}

var _ registry.Leases = (*Table)(nil)

// Renew implements registry.Leases.
func (t *Table) Renew(key registry.Key, c registry.Check) {
	deadline := t.at(t.now()) + instant(c.TTL.D())
	t.mu.Lock()
	l := t.get(key)
	l.checkID, l.ttl, l.deregAfter = c.ID, c.TTL.D(), c.DeregisterAfter.D()
	l.deadline = deadline
	l.expired = false
	t.mu.Unlock()
	t.metrics.renewals.Inc()
}

// Forget implements registry.Leases.
func (t *Table) Forget(key registry.Key) {
	t.mu.Lock()
	t.remove(key)
	t.mu.Unlock()
}

// get returns key's lease, adding an empty one; t.mu is held.
func (t *Table) get(key registry.Key) *lease {
	i, ok := t.pos[key]
	if !ok {
		i = len(t.leases)
		t.leases = append(t.leases, lease{key: key})
		t.pos[key] = i
	}
	return &t.leases[i]
}

// lookup returns key's lease or nil; t.mu is held.
func (t *Table) lookup(key registry.Key) *lease {
	if i, ok := t.pos[key]; ok {
		return &t.leases[i]
	}
	return nil
}

// remove drops key's lease, moving the last one into its place; t.mu is
// held.
func (t *Table) remove(key registry.Key) {
	i, ok := t.pos[key]
	if !ok {
		return
	}
	last := len(t.leases) - 1
	if i != last {
		t.leases[i] = t.leases[last]
		t.pos[t.leases[i].key] = i
	}
	t.leases[last] = lease{}
	t.leases = t.leases[:last]
	delete(t.pos, key)
}

func (t *Table) count() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return float64(len(t.leases))
}

// Guarding reports whether self-preservation is holding expiry back.
func (t *Table) Guarding() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.guarding
}

// Run expires leases until ctx ends. It starts by giving every TTL check
// in the registry a fresh lease of one TTL.
func (t *Table) Run(ctx context.Context) error {
	t.resync(true)
	tick := time.NewTicker(t.cfg.Tick)
	defer tick.Stop()
	resync := time.NewTicker(t.cfg.ResyncInterval)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-resync.C:
			t.resync(false)
		case <-tick.C:
			t.expire(ctx)
		}
	}
}

// resync makes the table match the registry's TTL checks. With fresh set
// (at start) every lease restarts at a full TTL.
func (t *Table) resync(fresh bool) {
	now := t.at(t.now())
	t.mu.Lock()
	defer t.mu.Unlock()
	// Leases the registry still lists are marked with this pass's
	// generation; the rest go. No copy of the checks and no set of keys:
	// this runs over every instance every ResyncInterval.
	t.gen++
	gen := t.gen
	t.cfg.Registry.EachCheck(registry.CheckTTL, func(k registry.Key, c *registry.Check) bool {
		l := t.lookup(k)
		if l != nil && !fresh {
			l.gen = gen
			return true
		}
		if l == nil {
			l = t.get(k)
		}
		l.gen = gen
		l.checkID, l.ttl, l.deregAfter = c.ID, c.TTL.D(), c.DeregisterAfter.D()
		l.deadline = now + instant(l.ttl)
		l.expired = c.Status == registry.Critical
		// An instance already critical keeps counting towards
		// deregister_after, but never from before this grace period.
		l.criticalAt = t.at(c.CriticalSince)
		if l.expired && (l.criticalAt == never || l.criticalAt+instant(l.deregAfter) < l.deadline) {
			l.criticalAt = l.deadline - instant(l.deregAfter)
		}
		return true
	})
	var gone []registry.Key
	for i := range t.leases {
		if t.leases[i].gen != gen {
			gone = append(gone, t.leases[i].key)
		}
	}
	for _, k := range gone {
		t.remove(k)
	}
}

type action struct {
	key        registry.Key
	checkID    string
	deregister bool
	lapsedFor  time.Duration
}

// expire finds leases past their deadline and writes their expiry, unless
// self-preservation holds; and removes instances critical past
// deregister_after. One pass over the leases: candidates are marked busy
// only once the guard has let them through.
func (t *Table) expire(ctx context.Context) {
	now := t.now()
	n := t.at(now)
	var todo []action
	t.mu.Lock()
	lapsed := 0
	for i := range t.leases {
		l := &t.leases[i]
		k := l.key
		if n <= l.deadline {
			continue
		}
		over := time.Duration(n - l.deadline)
		if !l.expired || over < l.ttl {
			lapsed++
		}
		if l.busy {
			continue
		}
		switch {
		case !l.expired:
			todo = append(todo, action{key: k, checkID: l.checkID, lapsedFor: over + l.ttl})
		case l.deregAfter > 0 && l.criticalAt != never && time.Duration(n-l.criticalAt) >= l.deregAfter:
			todo = append(todo, action{key: k, checkID: l.checkID, deregister: true})
		}
	}
	total := len(t.leases)
	guard := t.cfg.GuardFraction < 1 && total >= t.cfg.GuardMinLeases && float64(lapsed) > t.cfg.GuardFraction*float64(total)
	if guard != t.guarding {
		t.guarding = guard
		if guard {
			t.log.Error("self-preservation: too many leases lapsed at once, expiry stopped until heartbeats return",
				"lapsed", lapsed, "leases", total, "threshold", t.cfg.GuardFraction)
		} else {
			t.log.Warn("self-preservation ended, expiry resumed", "lapsed", lapsed, "leases", total)
		}
	}
	t.metrics.guarding.Set(b2f(guard))
	t.metrics.lapsed.Set(float64(lapsed))
	if guard {
		todo = nil
	}
	for _, a := range todo {
		t.lookup(a.key).busy = true
	}
	t.mu.Unlock()
	if len(todo) > 0 {
		t.run(ctx, todo, now)
	}
}

// run writes the actions with bounded concurrency; the log batches them.
func (t *Table) run(ctx context.Context, todo []action, now time.Time) {
	sem := make(chan struct{}, t.cfg.Workers)
	var wg sync.WaitGroup
	for _, a := range todo {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			t.do(ctx, a, now)
		}()
	}
	wg.Wait()
}

func (t *Table) do(ctx context.Context, a action, now time.Time) {
	var err error
	if a.deregister {
		_, err = t.cfg.Registry.DeregisterIfCritical(ctx, a.key, a.checkID)
	} else {
		out := fmt.Sprintf("TTL expired: no heartbeat for %s", a.lapsedFor.Round(time.Millisecond))
		_, err = t.cfg.Registry.SetCheckStatus(ctx, a.key, a.checkID, registry.Critical, out)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.lookup(a.key)
	if l == nil {
		return
	}
	l.busy = false
	switch {
	case err == nil && a.deregister:
		t.remove(a.key)
		t.metrics.deregistered.Inc()
		t.log.Info("instance deregistered after being critical", "service", a.key.Service, "id", a.key.ID)
	case err == nil:
		// A heartbeat may have renewed the lease while the write was in
		// flight; then the next heartbeat turns the check passing again.
		if n := t.at(now); l.deadline <= n {
			l.expired, l.criticalAt = true, n
		}
		t.metrics.expired.Inc()
		t.log.Info("lease expired", "service", a.key.Service, "id", a.key.ID)
	case errors.Is(err, registry.ErrNotFound):
		t.remove(a.key)
	case errors.Is(err, registry.ErrConflict):
		// Recovered meanwhile: nothing to do.
	default:
		t.log.Warn("lease write failed", "service", a.key.Service, "id", a.key.ID, "err", err)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
