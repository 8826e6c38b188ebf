package raftlog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/raftlog"
	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
	"github.com/rosterhq/roster/internal/testutil"
)

// agent is one node with its store and registry.
type agent struct {
	node   *raftlog.Node
	st     *store.Store
	reg    *registry.Service
	closed bool
}

func (a *agent) close(t testing.TB) {
	t.Helper()
	if a.closed {
		return
	}
	a.closed = true
	if err := a.node.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func testConfig(dir string) raftlog.Config {
	cfg := raftlog.DefaultConfig()
	cfg.Dir = dir
	cfg.NodeID = "node-1"
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ApplyTimeout = 20 * time.Second
	cfg.RaftLogOutput = io.Discard
	return cfg
}

// open starts a node without waiting for it.
func open(t testing.TB, cfg raftlog.Config) *agent {
	t.Helper()
	st := store.New()
	node, err := raftlog.Open(cfg, st)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	a := &agent{node: node, st: st}
	a.reg = registry.New(registry.Config{State: st, Log: store.NewLog(st, node), Ready: node.Ready})
	t.Cleanup(func() { a.close(t) })
	return a
}

// openReady starts a node and waits until it has restored its state and
// leads.
func openReady(t testing.TB, cfg raftlog.Config) *agent {
	t.Helper()
	a := open(t, cfg)
	ctx := testutil.Context(t, 30*time.Second)
	if err := a.node.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	testutil.WaitFor(t, ctx, "leadership", a.node.IsLeader)
	return a
}

// copyDir copies a closed node's data directory to a new one.
//
// Restart tests reopen a copy, so that they test what is on disk even if
// the lock of the WAL's meta database outlives Close again (see
// TestReopenSameDirInProcess), which would block a reopen of the same
// directory in this process for ever.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}

func (a *agent) register(t testing.TB, service, id string, mods ...func(*registry.Instance)) registry.ApplyResult {
	t.Helper()
	in := &registry.Instance{Service: service, ID: id, Address: "10.0.0.1", Port: 80}
	for _, m := range mods {
		m(in)
	}
	res, err := a.reg.Register(testutil.Context(t, 30*time.Second), in)
	if err != nil {
		t.Fatalf("Register %s/%s: %v", service, id, err)
	}
	return res
}

func persist(t testing.TB, st *store.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := st.Snapshot().Persist(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeSome applies a mix of writes: registrations, check changes and a
// deregistration that leaves a tombstone.
func writeSome(t testing.TB, a *agent, prefix string, n int) {
	t.Helper()
	ctx := testutil.Context(t, 60*time.Second)
	for i := range n {
		a.register(t, fmt.Sprintf("%s-%d", prefix, i%3), fmt.Sprintf("i-%d", i), func(in *registry.Instance) {
			in.Checks = []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute)}}
			in.Tags = []string{prefix}
		})
	}
	key := registry.Key{Service: prefix + "-0", ID: "i-0"}
	if _, err := a.reg.SetCheckStatus(ctx, key, registry.TTLCheckID, registry.Critical, "lapsed"); err != nil {
		t.Fatal(err)
	}
	a.register(t, prefix+"-tomb", "t")
	if _, err := a.reg.Deregister(ctx, registry.Key{Service: prefix + "-tomb", ID: "t"}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRequiresNodeID(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.NodeID = ""
	if _, err := raftlog.Open(cfg, store.New()); err == nil {
		t.Fatal("Open without NodeID succeeded")
	}
}

func TestOpenBadDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := raftlog.Open(testConfig(file), store.New()); err == nil {
		t.Fatal("Open over a regular file succeeded")
	}
}

func TestReopenRestoresState(t *testing.T) {
	dir := t.TempDir()
	a := openReady(t, testConfig(dir))
	writeSome(t, a, "svc", 30)
	want := persist(t, a.st)
	wantLast := a.st.LastIndex()
	wantSvc, _ := a.st.Instances("svc-1")
	a.close(t)

	// A slow election keeps the node from applying its log for a while:
	// until it has, it must not claim to be ready.
	cfg := testConfig(copyDir(t, dir))
	cfg.HeartbeatTimeout = time.Second
	b := open(t, cfg)
	if b.node.Ready() {
		t.Error("Ready() before the log on disk was applied")
	}
	if _, err := b.reg.Instances(t.Context(), registry.Query{Service: "svc-1"}, 0, 0); err != nil && !errors.Is(err, registry.ErrNotReady) {
		t.Errorf("Instances before ready: %v, want nil or ErrNotReady", err)
	}
	ctx := testutil.Context(t, 30*time.Second)
	if err := b.node.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := persist(t, b.st); !bytes.Equal(got, want) {
		t.Errorf("state after reopen differs:\n got %s\nwant %s", got, want)
	}
	if got := b.st.LastIndex(); got != wantLast {
		t.Errorf("LastIndex %d, want %d", got, wantLast)
	}
	if got, _ := b.st.Instances("svc-1"); got != wantSvc {
		t.Errorf("service index %d, want %d", got, wantSvc)
	}
	// Writes continue past the old indexes.
	testutil.WaitFor(t, ctx, "leadership", b.node.IsLeader)
	res := b.register(t, "svc-1", "new")
	if res.Index <= wantLast {
		t.Errorf("first write after reopen at %d, want past %d", res.Index, wantLast)
	}
}

// TestReopenSameDirInProcess: after Close, the data directory can be
// opened again (a restart in the same process: in-process tests, an
// embedded agent).
//
// Regression (found as a bug in this session, since fixed in node.go):
// Node.Close closed the raft-wal WAL, but raft-wal
// v0.4.0's WAL.Close does not close its meta store (the bbolt database
// wal/wal-meta.db, opened by raftwal.Open at node.go:140), so its file
// descriptor and flock stay held for the life of the process. A second
// raftlog.Open of the same directory blocks for ever inside bbolt.Open
// (flock retried every 50ms, no timeout). Open should create the meta
// store itself — mdb := &metadb.BoltMetaDB{}; raftwal.Open(walDir,
// raftwal.WithMetaStore(mdb), ...) — and Close should close it after the
// WAL. (Fixed in the working tree while these tests were written; kept
// as a regression test.)
func TestReopenSameDirInProcess(t *testing.T) {
	dir := t.TempDir()
	a := openReady(t, testConfig(dir))
	a.register(t, "svc", "a")
	want := persist(t, a.st)
	a.close(t)

	type opened struct {
		node *raftlog.Node
		st   *store.Store
		err  error
	}
	done := make(chan opened, 1)
	go func() {
		st := store.New()
		n, err := raftlog.Open(testConfig(dir), st)
		done <- opened{n, st, err}
	}()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("reopen: %v", o.err)
		}
		defer o.node.Close()
		if err := o.node.WaitReady(testutil.Context(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if got := persist(t, o.st); !bytes.Equal(got, want) {
			t.Error("state after reopen differs")
		}
	case <-time.After(15 * time.Second):
		// The goroutine stays blocked in bbolt.Open; nothing else uses dir.
		t.Fatal("raftlog.Open of a closed node's directory still blocked after 15s: the WAL's meta database lock was not released by Close")
	}
}

func TestWaitReadyHonoursContext(t *testing.T) {
	dir := t.TempDir()
	a := openReady(t, testConfig(dir))
	writeSome(t, a, "svc", 3)
	a.close(t)

	cfg := testConfig(copyDir(t, dir))
	cfg.HeartbeatTimeout = 5 * time.Second // no election within the wait below
	b := open(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := b.node.WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitReady = %v, want DeadlineExceeded", err)
	}
}

func TestSnapshotThenReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.TrailingLogs = 2
	a := openReady(t, cfg)
	writeSome(t, a, "before", 20)
	if err := a.node.TakeSnapshot(); err != nil {
		t.Fatalf("TakeSnapshot: %v", err)
	}
	if err := a.node.TakeSnapshot(); err != nil {
		t.Errorf("TakeSnapshot with nothing new: %v, want nil", err)
	}
	writeSome(t, a, "after", 10)
	want := persist(t, a.st)
	wantLast := a.st.LastIndex()
	a.close(t)

	snaps, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if err != nil || len(snaps) == 0 {
		t.Fatalf("no snapshot on disk: %v %v", snaps, err)
	}

	cfg.Dir = copyDir(t, dir)
	b := openReady(t, cfg)
	if got := persist(t, b.st); !bytes.Equal(got, want) {
		t.Errorf("state after snapshot+log reopen differs:\n got %s\nwant %s", got, want)
	}
	if b.st.LastIndex() != wantLast {
		t.Errorf("LastIndex %d, want %d", b.st.LastIndex(), wantLast)
	}
	b.close(t)

	// Once more, with the snapshot the latest thing on disk.
	cfg.Dir = copyDir(t, cfg.Dir)
	c := openReady(t, cfg)
	if err := c.node.TakeSnapshot(); err != nil {
		t.Fatal(err)
	}
	c.close(t)
	cfg.Dir = copyDir(t, cfg.Dir)
	d := openReady(t, cfg)
	if got := persist(t, d.st); !bytes.Equal(got, want) {
		t.Errorf("state after reopening from a fresh snapshot differs")
	}
}

func TestInMemory(t *testing.T) {
	a := openReady(t, testConfig(""))
	writeSome(t, a, "mem", 10)
	if _, ins := a.st.Instances("mem-1"); len(ins) != 3 {
		t.Errorf("mem-1 has %d instances, want 3", len(ins))
	}
	if err := a.node.TakeSnapshot(); err != nil {
		t.Errorf("TakeSnapshot in memory: %v", err)
	}
	a.register(t, "mem-1", "late")
	if addr, id := a.node.Leader(); addr == "" || id != "node-1" {
		t.Errorf("Leader() = %q %q", addr, id)
	}
	if time.Since(a.node.LastContact()) > time.Minute {
		t.Error("LastContact of a leader is not now")
	}
	if a.node.AppliedIndex() < a.st.LastIndex() {
		t.Errorf("AppliedIndex %d behind the store's %d", a.node.AppliedIndex(), a.st.LastIndex())
	}
	if len(a.node.Stats()) == 0 {
		t.Error("Stats() empty")
	}
	if err := a.node.Barrier(testutil.Context(t, 10*time.Second)); err != nil {
		t.Errorf("Barrier: %v", err)
	}
}

func TestRestore(t *testing.T) {
	dir := t.TempDir()
	a := openReady(t, testConfig(dir))
	writeSome(t, a, "kept", 10)
	saved := persist(t, a.st)
	savedWeb, _ := a.st.Instances("kept-1")
	writeSome(t, a, "dropped", 10)
	before := a.st.LastIndex()

	ch, release := a.st.Watch("kept-1")
	defer release()
	if err := a.node.Restore(bytes.NewReader(saved)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	// The instances are the snapshot's, indexes included (they are below
	// the log's); every service is at the restore's own index, past
	// every index seen before, so that no watcher's index goes back.
	for i := range 3 {
		svc := fmt.Sprintf("kept-%d", i)
		want := instancesOf(t, saved, svc)
		idx, got := a.st.Instances(svc)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s after Restore holds %v, want the snapshot's %v", svc, got, want)
		}
		if idx <= before {
			t.Errorf("%s index %d after restore (the snapshot's was %d), want past %d", svc, idx, savedWeb, before)
		}
	}
	if _, ins := a.st.Instances("dropped-1"); len(ins) != 0 {
		t.Errorf("dropped-1 still has %d instances", len(ins))
	}
	select {
	case <-ch:
	default:
		t.Error("watchers not woken by Restore")
	}

	// Writes continue, past every index seen before the restore.
	res := a.register(t, "after", "x")
	if res.Index <= before {
		t.Errorf("write after restore at %d, want past %d", res.Index, before)
	}
	want := persist(t, a.st)
	a.close(t)

	b := openReady(t, testConfig(copyDir(t, dir)))
	if got := persist(t, b.st); !bytes.Equal(got, want) {
		t.Errorf("state after reopening a restored node differs:\n got %s\nwant %s", got, want)
	}
}

// TestRestoreGarbage: restoring something that is not a snapshot fails
// with an error and leaves the state and the node as they were.
//
// Regression (found as a bug in this session, since fixed in node.go):
// Node.Restore handed the reader straight to
// raft.Restore. hashicorp/raft writes it into the snapshot store and then
// calls the FSM's Restore; when that fails (store.Restore rejects the
// data) raft panics in its leader goroutine ("failed to restore
// snapshot"), killing the agent — and a file snapshot store is left with
// the bad snapshot as its newest. Only server's wrapper validates first
// (store.Validate); Node.Restore itself must not take the process down on
// bad input: it should spool and store.Validate the data before calling
// raft.Restore (or document and enforce that callers must). The test runs
// the restore in a child process, since the panic cannot be recovered.
// (Fixed in the working tree while these tests were written — Restore now
// validates and returns ErrInvalidSnapshot; kept as a regression test.)
func TestRestoreGarbage(t *testing.T) {
	if os.Getenv("RAFTLOG_RESTORE_GARBAGE_CHILD") == "1" {
		restoreGarbageChild(t)
		return
	}
	ctx := testutil.Context(t, 60*time.Second)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRestoreGarbage$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "RAFTLOG_RESTORE_GARBAGE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("restoring garbage crashed or failed the node (%v):\n%s", err, lastLines(string(out), 25))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func restoreGarbageChild(t *testing.T) {
	a := openReady(t, testConfig(t.TempDir()))
	writeSome(t, a, "svc", 5)
	want := persist(t, a.st)
	for _, garbage := range []string{"this is not a snapshot", `{"version":1,"indexes":{}}` + "\n{broken"} {
		if err := a.node.Restore(strings.NewReader(garbage)); !errors.Is(err, raftlog.ErrInvalidSnapshot) {
			t.Errorf("Restore of %q = %v, want ErrInvalidSnapshot", garbage, err)
		}
		if got := persist(t, a.st); !bytes.Equal(got, want) {
			t.Error("a failed Restore changed the state")
		}
	}
	// The node still works.
	a.register(t, "svc-1", "after")
}

func TestConcurrentAppends(t *testing.T) {
	const (
		writers = 64
		each    = 50
	)
	dir := t.TempDir()
	a := openReady(t, testConfig(dir))
	ctx := testutil.Context(t, 120*time.Second)

	var (
		mu      sync.Mutex
		indexes = map[uint64]string{}
		wg      sync.WaitGroup
		errs    = make(chan error, writers)
	)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%02d-%03d", w, i)
				res, err := a.reg.Register(ctx, &registry.Instance{Service: fmt.Sprintf("svc-%d", w%4), ID: id, Address: "10.0.0.1", Port: 80})
				if err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
					return
				}
				mu.Lock()
				if prev, dup := indexes[res.Index]; dup {
					mu.Unlock()
					errs <- fmt.Errorf("%s and %s acknowledged at the same index %d", prev, id, res.Index)
					return
				}
				indexes[res.Index] = id
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	check := func(st *store.Store) {
		t.Helper()
		if got := st.Stats().Instances; got != writers*each {
			t.Errorf("%d instances, want %d", got, writers*each)
		}
		for w := range writers {
			for i := range each {
				key := registry.Key{Service: fmt.Sprintf("svc-%d", w%4), ID: fmt.Sprintf("w%02d-%03d", w, i)}
				if _, err := st.Instance(key); err != nil {
					t.Fatalf("acknowledged %v missing: %v", key, err)
				}
			}
		}
	}
	check(a.st)
	want := persist(t, a.st)
	a.close(t)
	b := openReady(t, testConfig(copyDir(t, dir)))
	check(b.st)
	if got := persist(t, b.st); !bytes.Equal(got, want) {
		t.Error("state after reopen differs")
	}
}

func TestAppendAfterClose(t *testing.T) {
	a := openReady(t, testConfig(""))
	a.register(t, "svc", "a")
	a.close(t)
	_, err := a.reg.Register(testutil.Context(t, 10*time.Second), &registry.Instance{Service: "svc", ID: "b", Address: "10.0.0.1", Port: 80})
	if !errors.Is(err, registry.ErrNotReady) && !errors.Is(err, registry.ErrNotLeader) {
		t.Errorf("Register after Close = %v, want ErrNotReady or ErrNotLeader", err)
	}
}

func TestAppendExpiredContext(t *testing.T) {
	a := openReady(t, testConfig(""))
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	entry, err := store.Encode(&registry.DeregisterOp{Key: registry.Key{Service: "svc", ID: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.node.Append(ctx, entry); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Append with an expired deadline = %v, want DeadlineExceeded", err)
	}
}

func TestAppendReturnsOpError(t *testing.T) {
	a := openReady(t, testConfig(""))
	_, err := a.reg.Deregister(testutil.Context(t, 10*time.Second), registry.Key{Service: "svc", ID: "nope"})
	if !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Deregister of unknown = %v, want ErrNotFound", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig("")
	cfg.Metrics = reg
	a := openReady(t, cfg)
	a.register(t, "svc", "a")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{"roster_log_apply_duration_seconds", "roster_log_applied_index", "roster_log_leader"} {
		if !got[name] {
			t.Errorf("metric %s not registered (have %v)", name, got)
		}
	}
}

// TestWaitApplied: WaitApplied returns once the store reaches the index,
// honours its context, and ReadIndex on a single leader is its index.
func TestWaitApplied(t *testing.T) {
	a := openReady(t, testConfig(""))
	ctx := testutil.Context(t, 20*time.Second)
	res, err := a.reg.Register(ctx, &registry.Instance{Service: "web", ID: "w1", Address: "10.0.0.1", Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.node.WaitApplied(ctx, res.Index); err != nil {
		t.Fatalf("WaitApplied(%d) after the write: %v", res.Index, err)
	}
	idx, err := a.node.ReadIndex(ctx)
	if err != nil || idx < res.Index {
		t.Fatalf("ReadIndex = %d, %v; want at least %d", idx, err, res.Index)
	}
	if err := a.node.Consistent(ctx); err != nil {
		t.Fatalf("Consistent on a single leader: %v", err)
	}
	// A later index arrives with the next write.
	done := make(chan error, 1)
	go func() { done <- a.node.WaitApplied(ctx, res.Index+1) }()
	if _, err := a.reg.Register(ctx, &registry.Instance{Service: "web", ID: "w2", Address: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("WaitApplied for the next write: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := a.node.WaitApplied(short, res.Index+1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied past the end = %v, want a deadline error", err)
	}
	servers, err := a.node.Servers()
	if err != nil || len(servers) != 1 || servers[0].ID != "node-1" || !servers[0].Voter {
		t.Fatalf("Servers = %+v, %v", servers, err)
	}
	// One voter: nothing to hand leadership to.
	if err := a.node.TransferLeadership(ctx); err != nil {
		t.Fatalf("TransferLeadership alone: %v", err)
	}
}
