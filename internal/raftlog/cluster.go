package raftlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// Forwarder carries to the leader what a follower cannot do itself. The
// cluster package implements it over the raft port; a single node has
// none.
type Forwarder interface {
	// Forward appends an encoded entry through the leader (its
	// ApplyLocal) and returns the entry's response. An error wrapping
	// registry.ErrOutcomeUnknown means the entry may still commit.
	Forward(ctx context.Context, entry []byte) (store.Response, error)
	// ReadIndex returns the leader's ReadIndex.
	ReadIndex(ctx context.Context) (uint64, error)
}

type forwarderBox struct{ f Forwarder }

// SetForwarder makes a follower forward writes and read barriers through
// f. Call it once, before the node serves requests.
func (n *Node) SetForwarder(f Forwarder) { n.fwd.Store(&forwarderBox{f}) }

func (n *Node) forwarder() Forwarder {
	if b := n.fwd.Load(); b != nil {
		return b.f
	}
	return nil
}

// readYourWrite bounds how long a follower waits, after the leader
// acknowledged a forwarded write, to apply it itself before it answers.
// The write is committed either way; the wait only lets the client read
// it back from this agent. The leader tells followers the commit index
// within CommitTimeout.
const readYourWrite = 2 * time.Second

func (n *Node) forward(ctx context.Context, f Forwarder, entry []byte) (store.Response, error) {
	resp, err := f.Forward(ctx, entry)
	if err != nil {
		return store.Response{}, err
	}
	if idx := resp.Result.Index; idx > 0 {
		wctx, cancel := context.WithTimeout(ctx, readYourWrite)
		if werr := n.WaitApplied(wctx, idx); werr != nil {
			n.log.Debug("forwarded write not yet applied here", "index", idx, "err", werr)
		}
		cancel()
	}
	return resp, nil
}

// catchUp asks the leader for its read index and waits to apply it.
func (n *Node) catchUp(f Forwarder) (uint64, error) {
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	idx, err := f.ReadIndex(ctx)
	if err != nil {
		return 0, err
	}
	return idx, n.WaitApplied(ctx, idx)
}

// AppliedStoreIndex is the store's last applied index: the index
// ReadIndex and WaitApplied speak of.
func (n *Node) AppliedStoreIndex() uint64 { return n.fsm.st.LastIndex() }

// WaitApplied blocks until the store has applied index idx, ctx ends or
// the node closes.
func (n *Node) WaitApplied(ctx context.Context, idx uint64) error {
	for {
		ch := n.fsm.changed()
		if n.fsm.st.LastIndex() >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-n.closed:
			return errClosed
		case <-ctx.Done():
			return fmt.Errorf("raftlog: waiting to apply index %d (at %d): %w", idx, n.fsm.st.LastIndex(), ctx.Err())
		}
	}
}

// ReadIndex, on the leader, returns an index such that a store that has
// applied it holds every write acknowledged before the call, here or on
// any other node: it takes raft's commit index, confirms that this node
// still leads (raft's VerifyLeader, a round of heartbeats to a quorum)
// and, once per term, that the commit index covers every entry of earlier
// terms (a barrier). Elsewhere it fails with registry.ErrNotLeader.
//
// The commit index, not what this node's store has applied: a committed
// entry is applied by every node on its own, and a follower may apply it
// (and a client read it there) before the leader's own state machine
// does. The index returned is that of the last command at or before the
// commit index, the entries the store sees (no-ops, barriers and
// configuration changes never reach it), so WaitApplied can reach it.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if n.raft.State() != raft.Leader {
		return 0, fmt.Errorf("%w: %w", registry.ErrNotLeader, raft.ErrNotLeader)
	}
	if !n.LeaderCaughtUp() {
		if err := n.Barrier(ctx); err != nil {
			return 0, err
		}
	}
	commit := n.raft.CommitIndex()
	if err := n.wait(ctx, n.raft.VerifyLeader()); err != nil {
		return 0, err
	}
	return n.lastCommand(commit)
}

// lastCommand returns the index of the last command entry at or before
// idx; when the log holds none down to its first entry, the store's own
// index (the snapshot below the log holds them all).
func (n *Node) lastCommand(idx uint64) (uint64, error) {
	first, err := n.entries.FirstIndex()
	if err != nil {
		return 0, fmt.Errorf("raftlog: read index: %w", err)
	}
	var l raft.Log
	for i := idx; i >= first && i > 0; i-- {
		if err := n.entries.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				// Compacted by a snapshot meanwhile: the snapshot is
				// at or past i, and the store holds it.
				return min(i, n.fsm.st.LastIndex()), nil
			}
			return 0, fmt.Errorf("raftlog: read index: entry %d: %w", i, err)
		}
		if l.Type == raft.LogCommand {
			return i, nil
		}
	}
	// No command left in the log (a snapshot installed or taken with
	// no trailing entries): every command up to idx is in the snapshot
	// this node's store holds.
	return n.fsm.st.LastIndex(), nil
}

// Consistent returns once this node's store holds every write
// acknowledged before the call, anywhere in the cluster: on the leader
// through ReadIndex, on a follower by asking the leader for its read
// index and applying up to it. A read served afterwards is linearizable.
func (n *Node) Consistent(ctx context.Context) error {
	f := n.forwarder()
	if n.raft.State() == raft.Leader {
		idx, err := n.ReadIndex(ctx)
		if err == nil {
			return n.WaitApplied(ctx, idx)
		}
		if f == nil || !errors.Is(err, registry.ErrNotLeader) {
			return err
		}
		// Leadership moved while confirming it: ask the new leader.
	}
	if f == nil {
		return fmt.Errorf("%w: %w", registry.ErrNotLeader, raft.ErrNotLeader)
	}
	idx, err := f.ReadIndex(ctx)
	if err != nil {
		return err
	}
	return n.WaitApplied(ctx, idx)
}

// Server is one member of the raft configuration.
type Server struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
}

// ID is this node's raft ID.
func (n *Node) ID() string { return n.id }

// Addr is this node's raft address (its NodeID on a single node).
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// State is this node's raft state: "leader", "follower", "candidate" or
// "shutdown".
func (n *Node) State() string { return strings.ToLower(n.raft.State().String()) }

// Term is the current raft term.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }

// LastLogIndex is the last index in this node's log (committed or not).
func (n *Node) LastLogIndex() uint64 { return n.raft.LastIndex() }

// CommitIndex is the last index this node knows to be committed.
func (n *Node) CommitIndex() uint64 { return n.raft.CommitIndex() }

// Servers returns the latest raft configuration: empty on a node not yet
// bootstrapped or joined.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, mapErr(err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// VoterAddrs returns the raft addresses of the voters in the latest
// configuration.
func (n *Node) VoterAddrs() ([]string, error) {
	servers, err := n.Servers()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range servers {
		if s.Voter {
			out = append(out, s.Address)
		}
	}
	return out, nil
}

// AddVoter adds a server to the cluster, or changes its address; on the
// leader only. Adding a voter already present at the same address changes
// nothing.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.ID == id && s.Address == addr && s.Voter {
			return nil
		}
	}
	return n.wait(ctx, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.timeout))
}

// RemoveServer removes a server from the cluster; on the leader only.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	return n.wait(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, n.timeout))
}

// ErrBootstrapped: the node already has a configuration.
var ErrBootstrapped = errors.New("raftlog: already bootstrapped")

// BootstrapCluster makes servers the first configuration of a node that
// has none. Every server bootstrapped with the same list forms one
// cluster; this node must be among them.
func (n *Node) BootstrapCluster(servers []Server) error {
	cfg := raft.Configuration{}
	for _, s := range servers {
		suf := raft.Nonvoter
		if s.Voter {
			suf = raft.Voter
		}
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address), Suffrage: suf})
	}
	err := n.raft.BootstrapCluster(cfg).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return ErrBootstrapped
	}
	return err
}

// EnsureSelfAddress, on the leader, corrects this node's address in the
// configuration when it differs from the transport's (a single agent's
// data directory started as a cluster server, or a changed -raft-addr).
func (n *Node) EnsureSelfAddress(ctx context.Context) error {
	return n.AddVoter(ctx, n.id, n.Addr())
}

// TransferLeadership hands leadership to another voter, when this node
// leads and there is one; an agent shutting down calls it so that the
// cluster need not wait an election timeout.
func (n *Node) TransferLeadership(ctx context.Context) error {
	if !n.IsLeader() {
		return nil
	}
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	voters := 0
	for _, s := range servers {
		if s.Voter {
			voters++
		}
	}
	if voters < 2 {
		return nil
	}
	return n.wait(ctx, n.raft.LeadershipTransfer())
}
