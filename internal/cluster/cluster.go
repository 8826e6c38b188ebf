// Package cluster joins agents into one raft cluster and carries what a
// follower cannot do itself to the leader. It owns the raft port
// (network.go: raft's RPCs and roster's internal RPCs on one TCP listener,
// optionally TLS) and the internal RPCs: their wire types (wire.go) and
// error kinds (errors.go), the leader's side (rpcserver.go) and the
// caller's (rpcclient.go: forwarded writes and read barriers, as the
// raftlog.Forwarder; peer removal; restores). It forwards lease renewals
// (leases.go) and forms the cluster (join.go: -join, -bootstrap-expect).
// The cluster's HTTP surface (staleness headers, ?consistent,
// /v1/cluster/...) is a front door of its own, internal/clusterapi, over
// LeaderState, ConsistentRead, Membership and RemovePeer.
//
// The write path above raftlog does not change: store.Log appends to the
// node, and the node hands the entry to this package when it follows.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/lease"
	"github.com/rosterhq/roster/internal/raftlog"
	"github.com/rosterhq/roster/internal/registry"
)

// Config configures a Cluster.
type Config struct {
	Node     *raftlog.Node
	Network  *Network
	Registry *registry.Service
	// Leases is this agent's lease table, which runs while it leads.
	Leases *lease.Table
	// HTTPAddr is this agent's HTTP API address, reported in members.
	HTTPAddr string
	// Join lists raft addresses of other servers to join through.
	Join []string
	// BootstrapExpect: the number of servers that form a new cluster; the
	// first agent to know of this many (itself included) bootstraps them
	// all. 0 means this agent never bootstraps a cluster of several.
	BootstrapExpect int
	// Restore installs a snapshot; the leader runs it for an agent that
	// received a restore. It returns the index the registry is at after.
	Restore func(io.Reader) (uint64, error)
	// LeaderWait bounds how long a write or consistent read waits for a
	// leader (during an election) before it fails with "no leader"
	// (default 2s).
	LeaderWait time.Duration
	// DeadServerAfter: the leader removes from the configuration a voter
	// it has not reached for longer than this (see autopilot.go for the
	// rules). 0 turns the cleanup off.
	DeadServerAfter time.Duration
	// MinServers: the cleanup never leaves fewer voters than this
	// (default 3).
	MinServers int
	Logger     *slog.Logger
	Metrics    prometheus.Registerer
}

// Cluster is this agent's part in a cluster.
type Cluster struct {
	cfg     Config
	node    *raftlog.Node
	net     *Network
	reg     *registry.Service
	log     *slog.Logger
	client  *http.Client
	leases  *Leases
	metrics *metrics

	rpc *http.Server
	// autopilot removes dead servers; nil when DeadServerAfter is 0.
	autopilot *autopilot

	mu    sync.Mutex
	known map[string]string // join: server ID → raft address, while bootstrapping
}

// New builds the cluster side of an agent and makes it the node's
// forwarder. Call Run to serve.
func New(cfg Config) *Cluster {
	if cfg.LeaderWait <= 0 {
		cfg.LeaderWait = 2 * time.Second
	}
	if cfg.MinServers <= 0 {
		cfg.MinServers = 3
	}
	c := &Cluster{cfg: cfg, node: cfg.Node, net: cfg.Network, reg: cfg.Registry, log: cfg.Logger, known: map[string]string{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "cluster")
	c.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			// A peer cut off by a partition must not hold a caller
			// longer than it would wait for a leader.
			ctx, cancel := context.WithTimeout(ctx, c.cfg.LeaderWait)
			defer cancel()
			return c.net.dial(ctx, addr, protoRPC)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
	c.metrics = newMetrics(cfg.Metrics, c)
	c.leases = newLeases(c, cfg.Leases)
	if cfg.DeadServerAfter > 0 {
		c.autopilot = newAutopilot(c)
	}
	c.rpc = &http.Server{Handler: c.rpcHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelWarn)}
	// A setter, not a raftlog.Config field: the forwarder is built over
	// the node, which must be open first.
	c.node.SetForwarder(c)
	return c
}

// Leases is the registry's lease table in a cluster: heartbeats reaching
// a follower renew the leader's leases.
func (c *Cluster) Leases() registry.Leases { return c.leases }

// Run serves the internal RPCs, forms or joins the cluster, forwards lease
// renewals and keeps this agent's address right in the configuration (and,
// with DeadServerAfter, removes dead servers) while it leads, until ctx ends; then it stops the internal RPCs, waits for all
// of it and returns nil. It returns early with an error only when the
// internal RPCs cannot be served. The raft port stays open for the node:
// close the node, then Close.
func (c *Cluster) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); c.join(ctx) }()
	go func() { defer wg.Done(); c.leases.run(ctx) }()
	go func() { defer wg.Done(); c.watchSelf(ctx) }()
	if c.autopilot != nil {
		wg.Add(1)
		go func() { defer wg.Done(); c.autopilot.run(ctx) }()
	}
	err := c.serveRPC(ctx)
	cancel()
	wg.Wait()
	return err
}

// serveRPC serves the internal RPCs until ctx ends.
func (c *Cluster) serveRPC(ctx context.Context) error {
	served := make(chan error, 1)
	go func() { served <- c.rpc.Serve(c.net.rpc) }()
	select {
	case <-ctx.Done():
		c.rpc.Close()
		<-served
		return nil
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
			// The raft port closed under Run (the node closed first):
			// the rest goes on until ctx ends.
			<-ctx.Done()
			return nil
		}
		return fmt.Errorf("internal rpc: %w", err)
	}
}

// Close stops the internal RPCs and the raft port.
func (c *Cluster) Close() error {
	c.rpc.Close()
	c.client.CloseIdleConnections()
	return c.net.Close()
}

// watchSelf corrects this agent's address in the configuration whenever
// it gains leadership, until ctx ends.
func (c *Cluster) watchSelf(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var doneTerm uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !c.node.IsLeader() || c.node.Term() == doneTerm {
			continue
		}
		term := c.node.Term()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.node.EnsureSelfAddress(cctx)
		cancel()
		if err != nil {
			c.log.Warn("could not correct this server's address in the configuration", "addr", c.net.Addr(), "err", err)
			continue
		}
		doneTerm = term
	}
}

// Member is one server of the cluster as it reports itself.
type Member struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Voter    bool   `json:"voter"`
	HTTPAddr string `json:"http_addr,omitempty"`
	// Role is leader, follower or candidate, or unreachable when the
	// server did not answer.
	Role string `json:"role"`
	// Leader is the ID of the leader this server knows ("" when none).
	Leader string `json:"leader,omitempty"`
	// LastContactMS is how long ago this server heard from the leader: 0
	// on the leader, -1 when it never has.
	LastContactMS int64  `json:"last_contact_ms"`
	Term          uint64 `json:"term,omitempty"`
	LastIndex     uint64 `json:"last_index,omitempty"`
	CommitIndex   uint64 `json:"commit_index,omitempty"`
	AppliedIndex  uint64 `json:"applied_index,omitempty"`
	Ready         bool   `json:"ready"`
	// Healthy: reachable, caught up since start, and a leader or in
	// touch with one within the last two seconds.
	Healthy bool   `json:"healthy"`
	Error   string `json:"error,omitempty"`
	// UnreachableMS is how long the leader has been unable to reach this
	// server, while its probes fail (dead-server cleanup, with
	// -dead-server-after, removes it once this passes that); absent
	// otherwise, and when the cleanup is off.
	UnreachableMS int64 `json:"unreachable_ms,omitempty"`
}

// wireStatus is the answer of GET /internal/status: the server's own
// Member and, from a leader with dead-server cleanup on, how long it has
// been unable to reach each server it cannot reach now (ID →
// milliseconds). An older agent reads it as a Member.
type wireStatus struct {
	Member
	Unreachable map[string]int64 `json:"unreachable,omitempty"`
}

func (c *Cluster) status() wireStatus {
	st := wireStatus{Member: c.self()}
	for id, d := range c.autopilot.unreachable() {
		if st.Unreachable == nil {
			st.Unreachable = map[string]int64{}
		}
		st.Unreachable[id] = d.Milliseconds()
	}
	return st
}

// healthyContact is the longest a follower may go without hearing from
// the leader and still count as healthy.
const healthyContact = 2 * time.Second

func (c *Cluster) self() Member {
	_, leader := c.node.Leader()
	m := Member{
		ID: c.node.ID(), Address: c.net.Addr(), HTTPAddr: c.cfg.HTTPAddr, Role: c.node.State(), Leader: leader,
		Term: c.node.Term(), LastIndex: c.node.LastLogIndex(), CommitIndex: c.node.CommitIndex(),
		AppliedIndex: c.node.AppliedStoreIndex(), Ready: c.node.Ready(),
	}
	known, contact := c.LeaderState()
	m.LastContactMS = contact.Milliseconds()
	if contact < 0 {
		m.LastContactMS = -1
	}
	m.Healthy = m.Ready && known && contact >= 0 && contact < healthyContact
	return m
}

// LeaderState reports whether a leader is known and how long ago this
// agent heard from it: 0 on the leader, negative when never. It only
// reads the node's state and may be called from any goroutine.
func (c *Cluster) LeaderState() (known bool, lastContact time.Duration) {
	if c.node.IsLeader() {
		return true, 0
	}
	_, id := c.node.Leader()
	lc := c.node.LastContact()
	if lc.IsZero() {
		return id != "", -1
	}
	return id != "", max(time.Since(lc), 0)
}

// ConsistentRead returns once this agent holds every write acknowledged
// before the call, anywhere in the cluster (raftlog.Node.Consistent: the
// leader confirms it still leads; a follower applies up to the leader's
// index), and reports whether this agent leads. It fails with
// registry.ErrNotLeader while no leader answers (after LeaderWait).
func (c *Cluster) ConsistentRead(ctx context.Context) (leads bool, err error) {
	if err := c.node.Consistent(ctx); err != nil {
		return false, err
	}
	c.metrics.consistentReads.Inc()
	return c.node.IsLeader(), nil
}

// Membership is the cluster as this agent sees it.
type Membership struct {
	// Leader is the leader's ID as this agent knows it ("" when none).
	Leader string
	// Self is this agent's ID.
	Self    string
	Members []Member
}

// Membership asks every server for its state (Members) and adds the
// leader this agent knows.
func (c *Cluster) Membership(ctx context.Context) (Membership, error) {
	ms, err := c.Members(ctx)
	if err != nil {
		return Membership{}, err
	}
	_, leader := c.node.Leader()
	return Membership{Leader: leader, Self: c.node.ID(), Members: ms}, nil
}

// Members asks every server in the configuration for its state, in
// parallel, within a second.
func (c *Cluster) Members(ctx context.Context) ([]Member, error) {
	servers, err := c.node.Servers()
	if err != nil {
		return nil, err
	}
	if len(servers) == 0 { // not yet bootstrapped or joined
		return []Member{c.self()}, nil
	}
	out := make([]Member, len(servers))
	var (
		wg          sync.WaitGroup
		mu          sync.Mutex
		unreachable map[string]int64 // the leader's view
	)
	for i, s := range servers {
		if s.ID == c.node.ID() {
			st := c.status()
			out[i] = st.Member
			out[i].Voter = s.Voter
			if st.Role == "leader" {
				mu.Lock()
				unreachable = st.Unreachable
				mu.Unlock()
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			var st wireStatus
			if err := c.call(cctx, http.MethodGet, s.Address, pathStatus, nil, &st); err != nil {
				st = wireStatus{Member: Member{ID: s.ID, Role: "unreachable", LastContactMS: -1, Error: err.Error()}}
			}
			if st.Role == "leader" {
				mu.Lock()
				unreachable = st.Unreachable
				mu.Unlock()
			}
			m := st.Member
			m.ID, m.Address, m.Voter = s.ID, s.Address, s.Voter
			out[i] = m
		}()
	}
	wg.Wait()
	for i := range out {
		out[i].UnreachableMS = unreachable[out[i].ID]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
