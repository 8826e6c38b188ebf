package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"sort"
	"time"

	"github.com/rosterhq/roster/internal/raftlog"
	"github.com/rosterhq/roster/internal/registry"
)

// Forming a cluster. An agent started with -join asks each address (a
// peer's raft port) to let it join:
//
//   - an agent that leads adds it as a voter; one that follows a leader
//     passes the request on to the leader (one hop);
//   - an agent with no leader (a cluster not yet formed) records it and
//     answers with every server it has heard of; the asker records those.
//
// With -bootstrap-expect N, the first agent that knows of N servers
// (itself included) bootstraps the configuration with all N. Every
// agent that gets that far bootstraps the same N, which is safe: they
// start the same cluster. -bootstrap-expect must therefore equal the
// number of servers started to form the cluster. A server whose
// configuration already holds it (a restart) has nothing to do.

// forwardedHeader marks a join passed on to the leader, so that it is
// passed on at most once.
const forwardedHeader = "X-Roster-Forwarded"

func (c *Cluster) serveJoin(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.ID == "" || req.Addr == "" {
		writeJSON(w, http.StatusBadRequest, &wireError{Kind: wireKinds[registry.KindInvalid].name, Msg: "join: id and addr required"})
		return
	}
	if c.node.IsLeader() {
		if err := c.node.AddVoter(r.Context(), req.ID, req.Addr); err != nil {
			writeErr(w, err)
			return
		}
		c.log.Info("server joined", "id", req.ID, "addr", req.Addr)
		writeJSON(w, http.StatusOK, joinResponse{Joined: true})
		return
	}
	if addr, id := c.node.Leader(); id != "" {
		if r.Header.Get(forwardedHeader) != "" {
			writeErr(w, kindError(registry.ErrNotLeader, "join: not the leader", true))
			return
		}
		b, _ := json.Marshal(req)
		hreq, err := http.NewRequestWithContext(r.Context(), http.MethodPost, "http://"+addr+pathJoin, bytes.NewReader(b))
		if err != nil {
			writeErr(w, err)
			return
		}
		hreq.Header.Set(forwardedHeader, "1")
		var resp joinResponse
		if err := c.do(hreq, &resp); err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	if servers, err := c.node.Servers(); err == nil && len(servers) > 0 {
		// A formed cluster between leaders: the joiner must wait for the
		// next leader, not count these servers towards a bootstrap of its
		// own (it would form a second cluster that never hears of this one).
		writeErr(w, kindError(registry.ErrNotLeader, "join: the cluster has no leader now", true))
		return
	}
	c.learn(append(req.Known, peer{ID: req.ID, Addr: req.Addr}))
	c.maybeBootstrap()
	writeJSON(w, http.StatusOK, joinResponse{Known: c.knownPeers()})
}

// learn records servers heard of while the cluster forms.
func (c *Cluster) learn(ps []peer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range ps {
		if p.ID != "" && p.Addr != "" {
			c.known[p.ID] = p.Addr
		}
	}
}

func (c *Cluster) knownPeers() []peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]peer, 0, len(c.known))
	for id, addr := range c.known {
		out = append(out, peer{ID: id, Addr: addr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// member reports whether this agent is in the cluster's configuration.
func (c *Cluster) member() bool {
	servers, err := c.node.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.ID == c.node.ID() {
			return true
		}
	}
	return false
}

// maybeBootstrap bootstraps the cluster once BootstrapExpect servers are
// known and this agent has no configuration yet.
func (c *Cluster) maybeBootstrap() {
	expect := c.cfg.BootstrapExpect
	if expect <= 1 {
		return
	}
	if servers, err := c.node.Servers(); err != nil || len(servers) > 0 {
		return
	}
	known := c.knownPeers()
	switch {
	case len(known) < expect:
		return
	case len(known) > expect:
		c.log.Error("more servers than -bootstrap-expect: not bootstrapping; start them with the same -bootstrap-expect as there are servers", "expect", expect, "known", len(known))
		return
	}
	servers := make([]raftlog.Server, len(known))
	for i, p := range known {
		servers[i] = raftlog.Server{ID: p.ID, Address: p.Addr, Voter: true}
	}
	switch err := c.node.BootstrapCluster(servers); {
	case err == nil:
		c.log.Info("cluster bootstrapped", "servers", len(servers))
	case errors.Is(err, raftlog.ErrBootstrapped):
	default:
		c.log.Warn("bootstrap failed", "err", err)
	}
}

// join runs until this agent is in the configuration: it asks the -join
// addresses to let it in and bootstraps with -bootstrap-expect.
func (c *Cluster) join(ctx context.Context) {
	c.learn([]peer{{ID: c.node.ID(), Addr: c.net.Addr()}})
	if len(c.cfg.Join) == 0 && c.cfg.BootstrapExpect <= 1 {
		return
	}
	wait := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if c.member() {
			if attempt > 0 {
				c.log.Info("in the cluster", "id", c.node.ID(), "addr", c.net.Addr())
			}
			return
		}
		for _, addr := range c.cfg.Join {
			if addr == c.net.Addr() {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			b, _ := json.Marshal(joinRequest{ID: c.node.ID(), Addr: c.net.Addr(), Expect: c.cfg.BootstrapExpect, Known: c.knownPeers()})
			var resp joinResponse
			err := c.call(cctx, http.MethodPost, addr, pathJoin, bytes.NewReader(b), &resp)
			cancel()
			if err != nil {
				if attempt%10 == 9 {
					c.log.Warn("join: no answer yet", "addr", addr, "err", err)
				}
				continue
			}
			c.learn(resp.Known)
			if resp.Joined {
				c.log.Info("joined the cluster", "through", addr)
			}
		}
		c.maybeBootstrap()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait + rand.N(wait/2)):
		}
		wait = min(wait*2, 2*time.Second)
	}
}
