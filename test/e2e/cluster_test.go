package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// Cluster tests: three real agents on loopback forming one raft cluster
// with -bootstrap-expect 3 and -join, under kill -9 of the leader and a
// rolling restart while clients write. Run them alone with
// go test ./test/e2e/ -run TestCluster.

// clusterNode is one agent of a test cluster. Load goroutines read its
// URL through url(): the Agent's own fields belong to the test goroutine,
// which restarts it.
type clusterNode struct {
	a    *testutil.Agent
	raft string // its raft address, fixed across restarts
	down atomic.Bool
	u    atomic.Pointer[string]
}

func (n *clusterNode) url() string { return *n.u.Load() }

// restart starts a stopped or killed agent again, waits until it is
// ready, and lets the load goroutines use it again.
func (n *clusterNode) restart(t *testing.T) {
	t.Helper()
	n.a.Restart(t)
	n.a.WaitReady(t, 30*time.Second)
	u := n.a.URL
	n.u.Store(&u)
	n.down.Store(false)
}

type testCluster struct {
	nodes []*clusterNode
}

// freeAddrs returns n free loopback addresses for raft. A raft address
// must stay the same across restarts, so it cannot be :0; and it must not
// be a port the kernel hands out for :0 (Linux: 32768-60999), or another
// agent's DNS, xDS or HTTP listener on :0 may take it between this check
// and the agent's start. So the ports come from below that range, each
// checked free.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			t.Fatal("no free port below the ephemeral range")
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+mrand.IntN(12000)))
		if slices.Contains(out, addr) {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		out = append(out, addr)
	}
	return out
}

// startCluster starts n agents, each with -bootstrap-expect n and -join
// the others, and waits until every one is ready.
func startCluster(t *testing.T, n int, extra ...string) *testCluster {
	t.Helper()
	addrs := freeAddrs(t, n)
	c := &testCluster{}
	for i := range n {
		var others []string
		for j, a := range addrs {
			if j != i {
				others = append(others, a)
			}
		}
		args := append([]string{"-raft-addr", addrs[i], "-bootstrap-expect", strconv.Itoa(n), "-join", strings.Join(others, ",")}, extra...)
		a := startAgent(t, testutil.AgentOptions{Args: args, NoWaitReady: true, ReadyTimeout: 30 * time.Second})
		nd := &clusterNode{a: a, raft: addrs[i]}
		u := a.URL
		nd.u.Store(&u)
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.a.WaitReady(t, 30*time.Second)
	}
	return c
}

type clusterMember struct {
	ID            string `json:"id"`
	Address       string `json:"address"`
	HTTPAddr      string `json:"http_addr"`
	Role          string `json:"role"`
	Healthy       bool   `json:"healthy"`
	LastContactMS int64  `json:"last_contact_ms"`
}

type membersAnswer struct {
	Leader  string          `json:"leader"`
	Self    string          `json:"self"`
	Members []clusterMember `json:"members"`
}

func members(ctx context.Context, nd *clusterNode) (membersAnswer, error) {
	var m membersAnswer
	resp, err := testutil.Request(ctx, "GET", nd.a.URL+"/v1/cluster/members", nil)
	if err != nil {
		return m, err
	}
	if resp.Status != http.StatusOK {
		return m, fmt.Errorf("members: %s", resp)
	}
	return m, json.Unmarshal(resp.Body, &m)
}

// leader returns the index of the node every live node agrees leads,
// and that leader's raft ID.
func (c *testCluster) leader(t *testing.T, timeout time.Duration) (int, string) {
	t.Helper()
	idx, id := -1, ""
	testutil.Eventually(t, timeout, func() (bool, string) {
		ids := map[string]bool{}
		var leaderRaft string
		for _, nd := range c.nodes {
			if nd.down.Load() {
				continue
			}
			m, err := members(t.Context(), nd)
			if err != nil {
				return false, err.Error()
			}
			ids[m.Leader] = true
			for _, mb := range m.Members {
				if mb.ID == m.Leader {
					leaderRaft = mb.Address
				}
			}
		}
		if len(ids) != 1 || ids[""] {
			return false, fmt.Sprintf("live nodes name leaders %v", ids)
		}
		for i, nd := range c.nodes {
			if nd.raft == leaderRaft && !nd.down.Load() {
				idx = i
				for k := range ids {
					id = k
				}
				return true, ""
			}
		}
		return false, "leader " + leaderRaft + " is not a live node"
	})
	return idx, id
}

// allHealthy waits until every node reports every member healthy.
func (c *testCluster) allHealthy(t *testing.T, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, func() (bool, string) {
		for _, nd := range c.nodes {
			m, err := members(t.Context(), nd)
			if err != nil {
				return false, err.Error()
			}
			for _, mb := range m.Members {
				if !mb.Healthy {
					return false, fmt.Sprintf("%s sees %s unhealthy: %+v", nd.raft, mb.Address, mb)
				}
			}
			if len(m.Members) != len(c.nodes) {
				return false, fmt.Sprintf("%s sees %d members", nd.raft, len(m.Members))
			}
		}
		return true, ""
	})
}

type ackedKey struct{ svc, id string }

// writeLoad registers new instances as fast as `writers` clients can,
// each sending to the live nodes in turn, until ctx ends. It records
// every acknowledged write with the time of its answer.
type writeLoad struct {
	mu       sync.Mutex
	acked    map[ackedKey]time.Time
	failures int
	sample   string
	wg       sync.WaitGroup
}

func startWrites(ctx context.Context, c *testCluster, writers int, services []string) *writeLoad {
	w := &writeLoad{acked: map[ackedKey]time.Time{}}
	for g := range writers {
		w.wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				nd := c.nodes[(g+i)%len(c.nodes)]
				if nd.down.Load() {
					continue
				}
				k := ackedKey{services[(g+i)%len(services)], fmt.Sprintf("w%02d-%07d", g, i)}
				body := map[string]any{"address": fmt.Sprintf("10.1.%d.%d", g, i&255), "port": 1 + i%65535}
				resp, err := testutil.Request(ctx, "PUT", nd.url()+"/v1/services/"+k.svc+"/instances/"+k.id, body)
				w.mu.Lock()
				switch {
				case err == nil && (resp.Status == http.StatusCreated || resp.Status == http.StatusOK):
					w.acked[k] = time.Now()
				case err == nil:
					w.failures++
					w.sample = resp.String()
				default:
					w.failures++
				}
				w.mu.Unlock()
			}
		})
	}
	return w
}

func (w *writeLoad) countAfter(t0 time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, at := range w.acked {
		if at.After(t0) {
			n++
		}
	}
	return n
}

// checkAllPresent fails the test unless a ?consistent read of every
// service on nd holds every acknowledged key.
func checkAllPresent(t *testing.T, nd *clusterNode, services []string, acked map[ackedKey]time.Time, query string) {
	t.Helper()
	have := map[ackedKey]bool{}
	for _, svc := range services {
		u := nd.a.URL + "/v1/services/" + svc + "/instances?" + query
		var ans instancesAnswer
		// A consistent read may be refused (503) while leadership moves;
		// ask again until it is answered.
		testutil.Eventually(t, 15*time.Second, func() (bool, string) {
			resp, err := testutil.Request(t.Context(), "GET", u, nil)
			if err != nil {
				return false, err.Error()
			}
			if resp.Status == http.StatusServiceUnavailable {
				return false, resp.String()
			}
			if resp.Status != http.StatusOK {
				t.Fatalf("GET %s: %s", u, resp)
			}
			if err := json.Unmarshal(resp.Body, &ans); err != nil {
				t.Fatalf("GET %s: %v", u, err)
			}
			return true, ""
		})
		for _, in := range ans.Instances {
			have[ackedKey{svc, in.ID}] = true
		}
	}
	var missing []string
	for k := range acked {
		if !have[k] {
			missing = append(missing, k.svc+"/"+k.id)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s (%s): %d of %d acknowledged registrations missing, e.g. %v", nd.raft, query, len(missing), len(acked), missing[:min(5, len(missing))])
	}
}

// TestClusterBasics: a write to a follower is forwarded, acknowledged and
// readable at once on that follower, consistently everywhere; answers
// carry the staleness headers; the CLI lists members.
func TestClusterBasics(t *testing.T) {
	ctx := bound(t)
	c := startCluster(t, 3)
	li, leaderID := c.leader(t, 10*time.Second)
	f := c.nodes[(li+1)%3]
	in := register(t, f.a, "web", "web-1", map[string]any{"address": "10.0.0.1", "port": 80, "ttl": "10s"})
	if in.ModifyIndex == 0 {
		t.Fatalf("register through a follower: %+v", in)
	}
	if status, got := getInstance(t, f.a, "web", "web-1"); status != http.StatusOK || got.ModifyIndex != in.ModifyIndex {
		t.Fatalf("read back on the follower: %d %+v", status, got)
	}
	for _, nd := range c.nodes {
		ans, _, _ := listInstances(t, nd.a, "web", "consistent")
		if len(ans.Instances) != 1 {
			t.Fatalf("%s: consistent read = %+v", nd.raft, ans)
		}
	}
	status, h, b := testutil.Do(t, "GET", f.a.URL+"/v1/services", nil)
	if status != http.StatusOK || h.Get("X-Roster-Known-Leader") != "true" || h.Get("X-Roster-Last-Contact") == "" {
		t.Fatalf("follower read: %d %v %s", status, h, b)
	}
	if lc, err := strconv.Atoi(h.Get("X-Roster-Last-Contact")); err != nil || lc < 0 || lc > 2000 {
		t.Fatalf("X-Roster-Last-Contact = %q", h.Get("X-Roster-Last-Contact"))
	}
	status, h, _ = testutil.Do(t, "GET", f.a.URL+"/v1/health/service/web?consistent", nil)
	if status != http.StatusOK || h.Get("X-Consul-Knownleader") != "true" {
		t.Fatalf("consul consistent read on a follower: %d %v", status, h)
	}
	// Heartbeats through the follower keep the instance passing.
	testutil.DoJSON(t, "PUT", instanceURL(f.a, "web", "web-1")+"/heartbeat", nil, http.StatusNoContent, nil)

	// Consul's status endpoints name the raft peers, the same on every agent.
	var leader string
	var peers []string
	for i, nd := range c.nodes {
		var l string
		var p []string
		testutil.DoJSON(t, "GET", nd.a.URL+"/v1/status/leader", nil, http.StatusOK, &l)
		testutil.DoJSON(t, "GET", nd.a.URL+"/v1/status/peers", nil, http.StatusOK, &p)
		slices.Sort(p)
		if i == 0 {
			leader, peers = l, p
		}
		if l != leader || !slices.Equal(p, peers) || len(p) != 3 || !slices.Contains(p, l) {
			t.Fatalf("%s: status/leader %q, status/peers %v; agent 0 said %q, %v", nd.raft, l, p, leader, peers)
		}
	}

	res := runCLI(t, ctx, "members", "-http-addr", f.a.Addr)
	if res.code != 0 || !strings.Contains(res.stdout, "leader") || strings.Count(res.stdout, " healthy") != 3 || strings.Contains(res.stdout, "unhealthy") || !strings.Contains(res.stdout, leaderID) {
		t.Fatalf("roster members: %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
}

// TestClusterLeaderKill9: writers register at full speed through all three
// agents; the leader is killed with SIGKILL. A new leader must be elected
// within 5 s, writes must resume, and every acknowledged registration must
// be on both survivors, and on the killed agent once it is back.
func TestClusterLeaderKill9(t *testing.T) {
	ctx := bound(t)
	// Self-preservation off: a lapse of every lease at once must show.
	c := startCluster(t, 3, "-lease-guard-fraction", "1")
	li, oldID := c.leader(t, 10*time.Second)
	services := []string{"alpha", "bravo", "charlie"}
	wctx, stop := context.WithCancel(ctx)
	defer stop()

	// TTL instances heartbeating through followers, and an active check
	// whose probes (by the leader) are timed.
	modify := registerTTL(t, c, "beating", 10, "2s")
	hb := startHeartbeats(wctx, c, "beating", modify)
	var (
		probeMu sync.Mutex
		probes  []time.Time
	)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probeMu.Lock()
		probes = append(probes, time.Now())
		probeMu.Unlock()
	}))
	defer target.Close()
	const checkInterval = time.Second
	register(t, c.nodes[(li+1)%3].a, "checked", "c-1", map[string]any{"address": "127.0.0.1", "port": 1,
		"checks": []map[string]any{{"type": "http", "target": target.URL, "interval": checkInterval.String(), "timeout": "500ms"}}})
	firstProbeAfter := func(t0 time.Time) (time.Time, bool) {
		probeMu.Lock()
		defer probeMu.Unlock()
		for _, p := range probes {
			if p.After(t0) {
				return p, true
			}
		}
		return time.Time{}, false
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		_, ok := firstProbeAfter(time.Time{})
		return ok, "the leader has not probed the check yet"
	})

	w := startWrites(wctx, c, 16, services)

	_, _ = pollFor(10*time.Second, func() bool { return w.countAfter(time.Time{}) >= 300 })
	c.nodes[li].a.Kill()
	c.nodes[li].down.Store(true)
	killedAt := time.Now()

	_, newID := c.leader(t, 10*time.Second)
	elected := time.Since(killedAt)
	if newID == oldID {
		t.Fatalf("leader %s still named after its kill", oldID)
	}
	if elected > 5*time.Second {
		t.Errorf("new leader %s after %v; want within 5s", newID, elected)
	}
	resumedAt := time.Now()
	// The new leader probes the check within one interval of taking over
	// (it cannot have before it was elected, which we saw at resumedAt).
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		_, ok := firstProbeAfter(killedAt)
		return ok, "no probe since the kill"
	})
	p, _ := firstProbeAfter(killedAt)
	if p.Sub(resumedAt) > checkInterval+250*time.Millisecond {
		t.Errorf("first probe %v after the new leader was seen; want within one interval (%v)", p.Sub(resumedAt).Round(time.Millisecond), checkInterval)
	}
	t.Logf("active check probed again %v after the kill (%v after the new leader was seen)",
		p.Sub(killedAt).Round(time.Millisecond), p.Sub(resumedAt).Round(time.Millisecond))
	// Keep writing and heartbeating for three TTLs past the kill: a
	// renewal that did not reach the new leader would show as an expiry.
	testutil.Eventually(t, 20*time.Second, func() (bool, string) {
		n := w.countAfter(resumedAt)
		return n >= 200 && time.Since(killedAt) > 6*time.Second, fmt.Sprintf("%d writes acknowledged since the new leader", n)
	})
	stop()
	w.wg.Wait()
	hb.wait()
	t.Logf("new leader %s %v after the kill; %d registrations acknowledged, %d requests failed (e.g. %s)",
		newID, elected.Round(time.Millisecond), len(w.acked), w.failures, w.sample)

	for _, nd := range c.nodes {
		if !nd.down.Load() {
			checkAllPresent(t, nd, services, w.acked, "consistent")
			checkUntouched(t, nd, "beating", modify)
		}
	}
	// The killed agent comes back as a follower; once ready it holds
	// every acknowledged write without being asked for consistency.
	c.nodes[li].restart(t)
	checkAllPresent(t, c.nodes[li], services, w.acked, "")
	c.allHealthy(t, 15*time.Second)
}

// TestClusterRollingRestart restarts the three agents one after another
// (SIGTERM, start again on the same data directory) while writers
// register and TTL instances heartbeat through whichever agents are up.
// No acknowledged write may be lost and no healthy instance evicted: the
// TTL instances are never written again (no expiry, no recovery).
func TestClusterRollingRestart(t *testing.T) {
	ctx := bound(t)
	// Self-preservation off: a lapse of every lease at once must show.
	c := startCluster(t, 3, "-lease-guard-fraction", "1")
	c.leader(t, 10*time.Second)

	modify := registerTTL(t, c, "beating", 20, "2s")
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	hb := startHeartbeats(wctx, c, "beating", modify)
	services := []string{"load"}
	w := startWrites(wctx, c, 8, services)

	for i, nd := range c.nodes {
		_, _ = pollFor(5*time.Second, func() bool { return w.countAfter(time.Time{}) >= 100*(i+1) })
		nd.down.Store(true)
		if err := nd.a.Stop(); err != nil {
			t.Fatalf("stop %s: %v", nd.raft, err)
		}
		stopped := time.Now()
		nd.restart(t)
		c.allHealthy(t, 20*time.Second)
		t.Logf("restarted %s: ready and the cluster healthy %v after its stop", nd.raft, time.Since(stopped).Round(time.Millisecond))
	}
	restartedAt := time.Now()
	// Keep going for three TTLs: a heartbeat that did not reach the
	// leader's lease table would show as an expiry by then.
	testutil.Eventually(t, 20*time.Second, func() (bool, string) {
		n := w.countAfter(restartedAt)
		return n >= 100 && time.Since(restartedAt) > 6*time.Second, fmt.Sprintf("%d writes since the last restart", n)
	})
	stop()
	w.wg.Wait()
	hb.wait()
	t.Logf("%d registrations acknowledged, %d failed (e.g. %s); %d heartbeat batches sent through followers",
		len(w.acked), w.failures, w.sample, hb.sent.Load())
	if hb.sent.Load() < 10 {
		t.Fatalf("only %d heartbeat batches went through followers", hb.sent.Load())
	}

	for _, nd := range c.nodes {
		checkAllPresent(t, nd, services, w.acked, "consistent")
		checkUntouched(t, nd, "beating", modify)
	}
}

// TestClusterSnapshotRestore: a snapshot saved from one agent and restored
// through a follower is installed by the leader and reaches every agent.
func TestClusterSnapshotRestore(t *testing.T) {
	ctx := bound(t)
	c := startCluster(t, 3)
	li, _ := c.leader(t, 10*time.Second)
	f := c.nodes[(li+1)%3]
	for i := range 5 {
		register(t, c.nodes[i%3].a, "snap", fmt.Sprintf("kept-%d", i), map[string]any{"address": "10.3.0.1", "port": 100 + i})
	}
	resp, err := testutil.Request(ctx, "GET", f.a.URL+"/v1/registry/snapshot?consistent", nil)
	if err != nil || resp.Status != http.StatusOK {
		t.Fatalf("save snapshot from a follower: %v %v", resp, err)
	}
	saved := resp.Body
	register(t, c.nodes[li].a, "snap", "dropped", map[string]any{"address": "10.3.0.2", "port": 200})

	resp, err = testutil.Request(ctx, "PUT", f.a.URL+"/v1/registry/snapshot", saved)
	if err != nil || resp.Status != http.StatusOK {
		t.Fatalf("restore through a follower: %v %v", resp, err)
	}
	for _, nd := range c.nodes {
		ans, _, _ := listInstances(t, nd.a, "snap", "consistent")
		var ids []string
		for _, in := range ans.Instances {
			ids = append(ids, in.ID)
		}
		if len(ids) != 5 || strings.Contains(strings.Join(ids, ","), "dropped") {
			t.Errorf("%s after the restore holds %v, want kept-0..4", nd.raft, ids)
		}
	}
	// A bad snapshot is the client's error, through a follower too.
	resp, err = testutil.Request(ctx, "PUT", f.a.URL+"/v1/registry/snapshot", "not a snapshot")
	if err != nil || resp.Status != http.StatusBadRequest {
		t.Fatalf("restore garbage through a follower: %v %v", resp, err)
	}
}

// heartbeats sends a batch heartbeat for every instance of one service
// every 250 ms to the next live follower, never to the leader, so that
// every renewal must be passed on to the leader's lease table.
type heartbeats struct {
	sent atomic.Int64
	wg   sync.WaitGroup
}

func (h *heartbeats) wait() { h.wg.Wait() }

func startHeartbeats(ctx context.Context, c *testCluster, svc string, ids map[string]uint64) *heartbeats {
	h := &heartbeats{}
	var keys []map[string]string
	for id := range ids {
		keys = append(keys, map[string]string{"service": svc, "id": id})
	}
	h.wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			for j := range c.nodes {
				nd := c.nodes[(i+j)%len(c.nodes)]
				if nd.down.Load() {
					continue
				}
				probe, err := testutil.Request(ctx, "GET", nd.url()+"/healthz", nil)
				if err != nil || probe.Header.Get("X-Roster-Last-Contact") == "0" {
					continue // down, or the leader
				}
				resp, err := testutil.Request(ctx, "PUT", nd.url()+"/v1/heartbeats", map[string]any{"instances": keys})
				if err == nil && resp.Status == http.StatusOK {
					h.sent.Add(1)
					break
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return h
}

// registerTTL registers n instances of svc with a TTL and returns their
// modify indexes by ID.
func registerTTL(t *testing.T, c *testCluster, svc string, n int, ttl string) map[string]uint64 {
	t.Helper()
	modify := map[string]uint64{}
	for i := range n {
		id := fmt.Sprintf("hb-%02d", i)
		in := register(t, c.nodes[i%len(c.nodes)].a, svc, id, map[string]any{"address": "10.2.0.1", "port": 1000 + i, "ttl": ttl})
		modify[id] = in.ModifyIndex
	}
	return modify
}

// checkUntouched fails the test unless every instance of svc is there,
// passing, at the modify index it was registered at: no expiry and no
// recovery was ever written.
func checkUntouched(t *testing.T, nd *clusterNode, svc string, modify map[string]uint64) {
	t.Helper()
	ans, _, _ := listInstances(t, nd.a, svc, "status=any")
	if len(ans.Instances) != len(modify) {
		t.Errorf("%s: %d instances of %s, want %d", nd.raft, len(ans.Instances), svc, len(modify))
	}
	for _, in := range ans.Instances {
		if in.Health != "passing" || in.ModifyIndex != modify[in.ID] {
			t.Errorf("%s: TTL instance %s/%s is %s at modify index %d (registered at %d): the fail-over touched a healthy instance",
				nd.raft, svc, in.ID, in.Health, in.ModifyIndex, modify[in.ID])
		}
	}
}

// TestClusterAddRemoveServer: a fourth server joins a running cluster
// through one member, catches up and serves; a stopped server is removed
// with the CLI, and the cluster keeps taking writes.
func TestClusterAddRemoveServer(t *testing.T) {
	ctx := bound(t)
	c := startCluster(t, 3)
	li, _ := c.leader(t, 10*time.Second)
	for i := range 20 {
		register(t, c.nodes[i%3].a, "grow", fmt.Sprintf("g-%d", i), map[string]any{"address": "10.4.0.1", "port": 100 + i})
	}
	addr := freeAddrs(t, 1)[0]
	a := startAgent(t, testutil.AgentOptions{Args: []string{"-raft-addr", addr, "-join", c.nodes[(li+1)%3].raft}, NoWaitReady: true})
	a.WaitReady(t, 30*time.Second)
	nd := &clusterNode{a: a, raft: addr}
	u := a.URL
	nd.u.Store(&u)
	c.nodes = append(c.nodes, nd)
	c.allHealthy(t, 20*time.Second)
	if ans, _, _ := listInstances(t, a, "grow", ""); len(ans.Instances) != 20 {
		t.Fatalf("the new server holds %d of 20 instances once ready", len(ans.Instances))
	}
	register(t, a, "grow", "through-new", map[string]any{"address": "10.4.0.2", "port": 1})

	// Stop a follower and remove it by its raft address.
	gone := c.nodes[(li+2)%3]
	if err := gone.a.Stop(); err != nil {
		t.Fatal(err)
	}
	gone.down.Store(true)
	res := runCLI(t, ctx, "operator", "raft", "remove-peer", gone.raft, "-http-addr", c.nodes[li].a.Addr)
	if res.code != 0 || !strings.Contains(res.stdout, "removed server") {
		t.Fatalf("remove-peer: %d %s %s", res.code, res.stdout, res.stderr)
	}
	m, err := members(ctx, nd)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Members) != 3 {
		t.Fatalf("members after the removal: %+v", m.Members)
	}
	for _, mb := range m.Members {
		if mb.Address == gone.raft {
			t.Fatalf("removed server still listed: %+v", m.Members)
		}
	}
	register(t, c.nodes[li].a, "grow", "after-removal", map[string]any{"address": "10.4.0.3", "port": 2})
	if ans, _, _ := listInstances(t, a, "grow", "consistent"); len(ans.Instances) != 22 {
		t.Fatalf("after the removal the new server holds %d instances, want 22", len(ans.Instances))
	}
	res = runCLI(t, ctx, "operator", "raft", "remove-peer", "nobody", "-http-addr", a.Addr)
	if res.code == 0 || !strings.Contains(res.stderr, "no server") {
		t.Fatalf("remove-peer of an unknown server: %d %s %s", res.code, res.stdout, res.stderr)
	}
}

// TestClusterTLS: three servers whose raft port speaks TLS with client
// certificates (the -raft-tls-* flags) form a cluster and forward writes.
func TestClusterTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, ca := writeClusterTLS(t, dir)
	c := startCluster(t, 3, "-raft-tls-cert", cert, "-raft-tls-key", key, "-raft-tls-ca", ca)
	li, _ := c.leader(t, 10*time.Second)
	in := register(t, c.nodes[(li+1)%3].a, "tls", "t-1", map[string]any{"address": "10.5.0.1", "port": 1})
	ans, _, _ := listInstances(t, c.nodes[(li+2)%3].a, "tls", "consistent")
	if len(ans.Instances) != 1 || ans.Instances[0].ModifyIndex != in.ModifyIndex {
		t.Fatalf("consistent read on the other follower: %+v", ans)
	}
	// A peer without a certificate is turned away.
	conn, err := net.DialTimeout("tcp", c.nodes[li].raft, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("HGET /internal/status HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 512)
	n, _ := conn.Read(b)
	if strings.Contains(string(b[:n]), "HTTP/1.1 200") {
		t.Fatalf("a plain connection to the TLS raft port was answered: %q", b[:n])
	}
}

// writeClusterTLS writes a CA and a certificate it signs for 127.0.0.1,
// used by every server as server and client.
func writeClusterTLS(t *testing.T, dir string) (cert, key, ca string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "roster e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "server.roster"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", keyDER), write("ca.pem", "CERTIFICATE", caDER)
}
