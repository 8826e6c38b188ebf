package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/rosterhq/roster/internal/testutil"
)

// upgradeFixtureFrom names a roster binary of an older commit. With it,
// TestUpgrade first writes the missing fixtures of testdata/upgrade with
// that binary (writeUpgradeFixture), then runs as usual. Fixtures are
// never rewritten: each one is the data directory a released format left.
var upgradeFixtureFrom = flag.String("upgrade-fixture-from", "", "roster binary that writes missing testdata/upgrade fixtures")

// upgradeFixtures are data directories written by the commit before the
// store owned its own entry and snapshot types (c7f5cb9), made with
//
//	git checkout c7f5cb9 && go build -o /tmp/roster-before ./cmd/roster
//	go test ./test/e2e -run TestUpgrade -upgrade-fixture-from /tmp/roster-before
//
// The log's segment files are preallocated (64 MiB of mostly zeros): a
// fixture keeps them without their trailing zeros, and the test pads them
// back to their size, so the agent reads the very bytes the old one left.
//
// "stopped" was shut down with SIGTERM, "killed" with SIGKILL. Each holds
// a raft snapshot and log entries after it; want.json is every byte the
// old agent answered about its registry just before it stopped.
var upgradeFixtures = []struct {
	name string
	kill bool
}{
	{"c7f5cb9-stopped", false},
	{"c7f5cb9-killed", true},
}

// TestUpgrade: a data directory written by an older agent opens in this
// one with every instance intact, byte for byte as the old one served it.
func TestUpgrade(t *testing.T) {
	for _, fx := range upgradeFixtures {
		t.Run(fx.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "upgrade", fx.name)
			if *upgradeFixtureFrom != "" {
				if _, err := os.Stat(dir); os.IsNotExist(err) {
					writeUpgradeFixture(t, *upgradeFixtureFrom, dir, fx.kill)
				}
			}
			var want map[string]string
			b, err := os.ReadFile(filepath.Join(dir, "want.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			data := t.TempDir()
			if err := os.CopyFS(data, os.DirFS(filepath.Join(dir, "data"))); err != nil {
				t.Fatal(err)
			}
			padSegments(t, data)
			bound(t)
			a := startAgent(t, testutil.AgentOptions{DataDir: data})
			if diff := diffState(want, fullState(t, a)); diff != "" {
				t.Errorf("the upgraded agent answers differently:\n%s", diff)
			}
			// Each instance on its own too, as the old agent listed it.
			for svc, body := range want {
				if svc == "/v1/services" {
					continue
				}
				var ans instancesAnswer
				if err := json.Unmarshal([]byte(body), &ans); err != nil {
					t.Fatal(err)
				}
				for _, in := range ans.Instances {
					if status, got := getInstance(t, a, svc, in.ID); status != http.StatusOK || got.ModifyIndex != in.ModifyIndex {
						t.Errorf("GET %s/%s = %d, modify index %d; want 200, %d", svc, in.ID, status, got.ModifyIndex, in.ModifyIndex)
					}
				}
			}
			if err := a.Stop(); err != nil {
				t.Errorf("stop: %v", err)
			}
		})
	}
}

// writeUpgradeFixture runs bin on a new data directory, writes instances
// of every shape, some before and some after a snapshot, and saves the
// data directory and the agent's answers under dir.
func writeUpgradeFixture(t *testing.T, bin, dir string, kill bool) {
	t.Helper()
	bound(t)
	data := t.TempDir()
	a := testutil.StartAgent(t, bin, testutil.AgentOptions{DataDir: data,
		Args: []string{"-snapshot-threshold", "8", "-snapshot-interval", "1s", "-trailing-logs", "4"}})
	// Active checks probe 127.0.0.1:1, where nothing listens: they are
	// critical from the start and stay so, so no restart changes them.
	register(t, a, "web", "min", map[string]any{"address": "10.0.0.1", "port": 80})
	register(t, a, "web", "full", map[string]any{
		"address": "2001:db8::1", "port": 8443,
		"tags": []string{"v1", "x y"}, "meta": map[string]string{"env": "prod", "empty": ""},
		"weight": 9, "priority": 3, "zone": "eu-1", "region": "eu", "canary": true,
		"revision": "abc123", "repo": "github.com/x/web",
		"ttl": "1h", "deregister_after": "24h",
		"checks": []map[string]any{
			{"id": "probe", "type": "tcp", "target": "127.0.0.1:1", "interval": "1h", "timeout": "1s",
				"failures_before_critical": 1},
			{"id": "h", "name": "health page", "type": "http", "target": "http://127.0.0.1:1/health",
				"interval": "30m", "timeout": "2s", "successes_before_passing": 2},
		},
	})
	register(t, a, "db", "primary", map[string]any{"address": "db.internal", "port": 5432, "tags": []string{"primary"},
		"checks": []map[string]any{{"id": "g", "type": "grpc", "target": "127.0.0.1:1/db", "interval": "1h"}}})
	register(t, a, "gone", "g", map[string]any{"address": "10.0.0.9", "port": 1, "ttl": "1h"})
	testutil.DoJSON(t, "PUT", instanceURL(a, "web", "full")+"/heartbeat", nil, http.StatusNoContent, nil)
	testutil.DoJSON(t, "PUT", a.URL+"/v1/agent/service/maintenance/min?enable=true&reason=new+disk", nil, http.StatusOK, nil)
	deregister(t, a, "gone", "g")
	register(t, a, "web", "min", map[string]any{"address": "10.0.0.1", "port": 80, "tags": []string{"re-registered"}})
	testutil.Eventually(t, testTimeout, func() (bool, string) {
		snaps, _ := filepath.Glob(filepath.Join(data, "snapshots", "*", "state.bin"))
		return len(snaps) > 0, "a snapshot in " + data
	})
	// After the snapshot: entries only the log holds.
	register(t, a, "db", "replica", map[string]any{"address": "10.0.0.6", "port": 5432, "weight": 2, "zone": "eu-2", "ttl": "1h"})
	testutil.DoJSON(t, "PUT", instanceURL(a, "db", "replica")+"/heartbeat", nil, http.StatusNoContent, nil)
	register(t, a, "cache", "c1", map[string]any{"address": "10.0.0.7", "port": 6379, "meta": map[string]string{"role": "lru"}})
	deregister(t, a, "cache", "c1")
	register(t, a, "cache", "c2", map[string]any{"address": "10.0.0.8", "port": 6379})

	want, err := json.MarshalIndent(fullState(t, a), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if kill {
		a.Kill()
	} else if err := a.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := os.CopyFS(filepath.Join(dir, "data"), os.DirFS(data)); err != nil {
		t.Fatal(err)
	}
	trimSegments(t, filepath.Join(dir, "data"))
	if err := os.WriteFile(filepath.Join(dir, "want.json"), append(want, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", dir)
}

// walSegmentSize is the size raft-wal preallocates every segment file to.
const walSegmentSize = 64 << 20

// trimSegments cuts the trailing zeros off the log segments under dir.
func trimSegments(t *testing.T, dir string) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != walSegmentSize {
			t.Fatalf("segment %s has %d bytes, want %d", seg, len(b), walSegmentSize)
		}
		if err := os.WriteFile(seg, bytes.TrimRight(b, "\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// padSegments extends the log segments under dir with zeros to their
// preallocated size again.
func padSegments(t *testing.T, dir string) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if len(segs) == 0 {
		t.Fatalf("no log segment in %s", dir)
	}
	for _, seg := range segs {
		if err := os.Truncate(seg, walSegmentSize); err != nil {
			t.Fatal(err)
		}
	}
}
