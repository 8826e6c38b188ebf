package client

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// fetchConcurrency bounds the instance fetches of one catalog round.
const fetchConcurrency = 8

// catalogWatch follows any number of services with one blocking query on
// the service list: each round compares every followed service's last
// index with the one it was fetched at and fetches (non-blocking) only the
// services that moved. It is how one client follows thousands of services
// over a handful of connections.
//
// A fetch that fails is retried with backoff (MinBackoff to MaxBackoff):
// until it is due, the list query blocks no longer than the retry's time,
// and the other services' changes keep arriving as they happen.
type catalogWatch struct {
	r *Resolver
	// ctx ends when the resolver closes or the watch has no member left
	// (cancel, with Resolver.mu held).
	ctx    context.Context
	cancel context.CancelFunc

	sem chan struct{} // bounds first fetches

	mu      sync.Mutex
	members map[string]*catalogMember
}

type catalogMember struct {
	svc *service
	// Guarded by catalogWatch.mu. fetched is the service index the cached
	// set was fetched at, 0 until the first fetch; pending is true while
	// the first fetch is under way; failed is true when the last fetch
	// failed (it is retried when the watch's backoff is due).
	fetched uint64
	pending bool
	failed  bool
}

func newCatalogWatch(r *Resolver) *catalogWatch {
	ctx, cancel := context.WithCancel(r.ctx)
	return &catalogWatch{r: r, ctx: ctx, cancel: cancel, members: map[string]*catalogMember{}, sem: make(chan struct{}, fetchConcurrency)}
}

// remove stops following svc; it returns how many members are left.
func (w *catalogWatch) remove(svc *service) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m := w.members[svc.name]; m != nil && m.svc == svc {
		delete(w.members, svc.name)
	}
	return len(w.members)
}

// add follows svc and fetches it at once (a lookup is waiting), at most
// fetchConcurrency first fetches at a time.
func (w *catalogWatch) add(svc *service) {
	m := &catalogMember{svc: svc, pending: true}
	w.mu.Lock()
	w.members[svc.name] = m
	w.mu.Unlock()
	r := w.r
	r.wg.Go(func() {
		defer func() {
			w.mu.Lock()
			m.pending = false
			w.mu.Unlock()
		}()
		// Retried until it succeeds (the list watch may not wake for a
		// long time), the service is dropped, or the agent rejects it.
		for attempt := 1; ; attempt++ {
			select {
			case w.sem <- struct{}{}:
			case <-svc.ctx.Done():
				return
			}
			err := w.fetchOne(m, false)
			<-w.sem
			if err != nil && svc.snap.Load() == nil && rejected(err) {
				w.remove(svc)
				r.reject(svc, err)
				return
			}
			if err == nil || !sleep(svc.ctx, backoff(attempt, r.cfg.MinBackoff, r.cfg.MaxBackoff)) {
				return
			}
		}
	})
}

func (w *catalogWatch) run() {
	r := w.r
	var (
		index    uint64
		last     time.Time
		failures int       // of the list query
		retries  int       // rounds in a row with a failed fetch
		retryAt  time.Time // when failed fetches are due again; zero: none
	)
	for r.pace(w.ctx, last) {
		wait := r.cfg.Wait
		if !retryAt.IsZero() {
			// Wake for the retry at the latest.
			// (Rounded up: the agent counts the wait in milliseconds.)
			wait = min(wait, max(time.Until(retryAt)+time.Millisecond-1, time.Millisecond).Truncate(time.Millisecond))
		}
		r.queries.Add(1)
		sums, got, err := r.c.Services(w.ctx, index, wait)
		last = time.Now() // pace from the answer: see pace
		if err != nil {
			if w.ctx.Err() != nil {
				return
			}
			failures++
			w.failAll(err)
			if !sleep(w.ctx, backoff(failures, r.cfg.MinBackoff, r.cfg.MaxBackoff)) {
				return
			}
			continue
		}
		failures = 0
		reset := got < index
		if reset {
			r.indexReset("*", index, got)
		}
		due := !retryAt.IsZero() && !last.Before(retryAt)
		switch ok := w.refresh(sums, reset, due); {
		case !ok:
			retries++
			retryAt = time.Now().Add(backoff(retries, r.cfg.MinBackoff, r.cfg.MaxBackoff))
		case due || reset:
			retries, retryAt = 0, time.Time{}
		}
		index = max(got, 1)
		if reset {
			index = 0
		}
	}
}

// refresh fetches the members whose index moved (or every member after a
// reset), and those whose last fetch failed when retry is set; it reports
// whether every fetch succeeded.
func (w *catalogWatch) refresh(sums []ServiceSummary, reset, retry bool) bool {
	byName := make(map[string]uint64, len(sums))
	for _, s := range sums {
		byName[s.Name] = s.ModifyIndex
	}
	w.mu.Lock()
	var moved []*catalogMember
	for name, m := range w.members {
		idx, listed := byName[name]
		switch {
		case m.pending:
			// Its first fetch is under way.
		case reset:
			moved = append(moved, m)
		case m.failed:
			// Its last fetch failed: retried when the backoff is due.
			if retry {
				moved = append(moved, m)
			}
		case m.fetched == 0:
			moved = append(moved, m)
		case listed && idx != m.fetched:
			moved = append(moved, m)
		case !listed && len(m.svc.snap.Load().instances) > 0:
			// The service lost its last instance.
			moved = append(moved, m)
		default:
			w.r.fresh(m.svc)
		}
	}
	w.mu.Unlock()
	return w.fetch(moved, reset)
}

// fetch reads the members' instances, fetchConcurrency at a time; it
// reports whether every fetch succeeded.
func (w *catalogWatch) fetch(ms []*catalogMember, reset bool) bool {
	var (
		wg  sync.WaitGroup
		bad atomic.Bool
		sem = make(chan struct{}, fetchConcurrency)
	)
	for _, m := range ms {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if w.fetchOne(m, reset) != nil {
				bad.Store(true)
			}
		})
	}
	wg.Wait()
	return !bad.Load()
}

// fetchOne reads one member's instances (not blocking).
func (w *catalogWatch) fetchOne(m *catalogMember, reset bool) error {
	r := w.r
	r.queries.Add(1)
	ins, got, err := r.c.Instances(m.svc.ctx, m.svc.name, QueryOptions{Status: Passing})
	if err != nil {
		if m.svc.ctx.Err() != nil {
			return err // dropped, or the resolver closed
		}
		w.mu.Lock()
		m.failed = true
		w.mu.Unlock()
		if m.svc.snap.Load() != nil || !rejected(err) {
			r.failed(m.svc, err) // else the caller rejects it
		}
		return err
	}
	r.fresh(m.svc)
	r.apply(m.svc, got, nonNilInstances(ins), reset)
	m.svc.markReady()
	w.mu.Lock()
	m.failed = false
	if reset || got > m.fetched {
		m.fetched = got
	}
	w.mu.Unlock()
	return nil
}

func (w *catalogWatch) failAll(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.members {
		w.r.failed(m.svc, err)
	}
}
