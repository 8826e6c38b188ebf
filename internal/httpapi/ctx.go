package httpapi

import "context"

// contextWithTicker returns a context cancelled at the next tick (or when
// parent ends), to bound one wait of a long-lived stream.
func contextWithTicker[T any](parent context.Context, tick <-chan T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-tick:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
