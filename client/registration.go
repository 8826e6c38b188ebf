package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Registration is an instance registered through Register. While it is
// open the client keeps its TTL lease alive: it renews the lease at a
// third of the TTL (batching the renewals of every registration of the
// client into one request), retries a failed renewal with backoff and
// jitter, and registers the instance again at once when the registry
// answers that it does not know it (a restarted or restored agent, an
// expired lease) instead of renewing a lease that is gone.
type Registration struct {
	c  *Client
	in Instance // as given, ID filled in; never changed
	// interval between renewals; 0 for an instance without a TTL.
	interval time.Duration

	// Guarded by the heartbeater's mu.
	next     time.Time
	failures int
	closed   bool

	removed      atomic.Bool // Deregister succeeded
	reregistered atomic.Uint64
	renewed      atomic.Uint64
	lastErr      atomic.Pointer[error]
}

// Instance returns the instance as registered (with its ID). It is a
// copy: changing it does not change what re-registrations send.
func (r *Registration) Instance() Instance {
	in := r.in
	in.Tags = slices.Clone(in.Tags)
	in.Meta = maps.Clone(in.Meta)
	in.Checks = slices.Clone(in.Checks)
	return in
}

// Key returns the instance's key.
func (r *Registration) Key() Key { return Key{Service: r.in.Service, ID: r.in.ID} }

// RegistrationStats counts what the lease keeper did.
type RegistrationStats struct {
	// Renewed counts successful lease renewals; Reregistered counts
	// registrations made again after the registry lost the instance.
	Renewed      uint64
	Reregistered uint64
	// LastError is the last renewal or re-registration error (nil after a
	// success).
	LastError error
}

// Stats returns the registration's counters.
func (r *Registration) Stats() RegistrationStats {
	s := RegistrationStats{Renewed: r.renewed.Load(), Reregistered: r.reregistered.Load()}
	if p := r.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

func (r *Registration) setErr(err error) {
	if err == nil {
		r.lastErr.Store(nil)
		return
	}
	r.lastErr.Store(&err)
}

// Register registers in with the agent and keeps its lease alive until
// Deregister or Close. An instance without an ID gets a random one, kept
// for its re-registrations. An instance without a TTL (in.TTL or a check
// of type ttl) is registered once and only deregistered later.
//
// Register returns the error of the first registration; it does not
// retry it.
func (c *Client) Register(ctx context.Context, in Instance) (*Registration, error) {
	if in.Service == "" {
		return nil, errors.New("client: register: service is required")
	}
	if in.ID == "" {
		in.ID = in.Service + "-" + randomID()
	}
	in.Tags = append([]string(nil), in.Tags...)
	if in.Meta != nil {
		meta := make(map[string]string, len(in.Meta))
		for k, v := range in.Meta {
			meta[k] = v
		}
		in.Meta = meta
	}
	in.Checks = append([]Check(nil), in.Checks...)
	in.Health, in.CreateIndex, in.ModifyIndex = "", 0, 0
	r := &Registration{c: c, in: in}
	var hb *heartbeater
	if ttl := in.lease(); ttl > 0 {
		r.interval = max(ttl/3, 50*time.Millisecond)
		// Before the registration: a closed client must not leave behind
		// an instance that nothing renews or deregisters.
		var err error
		if hb, err = c.heartbeater(); err != nil {
			return nil, fmt.Errorf("register %s/%s: %w", in.Service, in.ID, err)
		}
	}
	if _, err := c.Put(ctx, &in); err != nil {
		return nil, fmt.Errorf("register %s/%s: %w", in.Service, in.ID, err)
	}
	if hb != nil {
		hb.add(r)
	}
	return r, nil
}

// Deregister stops renewing the lease and removes the instance from the
// registry. An instance the registry no longer knows counts as removed.
// It waits for a renewal round in flight (which may be registering the
// instance again) no longer than ctx allows. Once it has succeeded,
// calling it again does nothing; after an error, calling it again tries
// the removal again (the lease is no longer renewed either way).
func (r *Registration) Deregister(ctx context.Context) error {
	if r.removed.Load() {
		return nil
	}
	if r.interval > 0 {
		hb, _ := r.c.heartbeater()
		if hb != nil {
			if err := hb.remove(ctx, r); err != nil {
				return fmt.Errorf("deregister %s/%s: wait for the lease keeper: %w", r.in.Service, r.in.ID, err)
			}
		}
	}
	err := r.c.Remove(ctx, r.in.Service, r.in.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("deregister %s/%s: %w", r.in.Service, r.in.ID, err)
	}
	r.removed.Store(true)
	return nil
}

// Close deregisters within 5 seconds.
func (r *Registration) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.Deregister(ctx)
}

func randomID() string {
	var b [8]byte
	_, _ = cryptoRead(b[:])
	return hex.EncodeToString(b[:])
}

var cryptoRead = crand.Read

// heartbeater renews the leases of every registration of one client from
// one goroutine, in one batch request per round when several are due.
type heartbeater struct {
	c    *Client
	wake chan struct{}
	done chan struct{}
	quit chan struct{}

	stopOnce sync.Once

	mu   sync.Mutex
	regs map[*Registration]struct{}

	// round holds a token for a whole round, so that Deregister can wait
	// (within its context) for a re-registration in flight before it
	// deletes the instance.
	round chan struct{}
}

func (c *Client) heartbeater() (*heartbeater, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.close {
		return c.hb, ErrClosed
	}
	if c.hb == nil {
		c.hb = &heartbeater{c: c, wake: make(chan struct{}, 1), done: make(chan struct{}), quit: make(chan struct{}),
			regs: map[*Registration]struct{}{}, round: make(chan struct{}, 1)}
		go c.hb.run()
	}
	return c.hb, nil
}

func (h *heartbeater) add(r *Registration) {
	h.mu.Lock()
	r.next = time.Now().Add(jittered(r.interval))
	h.regs[r] = struct{}{}
	h.mu.Unlock()
	h.poke()
}

// remove stops renewing r and waits for a round in flight, which may be
// registering r again; it fails when ctx ends first.
func (h *heartbeater) remove(ctx context.Context, r *Registration) error {
	h.mu.Lock()
	r.closed = true
	delete(h.regs, r)
	h.mu.Unlock()
	select {
	case h.round <- struct{}{}:
		<-h.round
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *heartbeater) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *heartbeater) stop() {
	h.stopOnce.Do(func() { close(h.quit) })
	<-h.done
}

// jittered spreads d by ±10% so that a fleet's renewals do not align.
func jittered(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// backoff is the delay before retry n (1-based): exponential from lo,
// capped at hi, with full jitter over its upper half.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func (h *heartbeater) run() {
	defer close(h.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		h.mu.Lock()
		var next time.Time
		for r := range h.regs {
			if next.IsZero() || r.next.Before(next) {
				next = r.next
			}
		}
		h.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-h.quit:
			return
		case <-h.wake:
			timer.Stop()
			continue
		case <-timer.C:
		}
		h.renewDue()
	}
}

// renewDue renews every registration due now or within a quarter of its
// interval (so that renewals coalesce into one request).
func (h *heartbeater) renewDue() {
	h.round <- struct{}{}
	defer func() { <-h.round }()
	now := time.Now()
	var due []*Registration
	var timeout time.Duration
	h.mu.Lock()
	for r := range h.regs {
		if r.next.Before(now.Add(r.interval / 4)) {
			due = append(due, r)
			if timeout == 0 || r.interval < timeout {
				timeout = r.interval
			}
		}
	}
	h.mu.Unlock()
	if len(due) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(timeout, time.Second))
	defer cancel()
	// Done before each request: Close stops a round between requests.
	go func() {
		select {
		case <-h.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	if len(due) == 1 {
		r := due[0]
		err := h.c.Heartbeat(ctx, r.in.Service, r.in.ID)
		switch {
		case err == nil:
			h.renewed(r)
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict):
			h.reregister(ctx, r, err)
		default:
			h.failed(r, err)
		}
		return
	}
	for start := 0; start < len(due); start += MaxBatchHeartbeats {
		batch := due[start:min(start+MaxBatchHeartbeats, len(due))]
		h.renewBatch(ctx, batch)
	}
}

func (h *heartbeater) renewBatch(ctx context.Context, batch []*Registration) {
	keys := make([]Key, len(batch))
	for i, r := range batch {
		keys[i] = r.Key()
	}
	res, err := h.c.Heartbeats(ctx, keys)
	if err != nil {
		for _, r := range batch {
			h.failed(r, err)
		}
		return
	}
	lost := map[Key]bool{}
	for _, k := range res.NotFound {
		lost[k] = true
	}
	for _, k := range res.NoTTL {
		lost[k] = true
	}
	for _, r := range batch {
		if lost[r.Key()] {
			h.reregister(ctx, r, ErrNotFound)
		} else {
			h.renewed(r)
		}
	}
}

func (h *heartbeater) renewed(r *Registration) {
	r.renewed.Add(1)
	r.setErr(nil)
	h.schedule(r, 0)
}

func (h *heartbeater) failed(r *Registration, err error) {
	r.setErr(err)
	h.mu.Lock()
	r.failures++
	n := r.failures
	h.mu.Unlock()
	h.c.log.Warn("lease renewal failed; retrying", "service", r.in.Service, "id", r.in.ID, "attempt", n, "err", err)
	h.schedule(r, backoff(n, 100*time.Millisecond, r.interval))
}

// reregister registers r again at once: the registry lost it.
func (h *heartbeater) reregister(ctx context.Context, r *Registration, cause error) {
	h.mu.Lock()
	closed := r.closed
	h.mu.Unlock()
	if closed {
		return
	}
	h.c.log.Warn("registry lost the instance; registering it again", "service", r.in.Service, "id", r.in.ID, "cause", cause)
	in := r.in
	if _, err := h.c.Put(ctx, &in); err != nil {
		h.failed(r, fmt.Errorf("register again: %w", err))
		return
	}
	r.reregistered.Add(1)
	r.setErr(nil)
	h.schedule(r, 0)
}

// schedule sets r's next renewal after delay, or after its interval when
// delay is 0 (a success, which also resets the failure count).
func (h *heartbeater) schedule(r *Registration, delay time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if delay == 0 {
		r.failures = 0
		delay = jittered(r.interval)
	}
	r.next = time.Now().Add(delay)
}
