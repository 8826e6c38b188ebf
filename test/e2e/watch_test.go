package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// TestWatchCLI runs `roster watch web` as a subprocess and checks that a
// registration, an update and a deregistration each show up on its
// standard output, in text and in JSON.
func TestWatchCLI(t *testing.T) {
	ctx := bound(t)
	a := startAgent(t, testutil.AgentOptions{})
	// A first write, so that the registry is not at index 0 (see
	// TestSSEWatchResume/fresh agent for what happens then).
	register(t, a, "other", "o-1", map[string]any{"address": "10.0.9.1", "port": 1})

	tests := []struct {
		name  string
		flags []string
		// Each step's write must make a line matching the step's pattern.
		snapshot, added, updated, removed string
	}{
		{
			name:     "text",
			snapshot: `^index \d+: 0 instances$`,
			added:    `^\+ {id} 10\.0\.0\.7:8080 passing$`,
			updated:  `^~ {id} 10\.0\.0\.7:8081 passing$`,
			removed:  `^- {id}$`,
		},
		{
			name:     "json",
			flags:    []string{"--json"},
			snapshot: `^\{"event":"snapshot","data":\{"index":\d+\}\}$`,
			added:    `^\{"event":"change","data":.*"upserted":\[\{"service":"web","id":"{id}","address":"10\.0\.0\.7","port":8080`,
			updated:  `^\{"event":"change","data":.*"upserted":\[\{"service":"web","id":"{id}","address":"10\.0\.0\.7","port":8081`,
			removed:  `^\{"event":"change","data":.*"deleted":\[\{"service":"web","id":"{id}"\}\]`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := "w-" + tc.name
			args := append([]string{"watch", "web", "--http-addr", a.Addr}, tc.flags...)
			cmd := exec.CommandContext(ctx, testutil.BuildBinary(t), args...)
			cmd.Env = cliEnv()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var lines lineLog
			readDone := make(chan struct{})
			go func() {
				defer close(readDone)
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines.add(sc.Text())
				}
			}()
			exited := make(chan error, 1)
			go func() {
				<-readDone
				exited <- cmd.Wait()
			}()
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					_ = cmd.Process.Kill()
					<-exited
				}
				if t.Failed() {
					t.Logf("watch stdout:\n%s\nwatch stderr:\n%s", strings.Join(lines.snapshot(), "\n"), stderr.String())
				}
			})

			// Lines are matched in order: each pattern after the last match.
			next := 0
			expect := func(pattern string) {
				t.Helper()
				re := regexp.MustCompile(strings.ReplaceAll(pattern, "{id}", regexp.QuoteMeta(id)))
				testutil.Eventually(t, 10*time.Second, func() (bool, string) {
					got := lines.snapshot()
					for i := next; i < len(got); i++ {
						if re.MatchString(got[i]) {
							next = i + 1
							return true, ""
						}
					}
					return false, fmt.Sprintf("no line after line %d matches %s; lines:\n%s", next, re, strings.Join(got, "\n"))
				})
			}
			expect(tc.snapshot)
			register(t, a, "web", id, map[string]any{"address": "10.0.0.7", "port": 8080})
			expect(tc.added)
			register(t, a, "web", id, map[string]any{"address": "10.0.0.7", "port": 8081})
			expect(tc.updated)
			deregister(t, a, "web", id)
			expect(tc.removed)
			if tc.name == "json" {
				for _, l := range lines.snapshot() {
					var v struct {
						Event string          `json:"event"`
						Data  json.RawMessage `json:"data"`
					}
					if err := json.Unmarshal([]byte(l), &v); err != nil || v.Event == "" {
						t.Errorf("--json line is not an event object: %q (%v)", l, err)
					}
				}
			}

			// SIGTERM ends the watch cleanly.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			timer := time.NewTimer(10 * time.Second)
			defer timer.Stop()
			select {
			case err := <-exited:
				stopped = true
				if err != nil {
					t.Errorf("watch after SIGTERM: %v, want exit 0", err)
				}
			case <-timer.C:
				t.Fatal("watch still running 10s after SIGTERM")
			}
			if strings.TrimSpace(stderr.String()) != "" {
				t.Errorf("watch wrote to stderr: %q", stderr.String())
			}
		})
	}
}

// TestSSEWatchResume reads the native SSE watch: a snapshot first, one
// change event per change, and on reconnect with Last-Event-ID no gap.
func TestSSEWatchResume(t *testing.T) {
	ctx := bound(t)
	a := startAgent(t, testutil.AgentOptions{})
	register(t, a, "other", "o-1", map[string]any{"address": "10.0.9.1", "port": 1})
	watchURL := a.URL + "/v1/services/sse/watch"
	body := func(last byte) map[string]any {
		return map[string]any{"address": fmt.Sprintf("10.0.0.%d", last), "port": 80}
	}

	s := openSSE(t, ctx, watchURL, "")
	ev := s.next(t, 10*time.Second)
	if ev.Event != "snapshot" {
		t.Fatalf("first event %q, want snapshot", ev.Event)
	}
	if d := decodeEvent(t, ev); len(d.Instances) != 0 {
		t.Fatalf("snapshot of an empty service holds %d instances", len(d.Instances))
	}

	// Two registrations: change events that together upsert both.
	register(t, a, "sse", "a", body(1))
	register(t, a, "sse", "b", body(2))
	seen := map[string]bool{}
	var lastID string
	var lastIndex uint64
	for !seen["a"] || !seen["b"] {
		ev := s.next(t, 10*time.Second)
		if ev.Event != "change" {
			t.Fatalf("event %q after registrations, want change", ev.Event)
		}
		d := decodeEvent(t, ev)
		if d.Index <= lastIndex {
			t.Fatalf("event index %d after %d: not increasing", d.Index, lastIndex)
		}
		for _, in := range d.Upserted {
			seen[in.ID] = true
		}
		lastID, lastIndex = ev.ID, d.Index
	}
	s.close()

	// Missed while disconnected.
	register(t, a, "sse", "c", body(3))
	_, _, current := listInstances(t, a, "sse", "")

	t.Run("resume from last id", func(t *testing.T) {
		s := openSSE(t, ctx, watchURL, lastID)
		ev := s.next(t, 10*time.Second)
		d := decodeEvent(t, ev)
		var ids []string
		switch ev.Event {
		case "change":
			for _, in := range d.Upserted {
				ids = append(ids, in.ID)
			}
		case "snapshot":
			for _, in := range d.Instances {
				ids = append(ids, in.ID)
			}
		default:
			t.Fatalf("event %q", ev.Event)
		}
		if !slices.Contains(ids, "c") {
			t.Errorf("first %s event after resuming from %s holds %v, not the instance c registered meanwhile", ev.Event, lastID, ids)
		}
		if d.Index != current {
			t.Errorf("resumed at index %d, want %d", d.Index, current)
		}
	})

	tests := []struct {
		name, lastID string
	}{
		{"stale id", "1"},
		{"id from another history", "99999999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openSSE(t, ctx, watchURL, tc.lastID)
			ev := s.next(t, 10*time.Second)
			if ev.Event != "snapshot" {
				t.Fatalf("first event %q after Last-Event-ID %s, want snapshot", ev.Event, tc.lastID)
			}
			d := decodeEvent(t, ev)
			var ids []string
			for _, in := range d.Instances {
				ids = append(ids, in.ID)
			}
			if !slices.Equal(ids, []string{"a", "b", "c"}) || d.Index != current {
				t.Errorf("snapshot holds %v at index %d, want [a b c] at %d", ids, d.Index, current)
			}
		})
	}

	// A client that is current gets no first event; it must still get
	// its response headers at once (an EventSource reports the stream open
	// only then), and then the next change.
	t.Run("current id then a deregistration", func(t *testing.T) {
		base := testutil.Metric(t, a.URL, watchedKeys)
		s := dialSSE(t, ctx, watchURL, fmt.Sprint(current))
		waitBlocked(t, a, base) // the stream is open and waiting in the agent
		if msg, ok := pollFor(3*time.Second, s.headersArrived); !ok {
			t.Errorf("a stream resumed at the current index sent no response headers within %s: "+
				"the client cannot tell it is connected until the first event or keep-alive (15s)", msg)
		}
		deregister(t, a, "sse", "b")
		s.waitHeaders(t, 10*time.Second)
		ev := s.next(t, 10*time.Second)
		d := decodeEvent(t, ev)
		if ev.Event != "change" || len(d.Deleted) != 1 || d.Deleted[0].ID != "b" || len(d.Upserted) != 0 {
			t.Errorf("after a current Last-Event-ID and a deregistration: %s %s, want a change deleting b", ev.Event, ev.Data)
		}
	})

	// On an agent that never took a write the registry's index is 0, but
	// the API reports 1; a watch there must still wait, not spin.
	t.Run("fresh agent", func(t *testing.T) {
		f := startAgent(t, testutil.AgentOptions{Dev: true})
		s := openSSE(t, ctx, f.URL+"/v1/services/ghost/watch", "")
		if ev := s.next(t, 10*time.Second); ev.Event != "snapshot" {
			t.Fatalf("first event %q, want snapshot", ev.Event)
		}
		// Nothing happens for a while: no event, and no more than a
		// keep-alive or two (the agent sends one per 15 s).
		quiet := time.NewTimer(500 * time.Millisecond)
		defer quiet.Stop()
		select {
		case ev := <-s.events:
			t.Fatalf("unexpected event %s %s", ev.Event, ev.Data)
		case <-quiet.C:
		}
		if n := s.comments.Load(); n > 2 {
			t.Errorf("watch of an idle service on a fresh agent sent %d keep-alive comments in 500ms: it is spinning", n)
		}
		// And it still reports the first write.
		register(t, f, "ghost", "g-1", body(9))
		if ev := s.next(t, 10*time.Second); ev.Event != "change" {
			t.Errorf("event %q after the first write, want change", ev.Event)
		}
	})
}
