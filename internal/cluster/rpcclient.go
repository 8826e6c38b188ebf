package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// The client side of the internal RPCs: finding the leader, following a
// change of leader, and what this agent asks of it (forwarded writes and
// read indexes, peer removal, restores). Lease renewals are in leases.go,
// joins in join.go.

// call sends one internal RPC to addr and decodes a 2xx answer into out
// (when non-nil); other answers become the error they carry.
func (c *Cluster) call(ctx context.Context, method, addr, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, body)
	if err != nil {
		return err
	}
	return c.do(req, out)
}

// do sends an internal RPC request; see call.
func (c *Cluster) do(req *http.Request, out any) error {
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var we wireError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &we) != nil || we.Kind == "" {
			return fmt.Errorf("%s %s: HTTP %d: %s", req.Method, req.URL, resp.StatusCode, bytes.TrimSpace(b))
		}
		return we.err()
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// leaderAddr waits, up to the deadline, for a leader other than this
// agent to be known; self is true when this agent leads.
func (c *Cluster) leaderAddr(ctx context.Context, deadline time.Time) (addr string, self bool, err error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if c.node.IsLeader() {
			return "", true, nil
		}
		if a, id := c.node.Leader(); id != "" && id != c.node.ID() {
			return a, false, nil
		}
		if time.Now().After(deadline) {
			return "", false, c.noLeader(nil)
		}
		select {
		case <-ctx.Done():
			return "", false, fmt.Errorf("waiting for a leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// noLeader is the error a write or consistent read gets while no leader
// answers: HTTP 503 "no leader" at the front doors. last is the last
// attempt's error, if any.
func (c *Cluster) noLeader(last error) error {
	msg := "no leader: no cluster leader is known"
	if lc := c.node.LastContact(); !lc.IsZero() {
		msg += fmt.Sprintf("; last contact with one %s ago", time.Since(lc).Round(time.Millisecond))
	}
	msg += " (is a quorum of servers up and connected?)"
	if last != nil {
		msg += "; last attempt: " + last.Error()
	}
	return kindError(registry.ErrNotLeader, msg, false)
}

// toLeader runs call against the leader, waiting for one and following a
// change of leader for up to LeaderWait, as long as the failure says
// nothing was done. local runs instead when this agent leads. A call is
// cancelled when this agent stops taking its target for the leader (a
// partition, an election), so it never hangs on a lost leader.
func (c *Cluster) toLeader(ctx context.Context, local func() error, call func(ctx context.Context, addr string) error) error {
	deadline := time.Now().Add(c.cfg.LeaderWait)
	for {
		addr, self, err := c.leaderAddr(ctx, deadline)
		if err != nil {
			return err
		}
		if self {
			err = local()
		} else {
			err = c.whileLeader(ctx, addr, call)
		}
		switch {
		case err == nil, !retriable(err), ctx.Err() != nil:
			return err
		case time.Now().After(deadline):
			return c.noLeader(err)
		}
		c.log.Debug("leader call failed; retrying", "leader", addr, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// whileLeader runs call(addr), cancelling it if this agent's view of the
// leader moves away from addr. A call cut off so is ErrNotLeader, and
// stays ErrOutcomeUnknown when call says it was.
func (c *Cluster) whileLeader(ctx context.Context, addr string, call func(ctx context.Context, addr string) error) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case <-t.C:
				if a, _ := c.node.Leader(); a != addr {
					cancel()
					return
				}
			}
		}
	}()
	err := call(cctx, addr)
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		lost := kindError(registry.ErrNotLeader, fmt.Sprintf("the leader %s was lost during the call: %v", addr, err), retriable(err))
		if errors.Is(err, registry.ErrOutcomeUnknown) {
			lost.kinds = []error{registry.ErrOutcomeUnknown, registry.ErrNotLeader}
		}
		return lost
	}
	return err
}

// outcomeUnknown is a forwarded write that reached the leader, or may
// have, with no answer: it may still commit, so it is never retried and
// never a definite failure (registry.KindOf says KindOutcomeUnknown). It
// is ErrNotLeader as well, for front doors that do not know the kind:
// they answer 503 as they did before it existed.
func outcomeUnknown(msg string) error {
	return &remoteError{msg: msg, kinds: []error{registry.ErrOutcomeUnknown, registry.ErrNotLeader}}
}

// Forward implements raftlog.Forwarder.
func (c *Cluster) Forward(ctx context.Context, entry []byte) (store.Response, error) {
	var resp store.Response
	err := c.toLeader(ctx, func() error {
		var err error
		resp, err = c.node.ApplyLocal(ctx, entry)
		if errors.Is(err, raft.ErrNotLeader) {
			// Refused before appending: the new leader may take it.
			return kindError(registry.ErrNotLeader, err.Error(), true)
		}
		return err
	}, func(cctx context.Context, addr string) error {
		var wr wireResult
		if err := c.call(cctx, http.MethodPost, addr, pathApply, bytes.NewReader(entry), &wr); err != nil {
			var de *dialError
			var re *remoteError
			switch {
			case errors.As(err, &de), errors.As(err, &re):
				return err
			case ctx.Err() != nil:
				return fmt.Errorf("forward to the leader: %w: %w", registry.ErrOutcomeUnknown, ctx.Err())
			case cctx.Err() != nil:
				// The request may be at the leader; whileLeader says why
				// it was cut off.
				return &remoteError{msg: err.Error(), kinds: []error{registry.ErrOutcomeUnknown}}
			}
			// The leader went away with the write in flight.
			return outcomeUnknown(fmt.Sprintf("forward to the leader %s: outcome unknown: %v", addr, err))
		}
		resp = wr.response()
		return nil
	})
	if err == nil {
		c.metrics.forwardedOut.Inc()
	}
	return resp, err
}

// ReadIndex implements raftlog.Forwarder.
func (c *Cluster) ReadIndex(ctx context.Context) (uint64, error) {
	var idx uint64
	err := c.toLeader(ctx, func() error {
		var err error
		idx, err = c.node.ReadIndex(ctx)
		if errors.Is(err, registry.ErrNotLeader) {
			// Leadership moved while confirming it: ask the new leader.
			return kindError(registry.ErrNotLeader, err.Error(), true)
		}
		return err
	}, func(cctx context.Context, addr string) error {
		var out wireIndex
		if err := c.call(cctx, http.MethodGet, addr, pathReadIndex, nil, &out); err != nil {
			// A read index changes nothing: it may always be asked again.
			var re *remoteError
			if errors.As(err, &re) && len(re.kinds) > 0 {
				return &remoteError{msg: re.msg, kinds: re.kinds, retry: true}
			}
			return kindError(registry.ErrNotLeader, "read index from the leader "+addr+": "+err.Error(), true)
		}
		idx = out.Index
		return nil
	})
	return idx, err
}

// RemovePeer removes a server, named by ID or raft address, from the
// configuration, through the leader, and returns its ID. A name no
// server has is registry.ErrNotFound.
func (c *Cluster) RemovePeer(ctx context.Context, name string) (string, error) {
	servers, err := c.node.Servers()
	if err != nil {
		return "", err
	}
	id := ""
	for _, s := range servers {
		if s.ID == name || s.Address == name {
			id = s.ID
		}
	}
	if id == "" {
		return "", fmt.Errorf("no server %q in the cluster (name an ID or raft address from roster members): %w", name, registry.ErrNotFound)
	}
	err = c.toLeader(ctx, func() error { return c.node.RemoveServer(ctx, id) }, func(cctx context.Context, addr string) error {
		b, _ := json.Marshal(wireRemove{ID: id})
		return c.call(cctx, http.MethodPost, addr, pathRemove, bytes.NewReader(b), nil)
	})
	return id, err
}

// RestoreThroughLeader sends a snapshot to the leader to install, and
// waits until this agent has applied the restore. It returns the index
// the registry is at after.
func (c *Cluster) RestoreThroughLeader(ctx context.Context, body io.Reader) (uint64, error) {
	addr, self, err := c.leaderAddr(ctx, time.Now().Add(c.cfg.LeaderWait))
	if err != nil {
		return 0, err
	}
	if self {
		return 0, errors.New("cluster: this agent leads; restore locally")
	}
	var out wireIndex
	if err := c.call(ctx, http.MethodPut, addr, pathRestore, body, &out); err != nil {
		return 0, err
	}
	return out.Index, c.node.WaitApplied(ctx, out.Index)
}
