package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// snapshotIndexes lists the log indexes of the snapshots on disk
// (DATA/snapshots/TERM-INDEX-MILLIS/state.bin).
func snapshotIndexes(t *testing.T, dataDir string) []uint64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir, "snapshots", "*", "state.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, f := range files {
		parts := strings.Split(filepath.Base(filepath.Dir(f)), "-")
		if len(parts) < 2 {
			continue
		}
		if n, err := strconv.ParseUint(parts[1], 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// TestSnapshotCompactionRestart writes enough to make the agent snapshot
// and compact its log, restarts it, and checks that every answer of the
// read API is byte for byte the same, indexes included.
func TestSnapshotCompactionRestart(t *testing.T) {
	tests := []struct {
		name string
		kill bool
	}{
		{name: "sigterm"},
		{name: "sigkill", kill: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := bound(t)
			a := startAgent(t, testutil.AgentOptions{Args: []string{"-snapshot-threshold", "100", "-snapshot-interval", "1s", "-trailing-logs", "50"}})
			const (
				total   = 2000
				workers = 16
			)
			services := []string{"web", "api", "db", "cache", "queue"}
			key := func(i int) (string, string) { return services[i%len(services)], fmt.Sprintf("i-%05d", i) }

			// Registrations, then every seventh deregistered, then every
			// eleventh re-registered with new fields (an update).
			run := func(n int, op func(i int) error) {
				t.Helper()
				work := make(chan int)
				errs := make(chan error, n)
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						for i := range work {
							if err := op(i); err != nil {
								errs <- err
							}
						}
					})
				}
				for i := range n {
					work <- i
				}
				close(work)
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatal(err)
				}
			}
			put := func(i int, port int) error {
				svc, id := key(i)
				body := map[string]any{"address": fmt.Sprintf("10.1.%d.%d", i/256, i%256), "port": port,
					"tags": []string{"t" + strconv.Itoa(i%3)}, "zone": "z" + strconv.Itoa(i%2), "weight": 1 + i%100}
				resp, err := testutil.Request(ctx, "PUT", instanceURL(a, svc, id), body)
				if err != nil {
					return err
				}
				if resp.Status != http.StatusCreated && resp.Status != http.StatusOK {
					return fmt.Errorf("PUT %s/%s: %s", svc, id, resp)
				}
				return nil
			}
			run(total, func(i int) error { return put(i, 8000) })
			run(total, func(i int) error {
				if i%7 != 0 {
					return nil
				}
				svc, id := key(i)
				resp, err := testutil.Request(ctx, "DELETE", instanceURL(a, svc, id), nil)
				if err != nil {
					return err
				}
				if resp.Status != http.StatusNoContent {
					return fmt.Errorf("DELETE %s/%s: %s", svc, id, resp)
				}
				return nil
			})
			run(total, func(i int) error {
				if i%11 != 0 || i%7 == 0 {
					return nil
				}
				return put(i, 9000)
			})

			// Wait for a snapshot that covers all but less than one
			// threshold of the writes: the agent takes one whenever 100
			// entries are new, so this always comes, and the restart then
			// depends on the snapshot for nearly all of the state.
			lastIndex := readyIndex(t, a)
			testutil.Eventually(t, 20*time.Second, func() (bool, string) {
				idx := snapshotIndexes(t, a.DataDir)
				for _, n := range idx {
					if n+100 >= lastIndex {
						return true, ""
					}
				}
				return false, fmt.Sprintf("snapshots/*/state.bin in %s at indexes %v, want one at %d or later", a.DataDir, idx, lastIndex-100)
			})
			t.Logf("snapshots at indexes %v; last write at index %d", snapshotIndexes(t, a.DataDir), lastIndex)

			before := fullState(t, a)
			if tc.kill {
				a.Kill()
			} else if err := a.Stop(); err != nil {
				t.Fatalf("stop: %v", err)
			}
			a.Restart(t)
			if d := diffState(before, fullState(t, a)); d != "" {
				t.Errorf("/readyz answered 200 but the state differs from before the restart:\n%s", d)
			}
			// Separate a state that is late (see above) from one that is wrong.
			testutil.Eventually(t, 20*time.Second, func() (bool, string) {
				d := diffState(before, fullState(t, a))
				return d == "", "state after restart differs:\n" + d
			})
			if got := readyIndex(t, a); got != lastIndex {
				t.Errorf("index after restart %d, want %d", got, lastIndex)
			}
			svcs, _ := listServices(t, a)
			n := 0
			for _, s := range svcs.Services {
				n += s.Instances
			}
			if want := total - (total+6)/7; n != want {
				t.Errorf("%d instances after restart, want %d", n, want)
			}
		})
	}
}
