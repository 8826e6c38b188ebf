package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// fleet names n instances spread over services: instance k is
// i<k> of service <prefix>-<k mod services>.
type fleet struct {
	n, services int
	prefix      string
}

func (f fleet) service(k int) string { return fmt.Sprintf("%s-%04d", f.prefix, k%f.services) }
func (f fleet) id(k int) string      { return fmt.Sprintf("i%06d", k) }

// each runs fn(k) for k in [0, n) from workers goroutines and returns how
// long it took and the first error; it stops early on ctx or after 1% of
// the calls failed.
func each(ctx context.Context, n, workers int, fn func(ctx context.Context, k int) error) (time.Duration, error) {
	start := time.Now()
	var next, failed atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && failed.Load()*100 <= int64(n) {
				k := int(next.Add(1) - 1)
				if k >= n {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := fn(cctx, k)
				cancel()
				if err != nil {
					failed.Add(1)
					once.Do(func() { first = err })
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return time.Since(start), fmt.Errorf("%d of %d failed, first: %w", f, n, first)
	}
	return time.Since(start), ctx.Err()
}

// registerFleet registers every instance of f with ttl, marking each in
// done (if not nil) once acknowledged.
func registerFleet(ctx context.Context, cl *rosterClient, f fleet, ttl string, workers int, done []atomic.Bool) (time.Duration, error) {
	return each(ctx, f.n, workers, func(ctx context.Context, k int) error {
		if err := cl.register(ctx, f.service(k), f.id(k), instanceJSON(k, ttl)); err != nil {
			return err
		}
		if done != nil {
			done[k].Store(true)
		}
		return nil
	})
}

// leaseFleet grants one lease of ttl per instance of f and puts its key
// with it, as each instance registering itself in etcd would.
func leaseFleet(ctx context.Context, conns []*etcdConn, f fleet, ttl time.Duration, workers int, ids []int64, done []atomic.Bool) (time.Duration, error) {
	return each(ctx, f.n, workers, func(ctx context.Context, k int) error {
		c := conns[k%len(conns)]
		id, err := c.LeaseGrant(ctx, int64(ttl/time.Second))
		if err != nil {
			return err
		}
		if _, err := c.Put(ctx, fmt.Appendf(nil, "/%s/%s/%s", f.prefix, f.service(k), f.id(k)), instanceJSON(k, ""), id); err != nil {
			return err
		}
		if ids != nil {
			ids[k] = id
		}
		if done != nil {
			done[k].Store(true)
		}
		return nil
	})
}
