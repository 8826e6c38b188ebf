package raftlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// ErrNotServing is wrapped by Serving's answers.
var ErrNotServing = errors.New("not serving")

// staleContactFactor times the heartbeat timeout is how long a follower
// may go without hearing from its leader before it stops calling itself
// able to serve: raft starts an election after one heartbeat timeout, so
// a follower this far behind has lost its leader, whatever it remembers.
const staleContactFactor = 10

// writeHealth remembers whether the last write or barrier this node made
// as leader failed (a full disk, a log that refuses the append): a leader
// in that state cannot accept writes. Once set, Serving probes with a
// barrier (which goes through the log) at most once a second, so the
// state clears when the cause goes away even if no client writes.
type writeHealth struct {
	mu      sync.Mutex
	err     error
	probing bool
	probeAt time.Time
}

func (h *writeHealth) record(err error) {
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

// noteWrite records the outcome of a write or barrier made on this node
// while it led. Outcomes that say nothing about the log (the caller gave
// up, the node closes or lost leadership) are ignored.
func (n *Node) noteWrite(err error) {
	switch {
	case err == nil:
		n.writes.record(nil)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, errClosed), errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrRaftShutdown),
		errors.Is(err, raft.ErrAbortedByRestore), errors.Is(err, raft.ErrEnqueueTimeout):
	default:
		n.writes.record(err)
	}
}

// Serving reports why this node cannot serve reads and, as leader, accept
// writes, or nil if it can: it has applied what was on disk at start
// (Ready), knows a leader, has heard from it recently (a follower), and,
// as leader, its last write or barrier did not fail. Safe to call from any
// goroutine; cheap (the leader's probe runs in the background).
func (n *Node) Serving() error {
	if !n.Ready() {
		return fmt.Errorf("%w: restoring: applying the log to index %d", ErrNotServing, n.bootIndex)
	}
	if n.IsLeader() {
		return n.leaderServing()
	}
	_, id := n.Leader()
	if id == "" {
		return fmt.Errorf("%w: no leader known", ErrNotServing)
	}
	if since := time.Since(n.raft.LastContact()); since > staleContactFactor*n.heartbeat {
		return fmt.Errorf("%w: no contact with leader %s for %s", ErrNotServing, id, since.Round(time.Millisecond))
	}
	return nil
}

func (n *Node) leaderServing() error {
	h := &n.writes
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		return nil
	}
	err := fmt.Errorf("%w: the last write failed: %w", ErrNotServing, h.err)
	if !h.probing && time.Since(h.probeAt) >= time.Second {
		h.probing, h.probeAt = true, time.Now()
		go func() {
			ferr := n.raft.Barrier(n.heartbeat * 4).Error()
			h.mu.Lock()
			h.probing = false
			h.mu.Unlock()
			n.noteWrite(ferr)
		}()
	}
	return err
}
