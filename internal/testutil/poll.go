package testutil

import (
	"context"
	"testing"
	"time"
)

// PollInterval is how often Eventually checks its condition.
const PollInterval = 20 * time.Millisecond

// Eventually calls cond every PollInterval until it reports true, and
// fails the test with cond's last message if that does not happen within
// timeout or the test's context ends. cond runs on the test goroutine, so
// it may call t.Fatal. It is the way to wait for state: no fixed sleeps.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	if msg, ok := poll(t, timeout, cond); !ok {
		t.Fatalf("not true within %v: %s", timeout, msg)
	}
}

// poll runs cond until it holds, the timeout passes or the test's context
// ends; it returns cond's last message and whether it held.
func poll(t testing.TB, timeout time.Duration, cond func() (bool, string)) (string, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for {
		ok, msg := cond()
		if ok {
			return msg, true
		}
		select {
		case <-deadline.C:
			return msg, false
		case <-t.Context().Done():
			return msg + " (test context ended)", false
		case <-tick.C:
		}
	}
}

// Context returns the test's context bounded by d, cancelled at cleanup.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// WaitFor polls cond every 2ms until it holds, failing the test with what
// when ctx ends first. For in-process state, where Eventually's interval
// would slow the test down.
func WaitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
