package client

import (
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
type catalogWatch struct {
	r *Resolver

	sem chan struct{} // bounds first fetches

	mu      sync.Mutex
	members map[string]*catalogMember
}

type catalogMember struct {
	svc *service
	// Guarded by catalogWatch.mu. fetched is the service index the cached
	// set was fetched at, 0 until the first fetch; pending is true while
	// the first fetch is under way.
	fetched uint64
	pending bool
}

func newCatalogWatch(r *Resolver) *catalogWatch {
	return &catalogWatch{r: r, members: map[string]*catalogMember{}, sem: make(chan struct{}, fetchConcurrency)}
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
		// Retried until it succeeds: the list watch may not wake for a
		// long time.
		for attempt := 1; ; attempt++ {
			select {
			case w.sem <- struct{}{}:
			case <-r.ctx.Done():
				return
			}
			ok := w.fetchOne(m, false)
			<-w.sem
			if ok || !r.sleep(backoff(attempt, r.cfg.MinBackoff, r.cfg.MaxBackoff)) {
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
		failures int
	)
	for r.pace(last) {
		r.queries.Add(1)
		sums, got, err := r.c.Services(r.ctx, index, r.cfg.Wait)
		last = time.Now() // pace from the answer: see pace
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			failures++
			w.failAll(err)
			if !r.sleep(backoff(failures, r.cfg.MinBackoff, r.cfg.MaxBackoff)) {
				return
			}
			continue
		}
		failures = 0
		reset := got < index
		if reset {
			r.indexReset("*", index, got)
		}
		if w.refresh(sums, reset) {
			index = max(got, 1)
			if reset {
				index = 0
			}
		} else {
			index = 0 // a fetch failed: look again after the pause
		}
	}
}

// refresh fetches the members whose index moved (or every member after a
// reset); it reports whether every fetch succeeded.
func (w *catalogWatch) refresh(sums []ServiceSummary, reset bool) bool {
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
		case reset, m.fetched == 0:
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
			if !w.fetchOne(m, reset) {
				bad.Store(true)
			}
		})
	}
	wg.Wait()
	return !bad.Load()
}

func (w *catalogWatch) fetchOne(m *catalogMember, reset bool) bool {
	r := w.r
	r.queries.Add(1)
	ins, got, err := r.c.Instances(r.ctx, m.svc.name, QueryOptions{Status: Passing})
	if err != nil {
		if r.ctx.Err() == nil {
			r.failed(m.svc, err)
		}
		return false
	}
	r.fresh(m.svc)
	r.apply(m.svc, got, nonNilInstances(ins), reset)
	m.svc.markReady()
	w.mu.Lock()
	if reset || got > m.fetched {
		m.fetched = got
	}
	w.mu.Unlock()
	return true
}

func (w *catalogWatch) failAll(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.members {
		w.r.failed(m.svc, err)
	}
}
