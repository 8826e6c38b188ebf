package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/rosterhq/roster/internal/raftlog"
)

// Dead-server cleanup, after Consul's autopilot (CleanupDeadServers with
// MinQuorum): while this agent leads, it probes every other server of the
// configuration and removes a voter it has not reached for longer than
// Config.DeadServerAfter, so that a server that died for good stops
// counting towards the quorum. The rules:
//
//   - only the leader acts, and only on what it has seen itself: its
//     clock for a server starts when it gains leadership (or when the
//     server enters the configuration), and starts again at each
//     successful probe. A new leader never inherits a verdict;
//   - one server at a time, the one unreachable the longest; the next
//     only after the removal committed;
//   - never when fewer than Config.MinServers voters would remain;
//   - only when the voters left, counting only those reachable now (this
//     leader included), are a quorum of the configuration after the
//     removal.
//
// The signal is this package's own probe (GET /internal/status on the
// raft port, the call `roster members` makes) rather than raft's
// replication: raft reports a peer's last contact only through
// observations it drops when the reader is slow, and a dropped "resumed"
// would make a live server look dead; the probe's state is owned here and
// never lost. It crosses the same listener (and TLS) as raft's own RPCs,
// so a server the probe reaches is one raft reaches, and the answer must
// come from the server with the expected ID, so a new server started at
// a dead one's address does not keep the dead one in.

// autopilotTimeout bounds one probe of a server.
const autopilotTimeout = time.Second

// autopilotInterval is how often the leader probes: a quarter of
// DeadServerAfter, between 100 ms and 1 s.
func autopilotInterval(after time.Duration) time.Duration {
	return min(max(after/4, 100*time.Millisecond), time.Second)
}

// peerHealth is what the leader knows of one other server.
type peerHealth struct {
	addr string
	// lastOK is the last successful probe, or when this leader started
	// watching the server.
	lastOK time.Time
	// failing: the latest probe failed, with err.
	failing bool
	err     string
	// held is the reason last logged for keeping a dead server, so that
	// it is logged once, not at every probe.
	held string
}

// autopilot is the dead-server cleanup. Its seams are functions so that
// tests drive it with a fake clock, fake probes and a fake configuration;
// New wires them to the node and the internal RPCs. tick runs on one
// goroutine; unreachable may be called from any.
type autopilot struct {
	after      time.Duration
	minServers int
	self       string
	log        *slog.Logger
	now        func() time.Time
	leads      func() bool
	servers    func() ([]raftlog.Server, error)
	// probe checks that the server with this ID answers at addr.
	probe   func(ctx context.Context, id, addr string) error
	remove  func(ctx context.Context, id string) error
	removed func() // counts a removal

	mu    sync.Mutex
	peers map[string]*peerHealth // by server ID; empty while not leading
}

func newAutopilot(c *Cluster) *autopilot {
	return &autopilot{
		after: c.cfg.DeadServerAfter, minServers: c.cfg.MinServers, self: c.node.ID(), log: c.log, now: time.Now,
		leads: c.node.IsLeader, servers: c.node.Servers, probe: c.probe, remove: c.node.RemoveServer,
		removed: c.metrics.deadRemoved.Inc, peers: map[string]*peerHealth{},
	}
}

// probe asks the server at addr for its status and checks its ID.
func (c *Cluster) probe(ctx context.Context, id, addr string) error {
	var m Member
	if err := c.call(ctx, http.MethodGet, addr, pathStatus, nil, &m); err != nil {
		return err
	}
	if m.ID != id {
		return fmt.Errorf("server %q answers at %s", m.ID, addr)
	}
	return nil
}

// run probes and cleans up every interval until ctx ends.
func (ap *autopilot) run(ctx context.Context) {
	t := time.NewTicker(autopilotInterval(ap.after))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ap.tick(ctx)
	}
}

// tick probes every other server once, while this agent leads, and
// removes at most one dead voter.
func (ap *autopilot) tick(ctx context.Context) {
	if !ap.leads() {
		ap.reset()
		return
	}
	servers, err := ap.servers()
	if err != nil {
		return
	}
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		if s.ID == ap.self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, autopilotTimeout)
			defer cancel()
			errs[i] = ap.probe(pctx, s.ID, s.Address)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil || !ap.leads() {
		return
	}
	now := ap.now()
	ap.record(now, servers, errs)
	dead, ok := ap.candidate(now, servers)
	if !ok {
		return
	}
	ap.log.Warn("removing a dead server from the cluster", "id", dead.ID, "addr", dead.Address,
		"unreachable_for", dead.unreachable.Round(time.Millisecond).String(), "dead_server_after", ap.after.String(), "err", dead.err)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = ap.remove(rctx, dead.ID)
	cancel()
	if err != nil {
		ap.log.Warn("dead server not removed", "id", dead.ID, "addr", dead.Address, "err", err)
		return
	}
	ap.removed()
	ap.log.Warn("dead server removed from the cluster", "id", dead.ID, "addr", dead.Address)
	ap.mu.Lock()
	delete(ap.peers, dead.ID)
	ap.mu.Unlock()
}

// reset forgets everything: this agent does not lead.
func (ap *autopilot) reset() {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	clear(ap.peers)
}

// record takes the probes' results (errs[i] for servers[i]) at now.
func (ap *autopilot) record(now time.Time, servers []raftlog.Server, errs []error) {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	in := map[string]bool{}
	for i, s := range servers {
		if s.ID == ap.self {
			continue
		}
		in[s.ID] = true
		p := ap.peers[s.ID]
		if p == nil || p.addr != s.Address {
			// New to this leader (or moved): its clock starts now.
			p = &peerHealth{addr: s.Address, lastOK: now}
			ap.peers[s.ID] = p
		}
		if errs[i] == nil {
			if p.failing {
				ap.log.Info("server reachable again", "id", s.ID, "addr", s.Address, "unreachable_for", now.Sub(p.lastOK).Round(time.Millisecond).String())
			}
			p.lastOK, p.failing, p.err, p.held = now, false, "", ""
			continue
		}
		p.failing, p.err = true, errs[i].Error()
	}
	for id := range ap.peers {
		if !in[id] {
			delete(ap.peers, id)
		}
	}
}

// deadServer is a voter chosen for removal.
type deadServer struct {
	raftlog.Server
	unreachable time.Duration
	err         string
}

// candidate returns the voter to remove at now, if the rules allow one:
// the one unreachable the longest (by ID on a tie) among those
// unreachable for longer than DeadServerAfter, when at least MinServers
// voters would remain and those reachable among them are a quorum of
// what would remain. It logs, once per server and reason, why a dead
// server is kept.
func (ap *autopilot) candidate(now time.Time, servers []raftlog.Server) (deadServer, bool) {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	voters, reachable := 0, 0
	var dead []deadServer
	for _, s := range servers {
		if !s.Voter {
			continue
		}
		voters++
		p := ap.peers[s.ID]
		if s.ID == ap.self || p == nil || !p.failing {
			reachable++
			continue
		}
		if d := now.Sub(p.lastOK); d > ap.after {
			dead = append(dead, deadServer{Server: s, unreachable: d, err: p.err})
		}
	}
	if len(dead) == 0 {
		return deadServer{}, false
	}
	sort.Slice(dead, func(i, j int) bool {
		if dead[i].unreachable != dead[j].unreachable {
			return dead[i].unreachable > dead[j].unreachable
		}
		return dead[i].ID < dead[j].ID
	})
	d := dead[0]
	left := voters - 1
	var held string
	switch {
	case left < ap.minServers:
		held = fmt.Sprintf("removing it would leave %d voters, fewer than -min-servers %d", left, ap.minServers)
	case reachable < left/2+1:
		held = fmt.Sprintf("only %d of the %d voters that would remain are reachable, not a quorum", reachable, left)
	}
	if held == "" {
		return d, true
	}
	if p := ap.peers[d.ID]; p.held != held {
		p.held = held
		ap.log.Warn("dead server kept in the cluster", "id", d.ID, "addr", d.Address,
			"unreachable_for", d.unreachable.Round(time.Millisecond).String(), "reason", held)
	}
	return deadServer{}, false
}

// unreachable returns, by server ID, how long this leader has been unable
// to reach each server whose latest probe failed; nil when it does not
// lead or cleanup is off.
func (ap *autopilot) unreachable() map[string]time.Duration {
	if ap == nil || !ap.leads() {
		return nil
	}
	ap.mu.Lock()
	defer ap.mu.Unlock()
	var out map[string]time.Duration
	now := ap.now()
	for id, p := range ap.peers {
		if p.failing {
			if out == nil {
				out = map[string]time.Duration{}
			}
			out[id] = max(now.Sub(p.lastOK), time.Millisecond)
		}
	}
	return out
}
