package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/rosterhq/roster/internal/testutil"
)

// The fault suite's harness. A faultRun is one scenario: a cluster (on
// loopback, or in network namespaces for partitions), clients running a
// mixed workload through every agent, recorded as a porcupine history,
// and at the end two checks: the history is linearizable (linModel), and
// once the fault is healed every agent holds the same state, the one the
// history implies (the final state is read on every agent and added to
// the history as reads after everything else). On failure the history
// (porcupine's HTML visualisation and a text listing) and every agent's
// logs are written to $ROSTER_FAULT_DIR, or a t.TempDir().
//
// The scenarios are in fault_cases_test.go; test/e2e/README.md says how to
// run one, how to soak them, and how to read a failure.

// faultService is the service every fault workload writes.
const faultService = "fault"

// Workload shape: clients per server count, and the keys they share.
const (
	faultClients3 = 6
	faultClients5 = 8
	faultKeys     = 5
)

// faultOptions shapes a faultRun's cluster.
type faultOptions struct {
	servers int
	// netns runs every agent in its own network namespace (root only; the
	// test is skipped otherwise), so lab.split can partition them.
	netns bool
	// dataDirs, when set, are the agents' data directories.
	dataDirs []string
	// tmpfs, when set, is the size of a tmpfs mounted as each agent's
	// data directory (root only; the test is skipped otherwise).
	tmpfs string
	// args are extra agent flags.
	args []string
}

type faultRun struct {
	t     *testing.T
	ctx   context.Context // the test's, bounded by testTimeout
	c     *testCluster
	lab   *netnsLab // nil unless netns
	keys  []string
	start time.Time
	seed  uint64

	mu       sync.Mutex
	ops      []porcupine.Operation
	events   []porcupine.Annotation
	info     *porcupine.LinearizationInfo // set when the check ran
	outcomes map[string]int               // "register 201" → count, for the log
	tmp      string                       // artifacts without ROSTER_FAULT_DIR

	acked   atomic.Int64 // writes answered with success
	clients int
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// newFault starts the cluster (and, with ROSTER_FAULT_HOG=1, a busy
// neighbour process), waits for a leader, and arranges for the artifacts
// to be written if the test fails.
func newFault(t *testing.T, o faultOptions) *faultRun {
	t.Helper()
	f := &faultRun{t: t, ctx: bound(t), start: time.Now(), seed: uint64(time.Now().UnixNano()), outcomes: map[string]int{}, tmp: t.TempDir()}
	for i := range faultKeys {
		f.keys = append(f.keys, fmt.Sprintf("k%d", i))
	}
	startHog(t)
	if o.tmpfs != "" {
		for range o.servers {
			dir, why := tmpfsDir(t, o.tmpfs)
			if dir == "" {
				t.Skipf("%s; skipped", why)
			}
			o.dataDirs = append(o.dataDirs, dir)
		}
	}
	if o.netns {
		f.lab = newNetnsLab(t, o.servers)
		f.c = startLabCluster(t, f.lab, o.servers, o.args...)
	} else {
		f.c = startClusterIn(t, o.servers, o.dataDirs, o.args...)
	}
	t.Cleanup(f.writeArtifacts)
	f.leader()
	t.Logf("scenario started at %s; cluster of %d up %v later; workload seed %d",
		f.start.UTC().Format("15:04:05.000"), o.servers, f.since(), f.seed)
	return f
}

// startClusterIn is startCluster with optional data directories.
func startClusterIn(t *testing.T, n int, dataDirs []string, extra ...string) *testCluster {
	t.Helper()
	addrs := freeAddrs(t, n)
	c := &testCluster{}
	for i := range n {
		others := slices.Delete(slices.Clone(addrs), i, i+1)
		args := append([]string{"-raft-addr", addrs[i], "-bootstrap-expect", strconv.Itoa(n), "-join", strings.Join(others, ",")}, extra...)
		opts := testutil.AgentOptions{Args: args, NoWaitReady: true, ReadyTimeout: 30 * time.Second}
		if dataDirs != nil {
			opts.DataDir = dataDirs[i]
		}
		a := startAgent(t, opts)
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

// startLabCluster starts n agents, agent i in the lab's namespace i.
func startLabCluster(t *testing.T, lab *netnsLab, n int, extra ...string) *testCluster {
	t.Helper()
	bin := testutil.BuildBinary(t)
	c := &testCluster{}
	for i := range n {
		raft := lab.ips[i] + ":8300"
		var join []string
		for j := range n {
			if j != i {
				join = append(join, lab.ips[j]+":8300")
			}
		}
		args := append([]string{"-http-addr", lab.ips[i] + ":0", "-raft-addr", raft, "-bootstrap-expect", strconv.Itoa(n), "-join", strings.Join(join, ",")}, extra...)
		a := testutil.StartAgent(t, lab.wrapper(i, bin), testutil.AgentOptions{Args: args, NoWaitReady: true, ReadyTimeout: 30 * time.Second})
		nd := &clusterNode{a: a, raft: raft}
		u := a.URL
		nd.u.Store(&u)
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.a.WaitReady(t, 30*time.Second)
	}
	return c
}

// since is the time since the run started, in the history's clock.
func (f *faultRun) since() time.Duration { return time.Since(f.start).Round(time.Millisecond) }

func (f *faultRun) now() int64 { return time.Since(f.start).Nanoseconds() }

// event notes a fault step in the log and on the visualisation.
func (f *faultRun) event(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.t.Logf("%v: %s", f.since(), msg)
	f.mu.Lock()
	f.events = append(f.events, porcupine.Annotation{Tag: "fault", Start: f.now(), Description: msg, BackgroundColor: "#fbe3a1"})
	f.mu.Unlock()
}

// leader waits until the live agents agree on a leader and returns its
// index.
func (f *faultRun) leader() int {
	f.t.Helper()
	return f.leaderAmong(nil, "")
}

// leaderAmong waits until the agents idx (nil: every live agent) name one
// leader among themselves that is not notID, and returns its index. Each
// question is bounded, so an agent that cannot answer only delays it.
func (f *faultRun) leaderAmong(idx []int, notID string) int {
	f.t.Helper()
	if idx == nil {
		for i, nd := range f.c.nodes {
			if !nd.down.Load() {
				idx = append(idx, i)
			}
		}
	}
	found := -1
	testutil.Eventually(f.t, 20*time.Second, func() (bool, string) {
		ids := map[string]bool{}
		var addr string
		for _, i := range idx {
			ctx, cancel := context.WithTimeout(f.ctx, 2*time.Second)
			m, err := members(ctx, f.c.nodes[i])
			cancel()
			if err != nil {
				return false, err.Error()
			}
			ids[m.Leader] = true
			for _, mb := range m.Members {
				if mb.ID == m.Leader {
					addr = mb.Address
				}
			}
		}
		if len(ids) != 1 || ids[""] || ids[notID] {
			return false, fmt.Sprintf("agents %v name leaders %v", idx, ids)
		}
		for _, i := range idx {
			if f.c.nodes[i].raft == addr {
				found = i
				return true, ""
			}
		}
		return false, "leader " + addr + " is not among agents " + fmt.Sprint(idx)
	})
	return found
}

// leaderID is the raft ID the agent i names as leader ("" if none).
func (f *faultRun) leaderID(i int) string {
	ctx, cancel := context.WithTimeout(f.ctx, 2*time.Second)
	defer cancel()
	m, err := members(ctx, f.c.nodes[i])
	if err != nil {
		return ""
	}
	return m.Leader
}

// load starts the clients: each picks an agent that is not down and an
// operation at random (40% register, 15% deregister, 15% heartbeat, 30%
// consistent read) on one of the shared keys, and records it.
func (f *faultRun) load() {
	f.clients = faultClients3
	if len(f.c.nodes) > 3 {
		f.clients = faultClients5
	}
	ctx, stop := context.WithCancel(f.ctx)
	f.stop = stop
	for cl := range f.clients {
		f.wg.Go(func() {
			rng := rand.New(rand.NewPCG(f.seed, uint64(cl)))
			for i := 0; ctx.Err() == nil; i++ {
				ni := rng.IntN(len(f.c.nodes))
				if f.c.nodes[ni].down.Load() {
					backoff(ctx, 5*time.Millisecond)
					continue
				}
				in := linInput{key: f.keys[rng.IntN(len(f.keys))]}
				switch r := rng.IntN(20); {
				case r < 8:
					in.kind, in.value = linRegister, fmt.Sprintf("10.%d.%d.%d", cl, (i>>8)&255, i&255)
				case r < 11:
					in.kind = linDeregister
				case r < 14:
					in.kind = linHeartbeat
				default:
					in.kind = linRead
				}
				f.do(ctx, cl, ni, in)
			}
		})
	}
}

// backoff waits d or until ctx ends: a client's pause before it looks for
// a live agent again, not a wait for state.
func backoff(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// do runs one operation through agent ni and records it; it returns the
// output and whether it was recorded.
func (f *faultRun) do(ctx context.Context, client, ni int, in linInput) (linOutput, string, bool) {
	call := f.now()
	out, what, keep := faultDo(ctx, f.c.nodes[ni].url(), in)
	ret := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcomes[kindName(in.kind)+" "+what]++
	if !keep {
		return out, what, false
	}
	if out.ok && (in.kind == linRegister || in.kind == linDeregister) {
		f.acked.Add(1)
	}
	if out.unknown {
		ret = -1 // past the end of the history, set by check
	}
	f.ops = append(f.ops, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret,
		Metadata: fmt.Sprintf("agent %d: %s", ni, what)})
	return out, what, true
}

func kindName(k linKind) string {
	return [...]string{linRegister: "register", linDeregister: "deregister", linRead: "read", linHeartbeat: "heartbeat"}[k]
}

// faultDo sends one operation to the agent at base. what describes the
// answer (status and error text); keep is false for a read or heartbeat
// whose answer says nothing about the instance. A write refused with a
// definite error (400, 409, or 503 with Retry-After: not the leader, not
// ready) did not happen; any other failure is of unknown outcome.
func faultDo(ctx context.Context, base string, in linInput) (out linOutput, what string, keep bool) {
	u := base + "/v1/services/" + faultService + "/instances/" + in.key
	var method string
	var body any
	switch in.kind {
	case linRegister:
		method, body = "PUT", map[string]any{"address": in.value, "port": 80, "ttl": "30s"}
	case linDeregister:
		method = "DELETE"
	case linHeartbeat:
		method, u = "PUT", u+"/heartbeat"
	default:
		method, u = "GET", u+"?consistent"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := testutil.Request(ctx, method, u, body)
	if err != nil {
		write := in.kind == linRegister || in.kind == linDeregister
		return linOutput{unknown: write}, "no answer", write
	}
	what = strconv.Itoa(resp.Status)
	if resp.Status >= 300 {
		var e errorAnswer
		_ = json.Unmarshal(resp.Body, &e)
		what += " " + e.Error
	}
	switch in.kind {
	case linRead:
		switch resp.Status {
		case http.StatusOK:
			var got instance
			if json.Unmarshal(resp.Body, &got) != nil {
				return linOutput{}, what + " (bad body)", false
			}
			return linOutput{ok: true, value: got.Address}, what, true
		case http.StatusNotFound:
			return linOutput{notFound: true}, what, true
		}
		return linOutput{}, what, false
	case linHeartbeat:
		switch resp.Status {
		case http.StatusNoContent:
			return linOutput{ok: true}, what, true
		case http.StatusNotFound:
			return linOutput{notFound: true}, what, true
		}
		return linOutput{}, what, false
	}
	switch {
	case resp.Status == http.StatusOK || resp.Status == http.StatusCreated || resp.Status == http.StatusNoContent:
		return linOutput{ok: true}, what, true
	case in.kind == linDeregister && resp.Status == http.StatusNotFound:
		return linOutput{notFound: true}, what, true
	case resp.Status == http.StatusBadRequest || resp.Status == http.StatusConflict ||
		resp.Status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		return linOutput{failed: true}, what, true
	}
	return linOutput{unknown: true}, what, true
}

// waitOps waits until n more operations are recorded (the workload makes
// progress), failing the test after timeout.
func (f *faultRun) waitOps(n int, timeout time.Duration) {
	f.t.Helper()
	f.mu.Lock()
	want := len(f.ops) + n
	f.mu.Unlock()
	testutil.Eventually(f.t, timeout, func() (bool, string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.ops) >= want, fmt.Sprintf("%d of %d operations recorded", len(f.ops), want)
	})
}

// waitAcked waits until n more writes are acknowledged: the cluster takes
// writes. It fails the test after timeout.
func (f *faultRun) waitAcked(n int, timeout time.Duration) {
	f.t.Helper()
	want := f.acked.Load() + int64(n)
	testutil.Eventually(f.t, timeout, func() (bool, string) {
		got := f.acked.Load()
		return got >= want, fmt.Sprintf("%d of %d writes acknowledged", got, want)
	})
}

// kill sends SIGKILL to agent i; the clients stop using it.
func (f *faultRun) kill(i int) {
	f.c.nodes[i].down.Store(true)
	f.c.nodes[i].a.Kill()
	f.event("kill -9 agent %d", i)
}

// restart starts agent i again and waits until it is ready.
func (f *faultRun) restart(i int) {
	f.t.Helper()
	f.c.nodes[i].restart(f.t)
	f.event("agent %d restarted and ready", i)
}

// finish stops the workload once the cluster is whole again (every agent
// up, one leader, writes acknowledged), waits until every agent holds
// the same state, and checks the history with that state read at its end.
func (f *faultRun) finish() {
	f.t.Helper()
	for i, nd := range f.c.nodes {
		if nd.down.Load() {
			f.t.Fatalf("agent %d is still down at the end of the scenario", i)
		}
	}
	f.leader()
	f.waitAcked(50, 20*time.Second)
	f.stop()
	f.wg.Wait()
	final := f.converged()
	f.check(final)
}

// converged waits until every agent's own (not ?consistent) list of the
// workload's service is the same, and returns it: key → address.
func (f *faultRun) converged() map[string]string {
	f.t.Helper()
	var states []map[string]string
	msg, ok := pollFor(20*time.Second, func() bool {
		states = states[:0]
		for _, nd := range f.c.nodes {
			st, err := agentState(f.ctx, nd)
			if err != nil {
				return false
			}
			states = append(states, st)
		}
		for _, st := range states[1:] {
			if !mapsEqual(st, states[0]) {
				return false
			}
		}
		return true
	})
	if !ok {
		var b strings.Builder
		for i, st := range states {
			fmt.Fprintf(&b, "\n  agent %d: %v", i, st)
		}
		f.t.Fatalf("the agents did not converge within %s after the fault was healed:%s", msg, b.String())
	}
	f.event("every agent holds %v", states[0])
	return states[0]
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// agentState is the workload's instances as agent nd holds them.
func agentState(ctx context.Context, nd *clusterNode) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := testutil.Request(ctx, "GET", nd.url()+"/v1/services/"+faultService+"/instances?status=any", nil)
	if err != nil {
		return nil, err
	}
	st := map[string]string{}
	switch resp.Status {
	case http.StatusNotFound:
		return st, nil
	case http.StatusOK:
	default:
		return nil, fmt.Errorf("list: %s", resp)
	}
	var ans instancesAnswer
	if err := json.Unmarshal(resp.Body, &ans); err != nil {
		return nil, err
	}
	for _, in := range ans.Instances {
		st[in.ID] = in.Address
	}
	return st, nil
}

// check adds the converged state as a read of every key after every
// operation, then checks the history. An unknown-outcome write ends after
// those reads: it may have taken effect at any point, or never.
func (f *faultRun) check(final map[string]string) {
	f.t.Helper()
	f.mu.Lock()
	at := f.now()
	keys := slices.Clone(f.keys)
	for _, op := range f.ops {
		if k := op.Input.(linInput).key; !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		out := linOutput{notFound: true}
		if v, ok := final[k]; ok {
			out = linOutput{ok: true, value: v}
		}
		f.ops = append(f.ops, porcupine.Operation{ClientId: f.clients, Input: linInput{kind: linRead, key: k}, Output: out,
			Call: at, Return: at + 1, Metadata: "the state every agent holds once healed"})
	}
	end := at + 2
	unknown := 0
	for i := range f.ops {
		if f.ops[i].Return < 0 {
			f.ops[i].Return = end
			unknown++
		}
	}
	ops := f.ops
	f.mu.Unlock()
	var counts []string
	for k, n := range f.outcomes {
		counts = append(counts, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(counts)
	f.t.Logf("history: %d operations by %d clients (%d of unknown outcome, %d writes acknowledged); answers: %s",
		len(ops), f.clients, unknown, f.acked.Load(), strings.Join(counts, ", "))
	if len(ops) < 200 {
		f.t.Fatalf("only %d operations recorded; the check proves little", len(ops))
	}
	res, info := porcupine.CheckOperationsVerbose(linModel, ops, 30*time.Second)
	f.mu.Lock()
	f.info = &info
	f.mu.Unlock()
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		f.t.Logf("linearizability check timed out after 30s: inconclusive")
	default:
		// Say whether the fault or the healed state broke it, and where.
		if porcupine.CheckOperationsTimeout(linModel, ops[:len(ops)-len(keys)], 30*time.Second) == porcupine.Illegal {
			bad := f.illegalKeys(ops[:len(ops)-len(keys)])
			f.t.Errorf("the history is not linearizable (already without the healed state); keys that break it: %v", bad)
			f.logWitness(ops[:len(ops)-len(keys)], bad[0])
		} else {
			f.t.Errorf("the healed state (%v) is not one the history allows: an acknowledged write is missing, or a refused one applied", final)
		}
	}
}

// illegalKeys lists the keys whose own operations are not linearizable.
func (f *faultRun) illegalKeys(ops []porcupine.Operation) []string {
	var bad []string
	for _, part := range linModel.Partition(ops) {
		if porcupine.CheckOperationsTimeout(linModel, part, 10*time.Second) == porcupine.Illegal {
			bad = append(bad, part[0].Input.(linInput).key)
		}
	}
	return bad
}

// logWitness logs a small piece of key's history that shows the
// violation. Operations that only observe (reads, heartbeats, a 404
// deregister, a refused write) are dropped one by one while the rest
// stays illegal (dropping an observer cannot make a history illegal, so
// what is left is a true witness; writes stay, as dropping one could); it
// then prints the observers left and the writes around them.
func (f *faultRun) logWitness(ops []porcupine.Operation, key string) {
	var part []porcupine.Operation
	for _, op := range ops {
		if op.Input.(linInput).key == key {
			part = append(part, op)
		}
	}
	observes := func(op porcupine.Operation) bool {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		return in.kind == linRead || in.kind == linHeartbeat || out.failed || in.kind == linDeregister && out.notFound
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := len(part) - 1; i >= 0 && time.Now().Before(deadline); i-- {
		if !observes(part[i]) {
			continue
		}
		try := slices.Delete(slices.Clone(part), i, i+1)
		if porcupine.CheckOperationsTimeout(linModel, try, time.Second) == porcupine.Illegal {
			part = try
		}
	}
	from, to := int64(-1), int64(0)
	for _, op := range part {
		if observes(op) {
			if from < 0 || op.Call < from {
				from = op.Call
			}
			to = max(to, op.Return)
		}
	}
	from -= int64(50 * time.Millisecond)
	var b strings.Builder
	left := 0
	for _, op := range part {
		if !observes(op) && (op.Return < from || op.Call > to) {
			left++
			continue
		}
		fmt.Fprintf(&b, "\n  %10.3fms..%10.3fms  client %d  %s  (%s)", float64(op.Call)/1e6, float64(op.Return)/1e6, op.ClientId,
			linModel.DescribeOperation(op.Input, op.Output), op.Metadata)
	}
	f.t.Logf("violation on %s: the observers that break it and the writes from 50ms before them (%d other writes not shown):%s", key, left, b.String())
}

// writeArtifacts, when the test failed, writes the visualisation of the
// history, the history as text and every agent's logs, and logs where.
func (f *faultRun) writeArtifacts() {
	if !f.t.Failed() {
		return
	}
	dir := f.tmp
	if root := os.Getenv("ROSTER_FAULT_DIR"); root != "" {
		name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(f.t.Name(), "_")
		dir = filepath.Join(root, name+"-"+time.Now().UTC().Format("20060102T150405.000"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			f.t.Logf("fault artifacts: %v", err)
			return
		}
	}
	f.mu.Lock()
	ops := slices.Clone(f.ops)
	info := f.info
	events := slices.Clone(f.events)
	f.mu.Unlock()
	var files []string
	if info != nil {
		info.AddAnnotations(events)
		p := filepath.Join(dir, "history.html")
		if err := porcupine.VisualizePath(linModel, *info, p); err == nil {
			files = append(files, p)
		} else {
			f.t.Logf("visualise: %v", err)
		}
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	var b strings.Builder
	for _, ev := range events {
		fmt.Fprintf(&b, "%12.3fms  ---- %s\n", float64(ev.Start)/1e6, ev.Description)
	}
	for _, op := range ops {
		fmt.Fprintf(&b, "%12.3fms %12.3fms  client %d  %s  (%s)\n", float64(op.Call)/1e6, float64(op.Return)/1e6, op.ClientId,
			linModel.DescribeOperation(op.Input, op.Output), op.Metadata)
	}
	write := func(name, s string) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			f.t.Logf("fault artifacts: %v", err)
			return
		}
		files = append(files, p)
	}
	write("history.txt", b.String())
	for i, nd := range f.c.nodes {
		write(fmt.Sprintf("agent-%d.log", i), nd.a.Logs())
	}
	where := "(removed when the test ends; set ROSTER_FAULT_DIR to keep them)"
	if os.Getenv("ROSTER_FAULT_DIR") != "" {
		where = ""
	}
	f.t.Logf("fault artifacts in %s %s:\n  %s", dir, where, strings.Join(files, "\n  "))
}

// hold lets the fault last d (a scenario's chosen duration, not a wait
// for state), or until the test's context ends.
func (f *faultRun) hold(d time.Duration) {
	if d > 0 {
		backoff(f.ctx, d)
	}
}

// leaderNow is the index of the agent agent 0..n name as leader right now
// (the first that answers within a second), or -1.
func (f *faultRun) leaderNow() int {
	for _, nd := range f.c.nodes {
		ctx, cancel := context.WithTimeout(f.ctx, time.Second)
		m, err := members(ctx, nd)
		cancel()
		if err != nil || m.Leader == "" {
			continue
		}
		for _, mb := range m.Members {
			if mb.ID == m.Leader {
				for i, n := range f.c.nodes {
					if n.raft == mb.Address {
						return i
					}
				}
			}
		}
	}
	return -1
}
