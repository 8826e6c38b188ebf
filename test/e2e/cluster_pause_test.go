//go:build unix

package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// TestClusterPausedLeaderAnswersNothingStale: a leader frozen (SIGSTOP,
// as a long GC pause or a starved process would) for longer than the
// election timeout still takes itself for the leader for a moment after
// it wakes. Requests that reached it during the pause are served in that
// moment. The instances registered through the new leader during the
// pause exist: a deregister must not answer 404 and a ?consistent read
// must not miss them. Each is sent on a connection opened before the
// pause, so it is read the instant the process runs again.
func TestClusterPausedLeaderAnswersNothingStale(t *testing.T) {
	ctx := bound(t)
	c := startCluster(t, 3)
	li, oldID := c.leader(t, 10*time.Second)
	old := c.nodes[li]
	host := mustHost(t, old.url())

	const n = 16
	conns := make([]net.Conn, 2*n)
	for i := range conns {
		cn, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cn.Close() })
		conns[i] = cn
	}

	pid := old.a.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	old.down.Store(true)

	// The other two elect a leader of their own.
	var nl int
	testutil.Eventually(t, 15*time.Second, func() (bool, string) {
		i, id := c.leader(t, 10*time.Second)
		if id == oldID {
			return false, "the paused agent is still named leader"
		}
		nl = i
		return true, ""
	})
	// d<i> are deregistered through the paused agent, r<i> read there.
	for i := range 2 * n {
		id := fmt.Sprintf("%c%d", "dr"[i%2], i/2)
		u := fmt.Sprintf("%s/v1/services/pause/instances/%s", c.nodes[nl].url(), id)
		resp, err := testutil.Request(ctx, "PUT", u, map[string]any{"address": "10.9.9.9", "port": 80})
		if err != nil || resp.Status/100 != 2 {
			t.Fatalf("register %s through the new leader: %v %v", id, resp, err)
		}
	}
	// Queue the requests at the paused agent, then wake it.
	for i := range n {
		del := fmt.Sprintf("DELETE /v1/services/pause/instances/d%d HTTP/1.1\r\nHost: %s\r\n\r\n", i, host)
		get := fmt.Sprintf("GET /v1/services/pause/instances/r%d?consistent HTTP/1.1\r\nHost: %s\r\n\r\n", i, host)
		if _, err := conns[2*i].Write([]byte(del)); err != nil {
			t.Fatal(err)
		}
		if _, err := conns[2*i+1].Write([]byte(get)); err != nil {
			t.Fatal(err)
		}
	}
	resume()

	var stale []string
	for i, cn := range conns {
		_ = cn.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(cn), nil)
		if err != nil {
			t.Fatalf("answer %d from the woken agent: %v", i, err)
		}
		resp.Body.Close()
		what := fmt.Sprintf("deregister d%d", i/2)
		if i%2 == 1 {
			what = fmt.Sprintf("consistent read r%d", i/2)
		}
		t.Logf("%s: %d", what, resp.StatusCode)
		if resp.StatusCode == http.StatusNotFound {
			stale = append(stale, what)
		}
	}
	if len(stale) > 0 {
		t.Fatalf("the woken former leader answered 404 for instances the new leader holds: %v", stale)
	}
}

func mustHost(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// TestClusterHeartbeatRightAfterRegister: a heartbeat that reaches an
// agent a moment after the instance was registered through another one
// finds it, although that agent may not have applied the registration
// yet: an agent that does not know an instance asks the leader before it
// answers 404.
func TestClusterHeartbeatRightAfterRegister(t *testing.T) {
	ctx := bound(t)
	c := startCluster(t, 3)
	c.leader(t, 10*time.Second)
	for i := range 60 {
		id := fmt.Sprintf("fresh-%02d", i)
		reg, hb := c.nodes[i%3], c.nodes[(i+1)%3]
		resp, err := testutil.Request(ctx, "PUT", reg.url()+"/v1/services/fresh/instances/"+id, map[string]any{"address": "10.3.0.1", "port": 80, "ttl": "30s"})
		if err != nil || resp.Status/100 != 2 {
			t.Fatalf("register %s: %v %v", id, resp, err)
		}
		resp, err = testutil.Request(ctx, "PUT", hb.url()+"/v1/services/fresh/instances/"+id+"/heartbeat", nil)
		if err != nil || resp.Status != http.StatusNoContent {
			t.Fatalf("heartbeat of %s through %s right after its registration through %s: %v %v", id, hb.raft, reg.raft, resp, err)
		}
	}
}
