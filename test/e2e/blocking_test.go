package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// awaitBlock waits up to d for a blocking query's result and fails the
// test if none comes.
func awaitBlock(t *testing.T, ch <-chan blockResult, d time.Duration, what string) blockResult {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		if r.resp.Status != http.StatusOK {
			t.Fatalf("%s: %s", what, r.resp)
		}
		return r
	case <-timer.C:
		t.Fatalf("%s: no answer within %v", what, d)
	}
	return blockResult{}
}

func answerIndex(t *testing.T, r blockResult) (uint64, instancesAnswer) {
	t.Helper()
	var ans instancesAnswer
	if err := json.Unmarshal(r.resp.Body, &ans); err != nil {
		t.Fatalf("decode %q: %v", r.resp.Body, err)
	}
	h, err := strconv.ParseUint(r.resp.Header.Get("X-Roster-Index"), 10, 64)
	if err != nil || h != ans.Index {
		t.Fatalf("X-Roster-Index %q, body index %d", r.resp.Header.Get("X-Roster-Index"), ans.Index)
	}
	return ans.Index, ans
}

// TestBlockingQueryWakesOnlyOwnService checks that a blocking query waits
// for a change to its own service only, and how it waits on a service
// that does not exist.
func TestBlockingQueryWakesOnlyOwnService(t *testing.T) {
	ctx := bound(t)
	a := startAgent(t, testutil.AgentOptions{})
	register(t, a, "svc-a", "a-1", map[string]any{"address": "10.0.0.1", "port": 80})
	register(t, a, "svc-b", "b-1", map[string]any{"address": "10.0.0.2", "port": 80})

	t.Run("other service does not wake it", func(t *testing.T) {
		_, _, idx := listInstances(t, a, "svc-a", "")
		base := testutil.Metric(t, a.URL, watchedKeys)
		res := startBlocking(ctx, fmt.Sprintf("%s/v1/services/svc-a/instances?index=%d&wait=30s", a.URL, idx))
		waitBlocked(t, a, base)

		register(t, a, "svc-b", "b-2", map[string]any{"address": "10.0.0.3", "port": 80})
		deregister(t, a, "svc-b", "b-1")
		// The one place a bounded wait is the assertion: nothing may come.
		quiet := time.NewTimer(300 * time.Millisecond)
		select {
		case r := <-res:
			quiet.Stop()
			t.Fatalf("blocking query on svc-a returned after writes to svc-b only: %v %v", r.resp, r.err)
		case <-quiet.C:
		}

		start := time.Now()
		register(t, a, "svc-a", "a-2", map[string]any{"address": "10.0.0.4", "port": 80})
		r := awaitBlock(t, res, time.Second, "blocking query on svc-a after a write to svc-a")
		got, ans := answerIndex(t, r)
		if got <= idx {
			t.Errorf("woke with index %d, want > %d", got, idx)
		}
		if len(ans.Instances) != 2 {
			t.Errorf("woke with %d instances, want 2", len(ans.Instances))
		}
		t.Logf("woke %v after the write", time.Since(start).Round(time.Millisecond))
	})

	t.Run("filtered query wakes on a change to its service", func(t *testing.T) {
		// The index is the service's: a change outside the filter still
		// answers (with the same filtered set at a new index).
		_, _, idx := listInstances(t, a, "svc-a", "tag=blue")
		res := startBlocking(ctx, fmt.Sprintf("%s/v1/services/svc-a/instances?tag=blue&index=%d&wait=30s", a.URL, idx))
		register(t, a, "svc-a", "a-3", map[string]any{"address": "10.0.0.5", "port": 80, "tags": []string{"blue"}})
		got, ans := answerIndex(t, awaitBlock(t, res, 5*time.Second, "filtered blocking query"))
		if got <= idx || len(ans.Instances) != 1 || ans.Instances[0].ID != "a-3" {
			t.Errorf("filtered query answered index %d with %+v", got, ans.Instances)
		}
	})

	t.Run("missing service waits out the wait", func(t *testing.T) {
		_, _, idx := listInstances(t, a, "ghost", "")
		if idx < 1 {
			t.Fatalf("index of a missing service %d, want >= 1", idx)
		}
		res := startBlocking(ctx, fmt.Sprintf("%s/v1/services/ghost/instances?index=%d&wait=1s", a.URL, idx))
		r := awaitBlock(t, res, 10*time.Second, "blocking query on a missing service")
		got, ans := answerIndex(t, r)
		// wait=1s plus up to 1/16 jitter.
		if r.elapsed < 900*time.Millisecond || r.elapsed > 5*time.Second {
			t.Errorf("blocking query on a missing service returned after %v, want about 1s", r.elapsed)
		}
		if got < 1 || len(ans.Instances) != 0 {
			t.Errorf("answered index %d with %d instances, want >= 1 and none", got, len(ans.Instances))
		}
	})

	t.Run("missing service wakes when created", func(t *testing.T) {
		_, _, idx := listInstances(t, a, "phoenix", "")
		base := testutil.Metric(t, a.URL, watchedKeys)
		res := startBlocking(ctx, fmt.Sprintf("%s/v1/services/phoenix/instances?index=%d&wait=30s", a.URL, idx))
		waitBlocked(t, a, base)
		register(t, a, "phoenix", "p-1", map[string]any{"address": "10.0.0.6", "port": 80})
		got, ans := answerIndex(t, awaitBlock(t, res, 2*time.Second, "blocking query on a service being created"))
		if got <= idx || len(ans.Instances) != 1 {
			t.Errorf("answered index %d with %d instances, want > %d and 1", got, len(ans.Instances), idx)
		}
	})

	t.Run("services list blocks too", func(t *testing.T) {
		status, h, _ := testutil.Do(t, "GET", a.URL+"/v1/services", nil)
		if status != http.StatusOK {
			t.Fatalf("GET /v1/services: %d", status)
		}
		idx := testutil.Index(t, h)
		res := startBlocking(ctx, fmt.Sprintf("%s/v1/services?index=%d&wait=30s", a.URL, idx))
		register(t, a, "newcomer", "n-1", map[string]any{"address": "10.0.0.7", "port": 80})
		r := awaitBlock(t, res, 5*time.Second, "blocking services query")
		var ans servicesAnswer
		if err := json.Unmarshal(r.resp.Body, &ans); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range ans.Services {
			found = found || s.Name == "newcomer"
		}
		if ans.Index <= idx || !found {
			t.Errorf("services query woke at %d (was %d) with %s", ans.Index, idx, r.resp.Body)
		}
	})

	// On an agent that never took a write the registry's index is 0 but
	// every answer says 1: a client that sends back the index it was given
	// must still block, not get the same answer at once and spin.
	t.Run("fresh agent", func(t *testing.T) {
		f := startAgent(t, testutil.AgentOptions{Dev: true})
		_, _, idx := listInstances(t, f, "ghost", "")
		res := startBlocking(ctx, fmt.Sprintf("%s/v1/services/ghost/instances?index=%d&wait=1s", f.URL, idx))
		r := awaitBlock(t, res, 10*time.Second, "blocking query on a fresh agent")
		if r.elapsed < 900*time.Millisecond {
			got, _ := answerIndex(t, r)
			t.Errorf("blocking query with the index the agent gave (%d) returned after %v with index %d: "+
				"a client that loops on it spins", idx, r.elapsed.Round(time.Millisecond), got)
		}
	})
}
