package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// watchedKeys is the number of distinct keys blocked queries wait on; it
// rises once a blocking query is parked in the agent.
const watchedKeys = "roster_registry_watched_keys"

// waitBlocked waits until the agent has more watched keys than before: a
// blocking query the test started is parked in the agent.
func waitBlocked(t *testing.T, a *testutil.Agent, before float64) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		n := testutil.Metric(t, a.URL, watchedKeys)
		return n > before, fmt.Sprintf("%s = %v, want > %v", watchedKeys, n, before)
	})
}

type blockResult struct {
	resp    *testutil.Response
	err     error
	elapsed time.Duration
}

// startBlocking sends GET url in the background.
func startBlocking(ctx context.Context, url string) <-chan blockResult {
	ch := make(chan blockResult, 1)
	go func() {
		start := time.Now()
		resp, err := testutil.Request(ctx, "GET", url, nil)
		ch <- blockResult{resp: resp, err: err, elapsed: time.Since(start)}
	}()
	return ch
}

// TestGracefulShutdown sends SIGTERM with a blocking query in flight: the
// query returns at once with its current answer, the agent exits 0, and a
// restart on the same data directory serves the same state.
func TestGracefulShutdown(t *testing.T) {
	ctx := bound(t)
	a := startAgent(t, testutil.AgentOptions{})
	register(t, a, "web", "web-1", map[string]any{"address": "10.0.0.1", "port": 80, "tags": []string{"a"}})
	register(t, a, "web", "web-2", map[string]any{"address": "10.0.0.2", "port": 80, "ttl": "1h"})
	register(t, a, "api", "api-1", map[string]any{"address": "api.internal", "port": 8080, "meta": map[string]string{"v": "2"}})
	before := fullState(t, a)
	beforeIndex := readyIndex(t, a)
	_, _, idx := listInstances(t, a, "web", "")

	base := testutil.Metric(t, a.URL, watchedKeys)
	res := startBlocking(ctx, fmt.Sprintf("%s/v1/services/web/instances?index=%d&wait=60s", a.URL, idx))
	waitBlocked(t, a, base)

	termAt := time.Now()
	stopErr := make(chan error, 1)
	go func() { stopErr <- a.Stop() }()

	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case r := <-res:
		if r.err != nil {
			t.Fatalf("blocking query during shutdown: %v", r.err)
		}
		if r.resp.Status != http.StatusOK {
			t.Errorf("blocking query during shutdown: %s, want 200", r.resp)
		}
		if got := r.resp.Header.Get("X-Roster-Index"); got != fmt.Sprint(idx) {
			t.Errorf("blocking query during shutdown: index %s, want %d (nothing changed)", got, idx)
		}
		if string(r.resp.Body) != before["web"] {
			t.Errorf("blocking query during shutdown answered\n%s\nwant\n%s", r.resp.Body, before["web"])
		}
		t.Logf("blocking query returned %v after SIGTERM", time.Since(termAt).Round(time.Millisecond))
	case <-timer.C:
		t.Fatal("blocking query still open 10s after SIGTERM")
	}
	select {
	case err := <-stopErr:
		if err != nil {
			t.Fatalf("agent exit after SIGTERM: %v, want exit status 0", err)
		}
	case <-timer.C:
		t.Fatal("agent still running 10s after SIGTERM")
	}
	t.Logf("agent exited %v after SIGTERM", time.Since(termAt).Round(time.Millisecond))

	a.Restart(t)
	if after := fullState(t, a); diffState(before, after) != "" {
		t.Errorf("state after graceful restart differs:\n%s", diffState(before, after))
	}
	if got := readyIndex(t, a); got != beforeIndex {
		t.Errorf("index after restart %d, want %d", got, beforeIndex)
	}
}
