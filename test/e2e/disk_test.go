package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// runAgentOnce runs `roster agent` on dir expecting it to refuse to start:
// it must exit, non-zero, well within the bound.
func runAgentOnce(t *testing.T, dir string, extra ...string) cliResult {
	t.Helper()
	args := append([]string{"agent", "-http-addr", "127.0.0.1:0", "-dns-addr", "127.0.0.1:0", "-xds-addr", "127.0.0.1:0",
		"-data-dir", dir}, extra...)
	start := time.Now()
	res := runCLI(t, bound(t), args...)
	if res.code == 0 {
		t.Fatalf("roster %s exited 0, want a refusal; stderr:\n%s", strings.Join(args, " "), res.stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("refusing to start took %s", d)
	}
	return res
}

func mustSay(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s does not say %q:\n%s", what, w, s)
		}
	}
}

// TestDataDirLockedByAnotherAgent: a second agent on a data dir in use
// exits at once naming the pid; after a kill -9 of the first, the lock
// file left behind does not block a new start.
func TestDataDirLockedByAnotherAgent(t *testing.T) {
	a := startAgent(t, testutil.AgentOptions{})
	register(t, a, "web", "a", map[string]any{"address": "10.0.0.1", "port": 80})
	res := runAgentOnce(t, a.DataDir)
	mustSay(t, "second agent", res.stderr, fmt.Sprintf("data dir %s in use by pid %d", a.DataDir, a.Pid()))

	a.Kill()
	if _, err := os.Stat(filepath.Join(a.DataDir, "roster.lock")); err != nil {
		t.Fatalf("lock file: %v", err)
	}
	a.Restart(t)
	if status, _ := getInstance(t, a, "web", "a"); status != http.StatusOK {
		t.Errorf("GET after restart: %d", status)
	}
}

// flipAddress changes an address written in the log in place, as a bad
// disk would: the entry keeps its length.
func flipAddress(t *testing.T, dir, from, to string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	sort.Strings(segs)
	for _, seg := range segs {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Count(b, []byte(from)) == 1 {
			if err := os.WriteFile(seg, bytes.Replace(b, []byte(from), []byte(to), 1), 0o600); err != nil {
				t.Fatal(err)
			}
			return seg
		}
	}
	t.Fatalf("%q not found once in the log segments of %s", from, dir)
	return ""
}

// TestDurabilityCorruptEntry: a changed byte in a committed entry stops
// the agent from starting with the file, the index and how to recover;
// the same change in the last batch is a torn tail, dropped with a WARN
// naming the indexes.
func TestDurabilityCorruptEntry(t *testing.T) {
	tests := []struct {
		name string
		last bool
	}{
		{name: "committed entry"},
		{name: "last entry", last: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := startAgent(t, testutil.AgentOptions{})
			register(t, a, "web", "before", map[string]any{"address": "10.0.0.1", "port": 80})
			victim := register(t, a, "web", "victim", map[string]any{"address": "10.7.7.7", "port": 80})
			if !tc.last {
				for i := range 3 {
					register(t, a, "web", fmt.Sprint("after-", i), map[string]any{"address": "10.0.0.2", "port": 80})
				}
			}
			a.Kill()
			seg := flipAddress(t, a.DataDir, "10.7.7.7", "10.7.7.8")
			if !tc.last {
				res := runAgentOnce(t, a.DataDir)
				mustSay(t, "agent on a corrupt log", res.stderr, filepath.Base(seg), "log entry", "is corrupt",
					"to recover", "rejoin")
				return
			}
			a.Restart(t)
			mustSay(t, "agent logs", a.Logs(), "log tail truncated", filepath.Base(seg),
				fmt.Sprintf(`"from":%d`, victim.ModifyIndex))
			if status, _ := getInstance(t, a, "web", "victim"); status != http.StatusNotFound {
				t.Errorf("GET of the torn write: %d, want 404", status)
			}
		})
	}
}

// TestDurabilityLogMissingBesideSnapshot: a removed log beside a snapshot
// refuses to start (it would undo the writes after the snapshot) unless
// -recover-from-snapshot accepts that.
func TestDurabilityLogMissingBesideSnapshot(t *testing.T) {
	a := startAgent(t, testutil.AgentOptions{Args: []string{"-snapshot-threshold", "5", "-snapshot-interval", "1s"}})
	for i := range 10 {
		register(t, a, "web", fmt.Sprint("i-", i), map[string]any{"address": "10.0.0.1", "port": 80})
	}
	snaps := filepath.Join(a.DataDir, "snapshots")
	if msg, ok := pollFor(20*time.Second, func() bool {
		// A finished snapshot: raft writes it under NAME.tmp and renames it.
		metas, _ := filepath.Glob(filepath.Join(snaps, "*", "meta.json"))
		for _, m := range metas {
			if !strings.HasSuffix(filepath.Dir(m), ".tmp") {
				return true
			}
		}
		return false
	}); !ok {
		t.Fatalf("no snapshot taken: %s", msg)
	}
	a.Kill()
	if err := os.RemoveAll(filepath.Join(a.DataDir, "wal")); err != nil {
		t.Fatal(err)
	}
	res := runAgentOnce(t, a.DataDir)
	mustSay(t, "agent without its log", res.stderr, "missing beside a snapshot", "-recover-from-snapshot")

	b := startAgent(t, testutil.AgentOptions{DataDir: a.DataDir, Args: []string{"-recover-from-snapshot"}})
	mustSay(t, "agent logs", b.Logs(), "starting from the snapshot", "lost")
	register(t, b, "web", "later", map[string]any{"address": "10.0.0.1", "port": 80})
}

// TestClusterReadyzWithoutLeader: /readyz is 200 on every server of a
// healthy cluster, and 503 naming the reason on a server left without a
// quorum (it can no longer serve reads that reflect the cluster, nor
// accept writes); 200 again once the others are back.
func TestClusterReadyzWithoutLeader(t *testing.T) {
	ctx := bound(t)
	c := startCluster(t, 3)
	readyz := func(nd *clusterNode) (int, string) {
		resp, err := testutil.Request(ctx, "GET", nd.url()+"/readyz", nil)
		if err != nil {
			return 0, err.Error()
		}
		return resp.Status, resp.String()
	}
	for i, nd := range c.nodes {
		if code, body := readyz(nd); code != http.StatusOK {
			t.Fatalf("node %d of a healthy cluster: /readyz %d %s", i, code, body)
		}
	}
	c.nodes[0].a.Kill()
	c.nodes[1].a.Kill()
	last := c.nodes[2]
	var body string
	if msg, ok := pollFor(30*time.Second, func() bool {
		var code int
		code, body = readyz(last)
		return code == http.StatusServiceUnavailable
	}); !ok {
		t.Fatalf("/readyz of the server left alone stayed 200 for %s: %s", msg, body)
	}
	t.Logf("/readyz of the server left alone: %s", body)
	mustSay(t, "/readyz", body, `"not serving"`)
	if !strings.Contains(body, "no leader known") && !strings.Contains(body, "no contact with leader") &&
		!strings.Contains(body, "the last write failed") {
		t.Errorf("/readyz does not say which condition failed: %s", body)
	}
	c.nodes[0].restart(t)
	c.nodes[1].restart(t)
	if msg, ok := pollFor(30*time.Second, func() bool { code, _ := readyz(last); return code == http.StatusOK }); !ok {
		t.Errorf("/readyz of the third server not 200 for %s after the others came back", msg)
	}
}

// TestClusterFollowerChecksum: the checksum the leader puts on an entry
// reaches the followers' disks with it (raft's transport carries
// Extensions): a changed byte in a follower's copy stops that follower.
func TestClusterFollowerChecksum(t *testing.T) {
	c := startCluster(t, 3)
	li, _ := c.leader(t, 30*time.Second)
	leader := c.nodes[li].a
	register(t, leader, "web", "victim", map[string]any{"address": "10.7.7.7", "port": 80})
	for i := range 5 {
		register(t, leader, "web", fmt.Sprint("after-", i), map[string]any{"address": "10.0.0.2", "port": 80})
	}
	// Every follower holds the last write before they stop.
	for i, nd := range c.nodes {
		if msg, ok := pollFor(20*time.Second, func() bool {
			resp, err := testutil.Request(bound(t), "GET", nd.url()+"/v1/services/web/instances/after-4", nil)
			return err == nil && resp.Status == http.StatusOK
		}); !ok {
			t.Fatalf("node %d lacks the last write after %s", i, msg)
		}
	}
	for _, nd := range c.nodes {
		nd.a.Kill()
	}
	refused := 0
	for i, nd := range c.nodes {
		if i == li {
			continue
		}
		flipAddress(t, nd.a.DataDir, "10.7.7.7", "10.7.7.8")
		res := runAgentOnce(t, nd.a.DataDir, "-raft-addr", nd.raft, "-server")
		if strings.Contains(res.stderr, "fails its checksum") {
			refused++
		} else {
			t.Logf("follower %d: %s", i, res.stderr)
		}
	}
	if refused == 0 {
		t.Error("no follower found the changed entry by its checksum")
	}
}
