package main

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is the outcome of a closed-loop run.
type loadResult struct {
	ops      int64 // operations completed in the measured window
	errors   int64
	firstErr error
	window   time.Duration
	lat      latencies
}

func (r loadResult) rate() float64 {
	if r.window <= 0 {
		return 0
	}
	return float64(r.ops) / r.window.Seconds()
}

// closedLoop runs op from workers goroutines, each issuing its next
// operation as soon as the last one returned, for warmup (not recorded)
// and then dur (recorded). It is bounded by maxOps operations in all.
func closedLoop(ctx context.Context, workers int, warmup, dur time.Duration, maxOps int64, op func(ctx context.Context, worker int, seq int64) error) loadResult {
	start := time.Now()
	from, end := start.Add(warmup), start.Add(warmup+dur)
	var total atomic.Int64
	var mu sync.Mutex
	res := loadResult{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make(latencies, 0, 1<<16)
			var ops, errs int64
			var first error
			for seq := int64(0); ; seq++ {
				t0 := time.Now()
				if !t0.Before(end) || ctx.Err() != nil || total.Add(1) > maxOps {
					break
				}
				err := op(ctx, w, seq)
				d := time.Since(t0)
				if t0.Before(from) {
					continue
				}
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				ops++
				lat = append(lat, d)
			}
			mu.Lock()
			res.ops += ops
			res.errors += errs
			if res.firstErr == nil {
				res.firstErr = first
			}
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.window = time.Since(from)
	return res
}

// latencies is a set of samples; percentile sorts it on first use.
type latencies []time.Duration

func (l latencies) sorted() latencies {
	s := slices.Clone(l)
	slices.Sort(s)
	return s
}

// percentile returns the p-th percentile (0–100) of sorted samples, by
// nearest rank; 0 when there are none.
func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(l)))) - 1
	i = max(0, min(i, len(l)-1))
	return l[i]
}

func (l latencies) max() time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[len(l)-1]
}
