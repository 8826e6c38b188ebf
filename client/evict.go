package client

import (
	"errors"
	"net/http"
	"time"
)

// The cache forgets what nobody asks for: a service not used for
// IdleTimeout is dropped (its watch stops, its set leaves the cache), and a
// name the agent rejects is remembered for RejectedTTL, then dropped, never
// retried in the background. Without this, every name ever looked up (with
// a wildcard host pattern, every distinct host a caller sent) would keep a
// watch for the resolver's lifetime.

// sweepIdle drops idle services until the resolver closes. It looks every
// IdleTimeout/4: a service goes between IdleTimeout and 1.5×IdleTimeout
// after its last use.
func (r *Resolver) sweepIdle() {
	tick := time.NewTicker(max(r.cfg.IdleTimeout/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case now := <-tick.C:
			for _, svc := range r.idle(now) {
				r.drop(svc, true)
			}
		}
	}
}

// idle notes the services used since the last sweep and returns those not
// used for IdleTimeout and not held by a Target.
func (r *Resolver) idle(now time.Time) []*service {
	var out []*service
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, svc := range r.services {
		if svc.used.Load() {
			svc.used.Store(false)
			svc.lastUse = now
			continue
		}
		if svc.held.Load() > 0 {
			continue
		}
		if now.Sub(svc.lastUse) >= r.cfg.IdleTimeout {
			out = append(out, svc)
		}
	}
	return out
}

// drop removes svc from the cache and stops following it, unless it is
// held by a Target or, when idleOnly, was used since the sweep chose it.
func (r *Resolver) drop(svc *service, idleOnly bool) {
	if r.remove(svc, idleOnly) {
		r.dropped.Add(1)
		r.log.Debug("service dropped from the cache", "service", svc.name, "idle", idleOnly)
		if r.hooks.Dropped != nil {
			r.hooks.Dropped(svc.name)
		}
	}
}

// remove is drop's part under the resolver's lock; it reports whether
// svc was removed.
func (r *Resolver) remove(svc *service, idleOnly bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.services[svc.name] != svc || (idleOnly && svc.used.Load()) {
		return false
	}
	// Under svc.mu, so that Target (which adds itself under it) either
	// sees the service dropped or holds it.
	svc.mu.Lock()
	held := svc.held.Load() > 0
	if !held {
		svc.dropped.Store(true)
	}
	svc.mu.Unlock()
	if held {
		return false
	}
	delete(r.services, svc.name)
	if t := r.defaults[svc.name]; t != nil && t.svc == svc {
		delete(r.defaults, svc.name)
	}
	svc.cancel()
	switch {
	case svc.direct:
		r.direct--
	case r.catalog != nil && r.catalog.remove(svc) == 0:
		// Nothing left to follow through the service list.
		r.catalog.cancel()
		r.catalog = nil
	}
	return true
}

// reject records the agent's refusal of a service that has no set yet:
// lookups fail with err at once for RejectedTTL, then the service is
// dropped. It returns when that is done or the service's context ends.
func (r *Resolver) reject(svc *service, err error) {
	r.failed(svc, err) // keeps err for lookups and wakes those waiting
	if sleep(svc.ctx, r.cfg.RejectedTTL) {
		r.drop(svc, false)
	}
}

// rejected reports whether err is the agent refusing the request itself (a
// 4xx other than 408 Request Timeout and 429 Too Many Requests), which
// asking again will not change.
func rejected(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 &&
		ae.Status != http.StatusRequestTimeout && ae.Status != http.StatusTooManyRequests
}
