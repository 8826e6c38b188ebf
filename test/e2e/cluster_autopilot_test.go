package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rosterhq/roster/internal/testutil"
)

// Dead-server cleanup (-dead-server-after, -min-servers) and -max-stale
// with real agents.

// apMember is a member as these tests read it.
type apMember struct {
	ID            string `json:"id"`
	Address       string `json:"address"`
	Role          string `json:"role"`
	UnreachableMS int64  `json:"unreachable_ms"`
}

func apMembers(ctx context.Context, a *testutil.Agent) ([]apMember, error) {
	resp, err := testutil.Request(ctx, "GET", a.URL+"/v1/cluster/members", nil)
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		return nil, fmt.Errorf("members: %s", resp)
	}
	var m struct {
		Members []apMember `json:"members"`
	}
	return m.Members, json.Unmarshal(resp.Body, &m)
}

// metricSum adds up the samples of one metric on the agent's /metrics.
func metricSum(t *testing.T, a *testutil.Agent, name string) float64 {
	t.Helper()
	_, _, b := testutil.Do(t, "GET", a.URL+"/metrics", nil)
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[0] == name || strings.HasPrefix(f[0], name+"{")) {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("metric %q: %v", line, err)
			}
			sum += v
		}
	}
	return sum
}

// startFourth starts three servers and joins a fourth, every one with
// args, and waits until all four are healthy members.
func startFourth(t *testing.T, args ...string) (*testCluster, *clusterNode) {
	t.Helper()
	c := startCluster(t, 3, args...)
	li, _ := c.leader(t, 10*time.Second)
	addr := freeAddrs(t, 1)[0]
	a := startAgent(t, testutil.AgentOptions{Args: append([]string{"-raft-addr", addr, "-join", c.nodes[(li+1)%3].raft}, args...), NoWaitReady: true})
	a.WaitReady(t, 30*time.Second)
	nd := &clusterNode{a: a, raft: addr}
	u := a.URL
	nd.u.Store(&u)
	c.nodes = append(c.nodes, nd)
	c.allHealthy(t, 20*time.Second)
	return c, nd
}

// TestClusterDeadServerCleanup: of four servers with -dead-server-after
// 2s, one is killed and never returns. The leader shows it unreachable,
// removes it (a WARN with its ID, address and how long), counts it in
// /metrics, and the three left keep serving writes and consistent reads.
func TestClusterDeadServerCleanup(t *testing.T) {
	ctx := bound(t)
	c, fourth := startFourth(t, "-dead-server-after", "2s")
	li, _ := c.leader(t, 10*time.Second)
	gone := fourth
	if c.nodes[li] == fourth {
		gone = c.nodes[(li+1)%3]
	}
	gone.a.Kill()
	gone.down.Store(true)
	var survivors []*clusterNode
	for _, nd := range c.nodes {
		if nd != gone {
			survivors = append(survivors, nd)
		}
	}
	sawUnreachable := false
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		ms, err := apMembers(ctx, survivors[0].a)
		if err != nil {
			return false, err.Error()
		}
		for _, m := range ms {
			if m.Address == gone.raft {
				sawUnreachable = sawUnreachable || m.UnreachableMS > 0
				return false, fmt.Sprintf("still a member: %+v", m)
			}
		}
		return len(ms) == 3, fmt.Sprintf("members %+v", ms)
	})
	li, _ = c.leader(t, 10*time.Second)
	leader := c.nodes[li]
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		n := 0.0
		for _, nd := range survivors {
			n += metricSum(t, nd.a, "roster_cluster_dead_servers_removed_total")
		}
		return n == 1, fmt.Sprintf("dead_servers_removed_total over the survivors = %v", n)
	})
	logs := ""
	for _, nd := range survivors {
		logs += nd.a.Logs()
	}
	if !strings.Contains(logs, `"msg":"removing a dead server from the cluster"`) || !strings.Contains(logs, `"addr":"`+gone.raft+`"`) ||
		!strings.Contains(logs, `"unreachable_for":`) {
		t.Errorf("no WARN naming the removed server %s in the survivors' logs", gone.raft)
	}
	if !sawUnreachable {
		t.Logf("members never showed %s with unreachable_ms before its removal (the window is about a second)", gone.raft)
	}
	for i, nd := range survivors {
		register(t, nd.a, "after-cleanup", fmt.Sprint("i-", i), map[string]any{"address": "10.9.0.1", "port": 100 + i})
	}
	if ans, _, _ := listInstances(t, leader.a, "after-cleanup", "consistent"); len(ans.Instances) != 3 {
		t.Fatalf("after the cleanup the leader holds %d of 3 instances", len(ans.Instances))
	}
}

// TestClusterDeadServerCleanupOff: with -dead-server-after 0 a killed
// server stays a member, shown unreachable and never counted, for longer
// than the 2 s that removes it above.
func TestClusterDeadServerCleanupOff(t *testing.T) {
	ctx := bound(t)
	c, fourth := startFourth(t, "-dead-server-after", "0")
	li, _ := c.leader(t, 10*time.Second)
	gone := fourth
	if c.nodes[li] == fourth {
		gone = c.nodes[(li+1)%3]
	}
	gone.a.Kill()
	gone.down.Store(true)
	li, _ = c.leader(t, 10*time.Second)
	leader := c.nodes[li]
	// Watch the members until the server has been seen unreachable for
	// 4 s straight: cleanup at 2 s would have removed it by then.
	var since time.Time
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		ms, err := apMembers(ctx, leader.a)
		if err != nil {
			return false, err.Error()
		}
		if len(ms) != 4 {
			t.Fatalf("members with the cleanup off: %+v", ms)
		}
		for _, m := range ms {
			if m.Address != gone.raft {
				continue
			}
			if m.UnreachableMS != 0 {
				t.Fatalf("unreachable_ms with the cleanup off: %+v", m)
			}
			if m.Role != "unreachable" {
				since = time.Time{}
				return false, fmt.Sprintf("killed server %+v", m)
			}
		}
		if since.IsZero() {
			since = time.Now()
		}
		return time.Since(since) > 4*time.Second, "unreachable for " + time.Since(since).String()
	})
	if n := metricSum(t, leader.a, "roster_cluster_dead_servers_removed_total"); n != 0 {
		t.Fatalf("dead_servers_removed_total = %v with the cleanup off", n)
	}
}

// TestClusterMaxStale: three servers with -max-stale 2s. A follower
// answers DNS and SDS while it hears from the leader; once both its peers
// are killed it answers DNS SERVFAIL and SDS 503 within a few seconds,
// instead of its last state.
func TestClusterMaxStale(t *testing.T) {
	bound(t)
	c := startCluster(t, 3, "-max-stale", "2s")
	li, _ := c.leader(t, 10*time.Second)
	f := c.nodes[(li+1)%3]
	register(t, c.nodes[li].a, "web", "web-1", map[string]any{"address": "10.8.0.1", "port": 80})
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		r := dnsAsk(t, f.a, "udp", "web.service.roster.", dns.TypeA)
		return r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1, r.String()
	})
	status, _, b := testutil.Do(t, "GET", f.a.URL+"/v1/registration/web", nil)
	if status != http.StatusOK {
		t.Fatalf("SDS on the follower while in contact: %d %s", status, b)
	}
	for _, nd := range c.nodes {
		if nd != f {
			nd.a.Kill()
			nd.down.Store(true)
		}
	}
	testutil.Eventually(t, 20*time.Second, func() (bool, string) {
		r := dnsAsk(t, f.a, "udp", "web.service.roster.", dns.TypeA)
		return r.Rcode == dns.RcodeServerFailure, "DNS: " + r.String()
	})
	status, hdr, b := testutil.Do(t, "GET", f.a.URL+"/v1/registration/web", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(b), "stale: no contact with the leader") || hdr.Get("Retry-After") != "1" {
		t.Fatalf("SDS on the cut-off follower: %d %v %s", status, hdr, b)
	}
	// Other reads of the native API still serve the local state, with the
	// staleness headers saying how old it is.
	status, hdr, _ = testutil.Do(t, "GET", f.a.URL+"/v1/services/web/instances", nil)
	if ms, _ := strconv.Atoi(hdr.Get("X-Roster-Last-Contact")); status != http.StatusOK || ms < 2000 {
		t.Fatalf("native read on the cut-off follower: %d, last contact %q", status, hdr.Get("X-Roster-Last-Contact"))
	}
}
