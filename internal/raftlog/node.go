// Package raftlog makes the registry's writes durable: a hashicorp/raft node
// whose log lives in raft-wal (one fsync per batch of entries, so concurrent
// writes share a sync), with periodic snapshots and log compaction, and an
// FSM adapter that hands committed entries to the store in batches.
//
// It knows bytes and durability, not what entries mean. A single agent is
// a one-voter cluster; adding peers (the cluster work) changes only how the
// node is configured and which transport it uses, not Append.
package raftlog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// Config configures a Node.
type Config struct {
	// Dir holds the log (wal/) and snapshots (snapshots/). Empty keeps
	// everything in memory (dev mode): nothing survives a restart.
	Dir string
	// NodeID names this node in the raft configuration.
	NodeID string
	// SnapshotInterval is how often the node checks whether to snapshot;
	// SnapshotThreshold is how many new entries make it take one;
	// TrailingLogs is how many entries stay in the log after a snapshot.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// RetainSnapshots is how many snapshots are kept on disk.
	RetainSnapshots int
	// HeartbeatTimeout bounds how long a follower waits before an
	// election; a single node waits between one and two of these at
	// start before it serves writes.
	HeartbeatTimeout time.Duration
	// ApplyTimeout bounds how long a write waits to be enqueued and
	// applied when its context has no deadline.
	ApplyTimeout time.Duration
	// MaxBatch is the most entries written (and synced) together.
	MaxBatch int
	Logger   *slog.Logger
	// RaftLogOutput receives hashicorp/raft's own log lines; nil means
	// standard error.
	RaftLogOutput io.Writer
	RaftLogLevel  string
	// Metrics registers the node's metrics; nil registers none.
	Metrics prometheus.Registerer

	// Stream carries raft's RPCs to and from peers (cluster mode); nil
	// keeps a single node on an in-memory transport.
	Stream raft.StreamLayer
	// AwaitBootstrap, with a Stream, leaves a new data directory without
	// a configuration: the node waits to be added to a cluster by its
	// leader, or for BootstrapCluster. Otherwise a new data directory is
	// bootstrapped as a one-voter cluster.
	AwaitBootstrap bool
	// CommitTimeout is how soon a leader with nothing new to send tells
	// followers the commit index (raft's CommitTimeout): it bounds how
	// long a follower lags a write it forwarded.
	CommitTimeout time.Duration
	// RecoverFromSnapshot accepts losing writes to start from the latest
	// snapshot when the log is missing, corrupt, or does not follow the
	// snapshot; without it Open refuses such a data directory (see
	// ErrDataDir). What is lost is logged.
	RecoverFromSnapshot bool
}

// DefaultConfig returns the defaults for a single durable node.
func DefaultConfig() Config {
	return Config{
		SnapshotInterval:  10 * time.Second,
		SnapshotThreshold: 16384,
		TrailingLogs:      10240,
		RetainSnapshots:   2,
		HeartbeatTimeout:  500 * time.Millisecond,
		ApplyTimeout:      30 * time.Second,
		MaxBatch:          512,
		RaftLogLevel:      "warn",
		CommitTimeout:     5 * time.Millisecond,
	}
}

// Node is one raft node applying to a store.
type Node struct {
	id   string
	dir  string // the data directory; empty in memory
	raft *raft.Raft
	fsm  *fsm
	logs io.Closer
	// entries is raft's log store: ReadIndex looks up entry types in it.
	entries raft.LogStore
	trans   raft.Transport
	log     *slog.Logger
	timeout time.Duration
	// bootIndex is the last log index on disk at start.
	bootIndex uint64
	// ready is set once a barrier has passed since start: every entry
	// on disk then is applied to the store.
	ready     atomic.Bool
	closed    chan struct{}
	applyTime prometheus.Histogram

	// ctx ends when the node closes; background work uses it.
	ctx    context.Context
	cancel context.CancelFunc
	// fwd carries writes and read barriers to the leader while this
	// node follows; nil on a single node.
	fwd atomic.Pointer[forwarderBox]
	// barrierTerm is the term in which a barrier last passed on this
	// node as leader: from then on every entry of earlier terms is
	// applied here.
	barrierTerm atomic.Uint64
	// writes and heartbeat serve Serving.
	writes    writeHealth
	heartbeat time.Duration
}

var _ store.Appender = (*Node)(nil)

// Open starts a node over st, restoring st from the latest snapshot and
// log on disk. A new data directory is bootstrapped as a one-voter cluster.
func Open(cfg Config, st *store.Store) (*Node, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("raftlog: NodeID is required")
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	out := cfg.RaftLogOutput
	if out == nil {
		out = os.Stderr
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.LevelFromString(cfg.RaftLogLevel), Output: out})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hl
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.HeartbeatTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	rc.MaxAppendEntries = cfg.MaxBatch
	rc.BatchApplyCh = true
	rc.NoLegacyTelemetry = true
	if cfg.CommitTimeout >= time.Millisecond {
		rc.CommitTimeout = cfg.CommitTimeout
	}

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
		closer io.Closer = io.NopCloser(nil)
	)
	if cfg.Dir == "" {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		d, err := openDisk(cfg, hl, lg)
		if err != nil {
			return nil, err
		}
		logs, stable, snaps, closer = d.wal, d.wal, d.snaps, d
		removeSpools(cfg.Dir, lg)
	}
	var (
		addr  raft.ServerAddress
		trans raft.Transport
	)
	if cfg.Stream != nil {
		nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: cfg.Stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl.Named("net"),
		})
		addr, trans = nt.LocalAddr(), nt
	} else {
		addr, trans = raft.NewInmemTransport(raft.ServerAddress(cfg.NodeID))
	}
	closeTrans := func() {
		if c, ok := trans.(io.Closer); ok {
			c.Close()
		}
	}

	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		closeTrans()
		closer.Close()
		return nil, fmt.Errorf("raftlog: inspect state: %w", err)
	}
	if !existing && (cfg.Stream == nil || !cfg.AwaitBootstrap) {
		boot := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: addr, Suffrage: raft.Voter}}}
		if err := raft.BootstrapCluster(rc, logs, stable, snaps, trans, boot); err != nil {
			closeTrans()
			closer.Close()
			return nil, fmt.Errorf("raftlog: bootstrap: %w", err)
		}
	}
	bootIndex, err := logs.LastIndex()
	if err != nil {
		closeTrans()
		closer.Close()
		return nil, fmt.Errorf("raftlog: last index: %w", err)
	}

	f := &fsm{st: st}
	r, err := raft.NewRaft(rc, f, logs, stable, snaps, trans)
	if err != nil {
		closeTrans()
		closer.Close()
		return nil, fmt.Errorf("raftlog: start: %w", err)
	}
	timeout := cfg.ApplyTimeout
	if timeout <= 0 {
		timeout = DefaultConfig().ApplyTimeout
	}
	n := &Node{id: cfg.NodeID, dir: cfg.Dir, raft: r, fsm: f, logs: closer, entries: logs, trans: trans, log: lg, timeout: timeout, bootIndex: bootIndex, closed: make(chan struct{}),
		heartbeat: rc.HeartbeatTimeout}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	go n.awaitReady()
	n.applyTime = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "roster", Subsystem: "log",
		Name: "apply_duration_seconds", Help: "Time from a write entering the log to its being durable and applied.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)})
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(n.applyTime,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "log",
				Name: "applied_index", Help: "Last log index applied to the registry."}, func() float64 { return float64(r.AppliedIndex()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "roster", Subsystem: "log",
				Name: "leader", Help: "1 while this agent is the leader."}, func() float64 {
				if r.State() == raft.Leader {
					return 1
				}
				return 0
			}))
	}
	lg.Info("raft log opened", "dir", cfg.Dir, "node", cfg.NodeID, "last_index", bootIndex, "existing", existing)
	return n, nil
}

// Ready reports whether the node has applied every entry that was on disk
// when it started: until then the store may be missing acknowledged writes.
// (raft's AppliedIndex cannot tell: it moves when entries are queued for
// the state machine, not when they are applied.)
func (n *Node) Ready() bool { return n.ready.Load() }

// awaitReady waits until the state here is caught up. A leader issues a
// barrier: it returns once every entry before it, so every entry on disk
// at start, is applied. A follower asks the leader for its read index
// (see ReadIndex) and waits until it has applied that far: it then holds
// every write acknowledged before it started.
func (n *Node) awaitReady() {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	var retryAt time.Time
	for {
		if n.raft.State() == raft.Leader {
			err := n.raft.Barrier(n.timeout).Error()
			if err == nil {
				n.ready.Store(true)
				n.log.Info("state restored", "applied_index", n.raft.AppliedIndex(), "boot_index", n.bootIndex)
				return
			}
			n.log.Warn("barrier after start failed; retrying", "err", err)
		} else if f := n.forwarder(); f != nil && time.Now().After(retryAt) {
			if _, id := n.Leader(); id != "" {
				idx, err := n.catchUp(f)
				if err == nil {
					n.ready.Store(true)
					n.log.Info("caught up with the leader", "applied_index", idx, "boot_index", n.bootIndex)
					return
				}
				n.log.Debug("catching up with the leader failed; retrying", "err", err)
				retryAt = time.Now().Add(100 * time.Millisecond)
			}
		}
		select {
		case <-n.closed:
			return
		case <-t.C:
		}
	}
}

// WaitReady blocks until Ready or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !n.Ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("raftlog: waiting to apply the log to index %d: %w", n.bootIndex, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Append implements store.Appender: it returns once the entry is on disk
// on a quorum and applied to the store here. On a follower of a cluster it
// forwards the entry to the leader (see SetForwarder) and waits, briefly,
// until it has applied the entry itself, so that a client reads its own
// write from the agent it wrote to.
func (n *Node) Append(ctx context.Context, entry []byte) (store.Response, error) {
	if f := n.forwarder(); f != nil && n.raft.State() != raft.Leader {
		return n.forward(ctx, f, entry)
	}
	return n.ApplyLocal(ctx, entry)
}

// ApplyLocal appends entry through this node's raft, never forwarding:
// it fails with registry.ErrNotLeader unless this node leads. The leader
// serves forwarded writes with it.
func (n *Node) ApplyLocal(ctx context.Context, entry []byte) (store.Response, error) {
	timeout := n.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return store.Response{}, context.DeadlineExceeded
		}
	}
	select {
	case <-n.closed:
		return store.Response{}, errClosed
	default:
	}
	start := time.Now()
	f := n.raft.ApplyLog(raft.Log{Data: entry, Extensions: checksumExt(entry)}, timeout)
	// raft's apply queue is buffered: an entry queued as the node shuts
	// down may never be answered, so wait for the close as well. A write
	// given up on here (closed, or the caller gone) may still be applied.
	if err := n.wait(ctx, f); err != nil {
		n.noteWrite(err)
		return store.Response{}, inFlight(err)
	}
	n.noteWrite(nil)
	n.applyTime.Observe(time.Since(start).Seconds())
	resp, ok := f.Response().(store.Response)
	if !ok {
		return store.Response{}, fmt.Errorf("raftlog: unexpected response %T", f.Response())
	}
	return resp, nil
}

// wait waits for a raft future, the node's close or the end of ctx.
func (n *Node) wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return mapErr(err)
		}
		return nil
	case <-n.closed:
		return errClosed
	case <-ctx.Done():
		return fmt.Errorf("raftlog: gave up waiting: %w", ctx.Err())
	}
}

// inFlight classifies the failure of an entry that was handed to raft.
// Raft refuses some before appending anything (not the leader, a
// leadership transfer, a full queue): those are definite. The others
// leave the entry in the log, where it may still commit through this
// node or the next leader: leadership lost while it was replicated,
// raft or the node shut down, the caller gave up waiting; or a restore
// replaced the state under it. Those are
// registry.ErrOutcomeUnknown, so no front door calls them a failure.
func inFlight(err error) error {
	switch {
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, errClosed),
		errors.Is(err, raft.ErrAbortedByRestore),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("raftlog: %w: %w", registry.ErrOutcomeUnknown, err)
	}
	return err
}

func mapErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", registry.ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", registry.ErrNotReady, err)
	}
	return err
}

// Barrier waits until every entry committed before it is applied. On the
// leader it marks the term caught up (LeaderCaughtUp).
func (n *Node) Barrier(ctx context.Context) error {
	timeout := n.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	term := n.raft.CurrentTerm()
	if err := n.wait(ctx, n.raft.Barrier(timeout)); err != nil {
		n.noteWrite(err)
		return err
	}
	n.noteWrite(nil)
	if n.raft.State() == raft.Leader && n.raft.CurrentTerm() == term {
		n.barrierTerm.Store(term)
	}
	return nil
}

// IsLeader reports whether this node accepts writes now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderCaughtUp reports that this node leads and has applied every entry
// of earlier terms (a barrier passed in this term). A leader just elected
// may still be applying entries the previous leader acknowledged: until
// then its state must not answer for the log.
func (n *Node) LeaderCaughtUp() bool {
	return n.raft.State() == raft.Leader && n.barrierTerm.Load() == n.raft.CurrentTerm()
}

// LeaderCh reports leadership changes (see raft.Raft.LeaderCh).
func (n *Node) LeaderCh() <-chan bool { return n.raft.LeaderCh() }

// Leader returns the leader's address and ID, empty when unknown.
func (n *Node) Leader() (addr, id string) {
	a, i := n.raft.LeaderWithID()
	return string(a), string(i)
}

// LastContact is the last time this node heard from the leader; now when
// it is the leader.
func (n *Node) LastContact() time.Time {
	if n.IsLeader() {
		return time.Now()
	}
	return n.raft.LastContact()
}

// AppliedIndex is the last index applied to the store.
func (n *Node) AppliedIndex() uint64 { return n.raft.AppliedIndex() }

// Stats returns raft's own counters.
func (n *Node) Stats() map[string]string { return n.raft.Stats() }

// SnapshotIfBehind snapshots when at least min entries were applied since
// the last snapshot, so that the next start restores rather than replays
// them. The agent calls it at a graceful shutdown.
func (n *Node) SnapshotIfBehind(min uint64) error {
	st := n.raft.Stats()
	last, _ := strconv.ParseUint(st["last_snapshot_index"], 10, 64)
	if n.raft.AppliedIndex() < last+min {
		return nil
	}
	return n.TakeSnapshot()
}

// TakeSnapshot snapshots now and compacts the log.
func (n *Node) TakeSnapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("raftlog: snapshot: %w", err)
	}
	return nil
}

// errClosed: the node was closed; the agent is shutting down.
var errClosed = fmt.Errorf("raftlog: closed: %w", registry.ErrNotReady)

// ErrInvalidSnapshot wraps the reason a snapshot was refused.
var ErrInvalidSnapshot = errors.New("invalid snapshot")

// Restore replaces the replicated state with a snapshot an operator
// uploaded, read from r (as the store's Persist writes it). The node
// chooses the index it is installed at, never the file: raft installs a
// user snapshot just past its own last index when the snapshot claims no
// more, and store.CheckSnapshot bounds and re-bases every index of the
// file to that. r is read once: the header is checked first, then each
// record is validated as it is read and written, as it will be installed,
// to a temporary file in the data directory; only a whole, valid upload
// reaches raft. (raft stores a user snapshot before the state machine
// reads it, and stops the node if that read fails.) Until raft installs
// it, the old state serves; a refused upload changes nothing. The restore
// goes through the log, so every node ends up with it.
//
// A refused upload's error wraps ErrInvalidSnapshot and a
// *registry.ValidationError naming what was wrong; a read error from r is
// returned wrapped. Callers run one restore at a time.
func (n *Node) Restore(r io.Reader) error {
	f, err := os.CreateTemp(n.dir, restoreSpool)
	if err != nil {
		return fmt.Errorf("raftlog: restore: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	last := n.raft.LastIndex()
	bw := bufio.NewWriterSize(f, 256<<10)
	up, err := store.CheckSnapshot(r, bw, last+1)
	var verr *registry.ValidationError
	if errors.As(err, &verr) {
		return fmt.Errorf("%w: %w", ErrInvalidSnapshot, err)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("raftlog: restore: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("raftlog: restore: %w", err)
	}
	// Index: last claims no more than the log holds, so raft installs at
	// its own last index + 1: at least last+1, which is what the upload's
	// indexes were bounded by.
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: up.Size, Index: last}
	if err := n.raft.Restore(meta, f, n.timeout); err != nil {
		return mapErr(fmt.Errorf("raftlog: restore: %w", err))
	}
	n.log.Info("snapshot restored", "services", up.Services, "instances", up.Instances,
		"bytes", up.Size, "index_shift", up.Shift, "applied_index", n.raft.AppliedIndex())
	return nil
}

// restoreSpool names the temporary files of uploads being restored; one
// left by a crash is removed at the next Open.
const restoreSpool = "restore-*.tmp"

// removeSpools removes the temporary files of restores a crash left.
func removeSpools(dir string, lg *slog.Logger) {
	left, _ := filepath.Glob(filepath.Join(dir, restoreSpool))
	for _, f := range left {
		if err := os.Remove(f); err != nil {
			lg.Warn("removing a restore's temporary file", "file", f, "err", err)
		}
	}
}

// Close stops the node: it waits for in-flight applies, then closes the
// log so that a restart sees every acknowledged entry.
func (n *Node) Close() error {
	select {
	case <-n.closed:
		return nil // already closed
	default:
	}
	close(n.closed)
	n.cancel()
	err := n.raft.Shutdown().Error()
	if c, ok := n.trans.(io.Closer); ok {
		c.Close()
	}
	if cerr := n.logs.Close(); err == nil {
		err = cerr
	}
	return err
}
