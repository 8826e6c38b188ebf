package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// netnsLab puts each agent of a cluster in its own network namespace,
// joined by a bridge in the test's namespace, so that a partition can cut
// agents off from each other (blackhole routes) while the test still
// reaches every one of them. It needs root and `ip netns`.
type netnsLab struct {
	t      *testing.T
	tag    string // random, in every name, so parallel runs do not clash
	bridge string
	ns     []string
	ips    []string
}

// labSubnet is the lab's private /24; the bridge is .254, agent i is .i+1.
const labSubnet = "10.213.77."

func run(t *testing.T, args ...string) error {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetnsLab builds n namespaces, or skips the test saying why it cannot.
func newNetnsLab(t *testing.T, n int) *netnsLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("partition test needs root for network namespaces (ip netns); skipped")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("partition test needs the ip command (iproute2); skipped")
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	l := &netnsLab{t: t, tag: hex.EncodeToString(b[:])}
	l.bridge = "rbr" + l.tag
	t.Cleanup(l.teardown)
	if err := run(t, "ip", "link", "add", l.bridge, "type", "bridge"); err != nil {
		t.Skipf("cannot create a bridge here (%v); partition test skipped", err)
	}
	steps := [][]string{
		{"ip", "addr", "add", labSubnet + "254/24", "dev", l.bridge},
		{"ip", "link", "set", l.bridge, "up"},
	}
	for i := range n {
		ns := fmt.Sprintf("rns%s%d", l.tag, i)
		veth := fmt.Sprintf("rv%s%d", l.tag, i)
		ip := labSubnet + strconv.Itoa(i+1)
		l.ns, l.ips = append(l.ns, ns), append(l.ips, ip)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "link", "set", veth, "master", l.bridge, "up"},
			[]string{"ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := run(t, s...); err != nil {
			t.Skipf("cannot build the network namespaces here (%v); partition test skipped", err)
		}
	}
	// The bridge must pass traffic: reach each namespace from here.
	for i, ns := range l.ns {
		if err := run(t, "ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", labSubnet+"254"); err != nil {
			if _, lerr := exec.LookPath("ping"); lerr != nil {
				break // no ping: the agents' start will tell
			}
			t.Skipf("namespace %d cannot reach the bridge (%v); partition test skipped", i, err)
		}
	}
	return l
}

func (l *netnsLab) teardown() {
	for _, ns := range l.ns {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	_ = exec.Command("ip", "link", "del", l.bridge).Run()
}

// wrapper writes a script that runs the binary inside namespace i.
func (l *netnsLab) wrapper(i int, bin string) string {
	l.t.Helper()
	path := filepath.Join(l.t.TempDir(), "roster-in-"+l.ns[i])
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", l.ns[i], bin)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		l.t.Fatal(err)
	}
	return path
}

// cut isolates agent i from every other agent (both ways), leaving it
// reachable from the test.
func (l *netnsLab) cut(i int) {
	l.t.Helper()
	for j := range l.ns {
		if j == i {
			continue
		}
		for _, r := range [][2]int{{i, j}, {j, i}} {
			if err := run(l.t, "ip", "-n", l.ns[r[0]], "route", "add", "blackhole", l.ips[r[1]]+"/32"); err != nil {
				l.t.Fatal(err)
			}
		}
	}
}

// heal undoes cut(i).
func (l *netnsLab) heal(i int) {
	l.t.Helper()
	for j := range l.ns {
		if j == i {
			continue
		}
		for _, r := range [][2]int{{i, j}, {j, i}} {
			if err := run(l.t, "ip", "-n", l.ns[r[0]], "route", "del", "blackhole", l.ips[r[1]]+"/32"); err != nil {
				l.t.Fatal(err)
			}
		}
	}
}

// TestClusterPartition isolates the leader of a three-agent cluster. The
// isolated agent must refuse writes with a clear 503 (not hang) and keep
// serving reads marked stale; the other two elect a leader and keep
// taking writes; after healing, every agent holds every acknowledged
// write.
func TestClusterPartition(t *testing.T) {
	ctx := bound(t)
	lab := newNetnsLab(t, 3)
	bin := testutil.BuildBinary(t)
	c := &testCluster{}
	for i := range 3 {
		raft := lab.ips[i] + ":8300"
		var join []string
		for j := range 3 {
			if j != i {
				join = append(join, lab.ips[j]+":8300")
			}
		}
		a := testutil.StartAgent(t, lab.wrapper(i, bin), testutil.AgentOptions{
			Args:        []string{"-http-addr", lab.ips[i] + ":0", "-raft-addr", raft, "-bootstrap-expect", "3", "-join", strings.Join(join, ",")},
			NoWaitReady: true, ReadyTimeout: 30 * time.Second,
		})
		nd := &clusterNode{a: a, raft: raft}
		u := a.URL
		nd.u.Store(&u)
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.a.WaitReady(t, 30*time.Second)
	}
	li, oldLeader := c.leader(t, 10*time.Second)
	before := register(t, c.nodes[(li+1)%3].a, "part", "before", map[string]any{"address": "10.0.0.1", "port": 1})

	lab.cut(li)
	minority := c.nodes[li]
	majority := []*clusterNode{c.nodes[(li+1)%3], c.nodes[(li+2)%3]}

	// The majority elects a new leader and takes writes through both.
	testutil.Eventually(t, 15*time.Second, func() (bool, string) {
		m, err := members(ctx, majority[0])
		if err != nil {
			return false, err.Error()
		}
		return m.Leader != "" && m.Leader != oldLeader, "majority leader: " + m.Leader
	})
	var acked []string
	for i, nd := range majority {
		id := fmt.Sprintf("during-%d", i)
		register(t, nd.a, "part", id, map[string]any{"address": "10.0.0.2", "port": 2})
		acked = append(acked, id)
	}

	// The isolated agent refuses writes quickly and clearly.
	start := time.Now()
	resp, err := testutil.Request(ctx, "PUT", instanceURL(minority.a, "part", "lost"), map[string]any{"address": "10.0.0.3", "port": 3})
	if err != nil {
		t.Fatalf("write to the minority: %v", err)
	}
	if resp.Status != http.StatusServiceUnavailable || !strings.Contains(string(resp.Body), "leader") {
		t.Fatalf("write to the minority = %s, want 503 naming the missing leader", resp)
	}
	refusedIn := time.Since(start)
	if refusedIn > 6*time.Second {
		t.Errorf("the minority took %v to refuse a write", refusedIn)
	}
	// Once it has stepped down it says "no leader", and it still
	// answers reads, marked stale.
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		resp, err := testutil.Request(ctx, "PUT", instanceURL(minority.a, "part", "lost"), map[string]any{"address": "10.0.0.3", "port": 3})
		if err != nil {
			return false, err.Error()
		}
		return resp.Status == http.StatusServiceUnavailable && strings.Contains(string(resp.Body), "no leader"), resp.String()
	})
	status, h, b := testutil.Do(t, "GET", minority.a.URL+"/v1/services/part/instances", nil)
	if status != http.StatusOK || h.Get("X-Roster-Known-Leader") != "false" {
		t.Fatalf("stale read on the minority: %d %v %s", status, h, b)
	}
	if lc, _ := strconv.Atoi(h.Get("X-Roster-Last-Contact")); lc != -1 && lc < 500 {
		t.Fatalf("stale read says last contact %q ms ago", h.Get("X-Roster-Last-Contact"))
	}
	if !strings.Contains(string(b), `"before"`) {
		t.Fatalf("stale read lost the write from before the partition: %s", b)
	}
	status, _, b = testutil.Do(t, "GET", minority.a.URL+"/v1/services/part/instances?consistent", nil)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("consistent read on the minority: %d %s", status, b)
	}

	t.Logf("isolated leader refused a write in %v (%s); stale read: known leader %s, last contact %s ms",
		refusedIn.Round(time.Millisecond), resp, h.Get("X-Roster-Known-Leader"), h.Get("X-Roster-Last-Contact"))
	lab.heal(li)
	healedAt := time.Now()
	testutil.Eventually(t, 20*time.Second, func() (bool, string) {
		resp, err := testutil.Request(ctx, "GET", minority.a.URL+"/v1/services/part/instances?consistent", nil)
		if err != nil {
			return false, err.Error()
		}
		if resp.Status != http.StatusOK {
			return false, resp.String()
		}
		for _, id := range acked {
			if !strings.Contains(string(resp.Body), `"`+id+`"`) {
				return false, "healed minority lacks " + id
			}
		}
		return true, ""
	})
	c.allHealthy(t, 20*time.Second)
	t.Logf("converged %v after healing", time.Since(healedAt).Round(time.Millisecond))
	for _, nd := range c.nodes {
		ans, _, _ := listInstances(t, nd.a, "part", "consistent")
		if len(ans.Instances) != 1+len(acked) {
			t.Errorf("%s after healing holds %d instances, want %d (before=%d)", nd.raft, len(ans.Instances), 1+len(acked), before.ModifyIndex)
		}
		for _, in := range ans.Instances {
			if in.ID == "lost" {
				t.Errorf("%s holds the write the minority refused", nd.raft)
			}
		}
	}
}
