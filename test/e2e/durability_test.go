package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// TestDurabilityKill9 writes as fast as 32 clients can, kills the agent
// with SIGKILL while writes are in flight, restarts it on the same data
// directory and checks that every acknowledged registration survived, and
// that the restarted agent never answered with an incomplete registry.
func TestDurabilityKill9(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "log only"},
		{name: "with snapshots", args: []string{"-snapshot-threshold", "500", "-snapshot-interval", "1s", "-trailing-logs", "200"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := bound(t)
			a := startAgent(t, testutil.AgentOptions{Args: tc.args})
			const (
				writers   = 32
				writeTime = 3 * time.Second
			)
			services := []string{"alpha", "bravo", "charlie", "delta"}
			type key struct{ svc, id string }
			base := a.URL

			writeCtx, stopWrites := context.WithCancel(ctx)
			defer stopWrites()
			var (
				wg                 sync.WaitGroup
				mu                 sync.Mutex
				acked              = map[key]bool{}
				attempted          = map[key]bool{}
				rejected, failures int
				rejectedSample     string
			)
			for g := range writers {
				wg.Go(func() {
					var ok, tried []key
					var rej, fail int
					var sample string
					for i := 0; writeCtx.Err() == nil; i++ {
						k := key{services[(g+i)%len(services)], fmt.Sprintf("w%02d-%07d", g, i)}
						body := map[string]any{
							"address": fmt.Sprintf("10.%d.%d.%d", g, (i>>8)&255, i&255),
							"port":    1 + i%65535,
							"tags":    []string{"durable"},
							"meta":    map[string]string{"writer": fmt.Sprint(g)},
						}
						tried = append(tried, k)
						resp, err := testutil.Request(writeCtx, "PUT", base+"/v1/services/"+k.svc+"/instances/"+k.id, body)
						switch {
						case err != nil:
							fail++
						case resp.Status == http.StatusCreated || resp.Status == http.StatusOK:
							ok = append(ok, k)
						default:
							rej++
							sample = resp.String()
						}
					}
					mu.Lock()
					defer mu.Unlock()
					for _, k := range ok {
						acked[k] = true
					}
					for _, k := range tried {
						attempted[k] = true
					}
					rejected += rej
					failures += fail
					if sample != "" {
						rejectedSample = sample
					}
				})
			}

			// Let the writers run, then kill the agent under them.
			timer := time.NewTimer(writeTime)
			select {
			case <-timer.C:
			case <-ctx.Done():
				t.Fatal("test context ended while writing")
			}
			a.Kill()
			killedAt := time.Now()
			stopWrites()
			wg.Wait()
			if rejected > 0 {
				t.Errorf("%d writes were rejected before the kill, e.g. %s", rejected, rejectedSample)
			}
			if len(acked) < 100 {
				t.Fatalf("only %d writes acknowledged in %v; the test proves little", len(acked), writeTime)
			}
			wantCount := map[string]int{}
			for k := range acked {
				wantCount[k.svc]++
			}
			t.Logf("acknowledged %d registrations in %v (%.0f/s) from %d writers; %d requests failed at the kill",
				len(acked), writeTime, float64(len(acked))/writeTime.Seconds(), writers, failures)

			// Restart and ask at once: until ready the agent must refuse,
			// and any answer it gives must hold every acknowledged write.
			a.RestartNoWait(t)
			restartedAt := time.Now()
			var refused, answered, incomplete int
			testutil.Eventually(t, 30*time.Second, func() (bool, string) {
				resp, err := testutil.Request(ctx, "GET", a.URL+"/v1/services", nil)
				if err != nil {
					return false, err.Error()
				}
				switch resp.Status {
				case http.StatusServiceUnavailable:
					refused++
					return false, "GET /v1/services: " + resp.String()
				case http.StatusOK:
				default:
					t.Fatalf("GET /v1/services while restoring: %s", resp)
				}
				answered++
				var ans servicesAnswer
				if err := json.Unmarshal(resp.Body, &ans); err != nil {
					t.Fatalf("GET /v1/services: %v", err)
				}
				got := map[string]int{}
				for _, s := range ans.Services {
					got[s.Name] = s.Instances
				}
				for svc, n := range wantCount {
					if got[svc] < n {
						incomplete++
						if incomplete == 1 {
							t.Errorf("GET /v1/services answered 200 (%v after the restart) with %s holding %d instances, but %d were acknowledged: %.600s",
								time.Since(restartedAt).Round(time.Millisecond), svc, got[svc], n, resp.Body)
						}
						break
					}
				}
				ready, err := testutil.Request(ctx, "GET", a.URL+"/readyz", nil)
				if err != nil {
					return false, err.Error()
				}
				return ready.Status == http.StatusOK, "GET /readyz: " + ready.String()
			})
			t.Logf("restarted agent ready %v after the kill; before ready it refused %d reads with 503 and answered %d (%d of them incomplete)",
				time.Since(killedAt).Round(time.Millisecond), refused, answered, incomplete)

			// Every acknowledged registration is there, and nothing that
			// was never attempted. Ready means restored: the first read
			// after /readyz answered 200 must already hold everything.
			check := func() (missing, phantom []string, stored int) {
				for _, svc := range services {
					ans, _, _ := listInstances(t, a, svc, "")
					have := map[string]bool{}
					for _, in := range ans.Instances {
						have[in.ID] = true
						if !attempted[key{svc, in.ID}] {
							phantom = append(phantom, svc+"/"+in.ID)
						}
					}
					stored += len(ans.Instances)
					for k := range acked {
						if k.svc == svc && !have[k.id] {
							missing = append(missing, k.svc+"/"+k.id)
						}
					}
				}
				sort.Strings(missing)
				return missing, phantom, stored
			}
			missing, phantom, stored := check()
			if len(missing) > 0 {
				t.Errorf("/readyz answered 200 but %d of %d acknowledged registrations are missing, e.g. %v",
					len(missing), len(acked), missing[:min(5, len(missing))])
			}
			if len(phantom) > 0 {
				t.Errorf("%d stored instances were never written, e.g. %v", len(phantom), phantom[:min(5, len(phantom))])
			}
			// Whatever readiness says, none may be lost for good.
			testutil.Eventually(t, 30*time.Second, func() (bool, string) {
				missing, _, stored = check()
				return len(missing) == 0, fmt.Sprintf("%d of %d acknowledged registrations lost after kill -9, e.g. %v",
					len(missing), len(acked), missing[:min(5, len(missing))])
			})
			t.Logf("stored after restart: %d instances (%d acknowledged, %d attempted)", stored, len(acked), len(attempted))

			// One acknowledged instance read by its own URL, in full.
			for k := range acked {
				status, in := getInstance(t, a, k.svc, k.id)
				if status != http.StatusOK || len(in.Tags) != 1 || in.Tags[0] != "durable" || in.Meta["writer"] == "" {
					t.Errorf("GET %s/%s after restart: %d %+v", k.svc, k.id, status, in)
				}
				break
			}
		})
	}
}
