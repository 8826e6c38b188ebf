package main

import (
	"context"
	"time"
)

// schedule spreads periodic work evenly: it calls emit(slot) for slots
// 0, 1, …, slots-1, 0, … spaced interval/slots apart, so each slot comes
// round once per interval. A late emit never makes it skip a slot; it
// catches up. It returns when ctx ends or at until.
func schedule(ctx context.Context, slots int, interval time.Duration, until time.Time, emit func(slot int)) {
	period := max(interval/time.Duration(slots), time.Microsecond)
	tick := time.NewTicker(min(period, 10*time.Millisecond))
	defer tick.Stop()
	start := time.Now()
	next := 0
	for {
		now := time.Now()
		if ctx.Err() != nil || !now.Before(until) {
			return
		}
		for due := int(now.Sub(start)/period) + 1; next < due && ctx.Err() == nil; next++ {
			emit(next % slots)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
