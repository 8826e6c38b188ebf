package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/raftlog"
	"github.com/rosterhq/roster/internal/testutil"
)

// fakeConfig is the configuration and the network a test autopilot sees.
type fakeConfig struct {
	servers []raftlog.Server
	down    map[string]bool
	leads   bool
	removed []string
}

func voters(ids ...string) []raftlog.Server {
	out := make([]raftlog.Server, len(ids))
	for i, id := range ids {
		out[i] = raftlog.Server{ID: id, Address: "127.0.0.1:" + fmt.Sprint(8300+i), Voter: true}
	}
	return out
}

// newTestAutopilot is an autopilot for "a" over f, on a clock tests set.
func newTestAutopilot(t *testing.T, f *fakeConfig, after time.Duration, minServers int, now *time.Time) *autopilot {
	t.Helper()
	return &autopilot{
		after: after, minServers: minServers, self: "a", log: slog.New(slog.NewTextHandler(t.Output(), nil)),
		now:   func() time.Time { return *now },
		leads: func() bool { return f.leads },
		servers: func() ([]raftlog.Server, error) {
			return slices.Clone(f.servers), nil
		},
		probe: func(_ context.Context, id, _ string) error {
			if f.down[id] {
				return errors.New("connection refused")
			}
			return nil
		},
		remove: func(_ context.Context, id string) error {
			f.servers = slices.DeleteFunc(f.servers, func(s raftlog.Server) bool { return s.ID == id })
			f.removed = append(f.removed, id)
			return nil
		},
		removed: func() {},
		peers:   map[string]*peerHealth{},
	}
}

// TestAutopilotRules drives the dead-server cleanup with a fake clock:
// each step sets which servers are down and whether "a" leads, runs one
// probe round at that time, and checks every removal so far.
func TestAutopilotRules(t *testing.T) {
	type step struct {
		at          time.Duration
		down        []string
		follows     bool
		wantRemoved []string
	}
	tests := []struct {
		name       string
		servers    []raftlog.Server
		minServers int
		steps      []step
	}{
		{
			name: "a voter of five dead for longer than the threshold is removed", servers: voters("a", "b", "c", "d", "e"), minServers: 3,
			steps: []step{
				{at: 0, down: []string{"e"}},
				{at: 5 * time.Second, down: []string{"e"}},
				{at: 10 * time.Second, down: []string{"e"}}, // not longer than 10s yet
				{at: 11 * time.Second, down: []string{"e"}, wantRemoved: []string{"e"}},
				{at: 30 * time.Second, down: []string{"e"}, wantRemoved: []string{"e"}},
			},
		},
		{
			name: "never below min servers", servers: voters("a", "b", "c"), minServers: 3,
			steps: []step{
				{at: 0, down: []string{"c"}},
				{at: time.Hour, down: []string{"c"}},
				{at: 2 * time.Hour, down: []string{"c"}},
			},
		},
		{
			name: "a lower min servers lets three become two", servers: voters("a", "b", "c"), minServers: 2,
			steps: []step{
				{at: 0, down: []string{"c"}},
				{at: 11 * time.Second, down: []string{"c"}, wantRemoved: []string{"c"}},
			},
		},
		{
			name: "one at a time, the longest unreachable first", servers: voters("a", "b", "c", "d", "e"), minServers: 3,
			steps: []step{
				{at: 0, down: []string{"e"}},
				{at: 2 * time.Second, down: []string{"e"}},
				{at: 3 * time.Second, down: []string{"d", "e"}},
				{at: 20 * time.Second, down: []string{"d", "e"}, wantRemoved: []string{"e"}},
				{at: 21 * time.Second, down: []string{"d", "e"}, wantRemoved: []string{"e", "d"}},
			},
		},
		{
			name: "the same unreachable time goes by ID", servers: voters("a", "b", "c", "d", "e"), minServers: 3,
			steps: []step{
				{at: 0, down: []string{"e", "d"}},
				{at: 20 * time.Second, down: []string{"e", "d"}, wantRemoved: []string{"d"}},
			},
		},
		{
			name: "not when those left reachable are no quorum of what remains", servers: voters("a", "b", "c", "d", "e"), minServers: 1,
			steps: []step{
				{at: 0, down: []string{"c", "d", "e"}},
				// Four would remain with two reachable: no quorum of four.
				{at: time.Hour, down: []string{"c", "d", "e"}},
			},
		},
		{
			name: "down to the minimum, then no further", servers: voters("a", "b", "c", "d", "e"), minServers: 3,
			steps: []step{
				{at: 0, down: []string{"c", "d", "e"}},
				{at: 5 * time.Second, down: []string{"d", "e"}},
				// c was back at 5s: d and e go, one per round; c stays.
				{at: 20 * time.Second, down: []string{"d", "e"}, wantRemoved: []string{"d"}},
				{at: 21 * time.Second, down: []string{"d", "e"}, wantRemoved: []string{"d", "e"}},
				{at: 22 * time.Second, down: []string{"c"}, wantRemoved: []string{"d", "e"}},
				{at: time.Hour, down: []string{"c"}, wantRemoved: []string{"d", "e"}},
			},
		},
		{
			name: "a successful probe starts the clock again", servers: voters("a", "b", "c", "d"), minServers: 3,
			steps: []step{
				{at: 0, down: []string{"d"}},
				{at: 8 * time.Second},
				{at: 9 * time.Second, down: []string{"d"}},
				{at: 15 * time.Second, down: []string{"d"}},
				{at: 18 * time.Second, down: []string{"d"}},
				{at: 19 * time.Second, down: []string{"d"}, wantRemoved: []string{"d"}},
			},
		},
		{
			name: "a follower does nothing, and a new leader starts its own clock", servers: voters("a", "b", "c", "d"), minServers: 3,
			steps: []step{
				{at: 0, down: []string{"d"}},
				{at: 5 * time.Second, down: []string{"d"}, follows: true},
				{at: 100 * time.Second, down: []string{"d"}, follows: true},
				{at: 101 * time.Second, down: []string{"d"}},
				{at: 110 * time.Second, down: []string{"d"}},
				{at: 112 * time.Second, down: []string{"d"}, wantRemoved: []string{"d"}},
			},
		},
		{
			name: "non-voters are left alone", servers: append(voters("a", "b", "c", "d"), raftlog.Server{ID: "n", Address: "127.0.0.1:9000"}), minServers: 3,
			steps: []step{
				{at: 0, down: []string{"n"}},
				{at: time.Hour, down: []string{"n"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testutil.Context(t, 10*time.Second)
			f := &fakeConfig{servers: slices.Clone(tc.servers)}
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			start := now
			ap := newTestAutopilot(t, f, 10*time.Second, tc.minServers, &now)
			for _, st := range tc.steps {
				now = start.Add(st.at)
				f.leads = !st.follows
				f.down = map[string]bool{}
				for _, id := range st.down {
					f.down[id] = true
				}
				ap.tick(ctx)
				if !slices.Equal(f.removed, st.wantRemoved) {
					t.Fatalf("at %v: removed %v, want %v", st.at, f.removed, st.wantRemoved)
				}
			}
		})
	}
}

// TestAutopilotUnreachable: what members shows is what the leader has
// seen, and nothing on a follower.
func TestAutopilotUnreachable(t *testing.T) {
	ctx := testutil.Context(t, 10*time.Second)
	f := &fakeConfig{servers: voters("a", "b", "c"), down: map[string]bool{"c": true}, leads: true}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ap := newTestAutopilot(t, f, time.Minute, 3, &now)
	ap.tick(ctx)
	now = now.Add(1500 * time.Millisecond)
	ap.tick(ctx)
	now = now.Add(500 * time.Millisecond)
	if got := ap.unreachable(); len(got) != 1 || got["c"] != 2*time.Second {
		t.Fatalf("unreachable = %v, want c: 2s", got)
	}
	f.down = nil
	ap.tick(ctx)
	if got := ap.unreachable(); got != nil {
		t.Fatalf("unreachable once c answers = %v, want none", got)
	}
	f.down, f.leads = map[string]bool{"c": true}, false
	ap.tick(ctx)
	if got := ap.unreachable(); got != nil {
		t.Fatalf("unreachable on a follower = %v, want none", got)
	}
	if (*autopilot)(nil).unreachable() != nil {
		t.Fatal("cleanup off reports servers")
	}
}

// TestAutopilotInterval: a quarter of the threshold, within bounds.
func TestAutopilotInterval(t *testing.T) {
	for _, tc := range []struct{ after, want time.Duration }{
		{time.Second, 250 * time.Millisecond},
		{100 * time.Millisecond, 100 * time.Millisecond},
		{72 * time.Hour, time.Second},
	} {
		if got := autopilotInterval(tc.after); got != tc.want {
			t.Errorf("autopilotInterval(%v) = %v, want %v", tc.after, got, tc.want)
		}
	}
}

// TestDeadServerRemoved: four in-process servers; one stops for good.
// The leader removes it once it has been unreachable for longer than
// DeadServerAfter, counts it, and the three left keep serving writes.
func TestDeadServerRemoved(t *testing.T) {
	agents := startCluster(t, 4, nil, func(c *Config) { c.DeadServerAfter = time.Second })
	leader := leaderOf(t, agents)
	gone := followerOf(agents, leader)
	gone.close()
	ctx := testutil.Context(t, 30*time.Second)
	removed := func() float64 {
		n := 0.0
		for _, a := range agents {
			if !a.stopped {
				n += counter(t, a.metrics, "roster_cluster_dead_servers_removed_total")
			}
		}
		return n
	}
	// The configuration shows the removal once appended; the count
	// follows its commit.
	testutil.WaitFor(t, ctx, "the dead server removed and counted", func() bool {
		servers, err := leaderOf(t, agents).node.Servers()
		if err != nil || removed() == 0 {
			return false
		}
		for _, s := range servers {
			if s.ID == gone.node.ID() {
				return false
			}
		}
		return len(servers) == 3
	})
	if n := removed(); n != 1 {
		t.Fatalf("dead_servers_removed_total = %v over the live agents, want 1", n)
	}
	f := followerOf(agents, leaderOf(t, agents))
	if _, err := f.reg.Register(ctx, ttlInstance("web", "after-cleanup")); err != nil {
		t.Fatalf("write after the cleanup: %v", err)
	}
}

// TestDeadServerKeptAtMinServers: of three servers one stops; with
// MinServers 3 it stays in the configuration however long it is gone,
// and every member's view shows how long the leader has not reached it.
func TestDeadServerKeptAtMinServers(t *testing.T) {
	const after = 300 * time.Millisecond
	agents := startCluster(t, 3, nil, func(c *Config) { c.DeadServerAfter = after })
	leader := leaderOf(t, agents)
	gone := followerOf(agents, leader)
	gone.close()
	f := followerOf(agents, leader)
	ctx := testutil.Context(t, 30*time.Second)
	var seen Member
	testutil.WaitFor(t, ctx, "members showing the stopped server unreachable for 3x the threshold", func() bool {
		ms, err := f.c.Members(ctx)
		if err != nil {
			return false
		}
		for _, m := range ms {
			if m.ID == gone.node.ID() {
				seen = m
				return m.UnreachableMS > 3*after.Milliseconds()
			}
		}
		return false
	})
	if seen.Role != "unreachable" {
		t.Errorf("stopped server = %+v", seen)
	}
	servers, err := leaderOf(t, agents).node.Servers()
	if err != nil || len(servers) != 3 {
		t.Fatalf("servers = %+v, %v; want all three kept", servers, err)
	}
	for _, a := range agents {
		if a.stopped {
			continue
		}
		if n := counter(t, a.metrics, "roster_cluster_dead_servers_removed_total"); n != 0 {
			t.Fatalf("%s removed %v servers", a.node.ID(), n)
		}
	}
}

// TestWireStatusCompatible: the status answer is a Member with one more
// field, so agents of the version before read it, and a Member from them
// reads as a status without the leader's view.
func TestWireStatusCompatible(t *testing.T) {
	st := wireStatus{Member: Member{ID: "a", Role: "leader", Ready: true, Healthy: true}, Unreachable: map[string]int64{"c": 2500}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"id":"a","address":"","voter":false,"role":"leader","last_contact_ms":0,"ready":true,"healthy":true,"unreachable":{"c":2500}}`
	if string(b) != want {
		t.Fatalf("status = %s\nwant %s", b, want)
	}
	var old Member
	if err := json.Unmarshal(b, &old); err != nil || old != st.Member {
		t.Fatalf("read as a Member: %+v, %v", old, err)
	}
	var back wireStatus
	if err := json.Unmarshal([]byte(`{"id":"b","role":"follower","last_contact_ms":12,"ready":true,"healthy":true}`), &back); err != nil ||
		back.ID != "b" || back.Unreachable != nil {
		t.Fatalf("an older agent's Member read as a status: %+v, %v", back, err)
	}
}
