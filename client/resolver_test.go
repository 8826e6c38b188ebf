package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/internal/testagent"
)

func ids(ins []client.Instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.ID)
	}
	slices.Sort(out)
	return out
}

// quiet checks that the resolver sends no query for d: it is fed by
// blocking queries, not polling.
func quiet(t *testing.T, r *client.Resolver, d time.Duration) {
	t.Helper()
	// Let the watches settle into their blocking queries (the first
	// answer is followed by a blocking query after MinInterval+Jitter).
	last, since := r.Stats().Queries, time.Now()
	eventually(t, 2*time.Second, func() (bool, string) {
		if q := r.Stats().Queries; q != last {
			last, since = q, time.Now()
		}
		return time.Since(since) > 100*time.Millisecond, "queries keep coming"
	})
	before := r.Stats().Queries
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if got := r.Stats().Queries; got != before {
			t.Fatalf("%d queries while nothing changed: the resolver polls", got-before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestResolverFollowsChanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		direct int
	}{
		{"blocking query per service", 0},
		{"service list watch", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := testagent.Start(t)
			c := newClient(t, a)
			var updates atomic.Int64
			r := fastResolver(t, c, client.ResolverConfig{MaxDirectWatches: tc.direct,
				Hooks: client.Hooks{Updated: func(string, uint64, int) { updates.Add(1) }}})
			_, regs := fleet(t, c, "web", 3, nil)
			ins, err := r.Instances(ctxT(t), "web")
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(ins); !slices.Equal(got, []string{"web-0", "web-1", "web-2"}) {
				t.Fatalf("first lookup: %v", got)
			}
			// A service nobody registered: an empty set, not an error.
			if ins, err := r.Instances(ctxT(t), "nobody"); err != nil || len(ins) != 0 {
				t.Fatalf("unknown service: %v, %v", ins, err)
			}
			if _, err := r.Pick(ctxT(t), "nobody", ""); !errors.Is(err, client.ErrNoInstances) {
				t.Fatalf("pick of unknown service: %v", err)
			}
			quiet(t, r, 300*time.Millisecond)

			fleet(t, c, "other", 1, nil) // another service's change
			extra, _ := fleet(t, c, "web", 1, func(i int, in *client.Instance) { in.ID = "web-9" })
			_ = extra
			eventually(t, 5*time.Second, func() (bool, string) {
				ins, _ := r.Instances(ctxT(t), "web")
				return len(ins) == 4, fmt.Sprint(ids(ins))
			})
			if err := regs[1].Deregister(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, func() (bool, string) {
				ins, _ := r.Instances(ctxT(t), "web")
				return slices.Equal(ids(ins), []string{"web-0", "web-2", "web-9"}), fmt.Sprint(ids(ins))
			})
			if r.Stale("web") {
				t.Fatal("stale while the agent is up")
			}
			if s := r.Stats(); s.Services != 2 || s.Errors != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestResolverServesLastKnownWhileAgentIsDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		direct int
	}{
		{"blocking query per service", 0},
		{"service list watch", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := testagent.Start(t)
			c := newClient(t, a)
			var stale, fresh atomic.Int64
			r := fastResolver(t, c, client.ResolverConfig{MaxDirectWatches: tc.direct, Hooks: client.Hooks{
				Stale: func(string, error) { stale.Add(1) },
				Fresh: func(string) { fresh.Add(1) },
			}})
			backends, _ := fleet(t, c, "pay", 2, nil)
			hc := &http.Client{Transport: &client.Transport{Resolver: r, Match: client.MatchHosts("pay")}}
			get := func() string {
				t.Helper()
				resp, err := hc.Get("http://pay/")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return string(b)
			}
			get()

			a.Kill()
			eventually(t, 5*time.Second, func() (bool, string) {
				return r.Stale("pay") && stale.Load() >= 1, "not marked stale"
			})
			ins, err := r.Instances(ctxT(t), "pay")
			if err != nil || len(ins) != 2 {
				t.Fatalf("while the agent is down: %v, %v", ids(ins), err)
			}
			// Calls keep flowing to the known instances.
			seen := map[string]bool{}
			for range 20 {
				seen[get()] = true
			}
			if !seen[backends[0].name] || !seen[backends[1].name] {
				t.Fatalf("while the agent is down, requests reached %v", seen)
			}
			if s := r.Stats(); s.Stale != 1 || s.Errors == 0 {
				t.Fatalf("stats while down: %+v", s)
			}

			// A new, empty registry on the same address: the registrations
			// come back through their renewals, the resolver reconnects.
			a.Restart()
			eventually(t, 15*time.Second, func() (bool, string) {
				ins, _ := r.Instances(ctxT(t), "pay")
				return !r.Stale("pay") && fresh.Load() >= 1 && len(ins) == 2, fmt.Sprintf("stale=%v set=%v", r.Stale("pay"), ids(ins))
			})
		})
	}
}

// fakeAgent answers instance queries of service "x" from a script of
// indexes, and records the index each request asked for and when it came.
type fakeAgent struct {
	mu     sync.Mutex
	asked  []string
	at     []time.Time
	answer func(n int, asked string) (index uint64, block bool)
}

func (f *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/services/x/instances") {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	asked := r.URL.Query().Get("index")
	f.asked = append(f.asked, asked)
	f.at = append(f.at, time.Now())
	n := len(f.asked)
	f.mu.Unlock()
	idx, block := f.answer(n, asked)
	if block {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
	w.Header().Set(client.IndexHeader, fmt.Sprint(idx))
	fmt.Fprintf(w, `{"service":"x","index":%d,"instances":[{"service":"x","id":"x-%d","address":"127.0.0.1","port":1,"weight":1,"health":"passing"}]}`, idx, idx)
}

func (f *fakeAgent) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.asked)
}

func TestWatchStartsOverWhenIndexGoesBack(t *testing.T) {
	t.Parallel()
	f := &fakeAgent{answer: func(n int, asked string) (uint64, bool) {
		switch n {
		case 1:
			return 10, false
		case 2:
			return 4, false // a restored registry: the index went back
		case 3:
			return 5, false
		}
		return 5, true
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := client.New(client.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	var resets atomic.Int64
	r := fastResolver(t, c, client.ResolverConfig{Hooks: client.Hooks{IndexReset: func(_ string, from, to uint64) {
		if from != 10 || to != 4 {
			t.Errorf("reset from %d to %d, want 10 to 4", from, to)
		}
		resets.Add(1)
	}}})
	if _, err := r.Instances(ctxT(t), "x"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		return len(f.requests()) >= 4, fmt.Sprint(f.requests())
	})
	got := f.requests()[:4]
	if want := []string{"", "10", "", "5"}; !slices.Equal(got, want) {
		t.Fatalf("asked indexes %q, want %q (start over from 0 after the index went back)", got, want)
	}
	if resets.Load() != 1 {
		t.Fatalf("%d resets", resets.Load())
	}
	ins, _ := r.Instances(ctxT(t), "x")
	if ins[0].ID != "x-5" {
		t.Fatalf("set after reset: %v", ids(ins))
	}
}

// TestWatchDoesNotSpin: against a server that never blocks, a watch sends
// its queries at least MinInterval apart. The test looks at the gaps
// between the first queries as the server received them: each query
// starts at least MinInterval after the answer to the one before, which
// the server sent after receiving it, so a slow machine only widens the
// gaps, and a watch that spins fails.
func TestWatchDoesNotSpin(t *testing.T) {
	t.Parallel()
	const minInterval = 50 * time.Millisecond
	tests := []struct {
		name   string
		answer func(n int) uint64
	}{
		{"index keeps going back", func(n int) uint64 { return uint64(100 - n%50) }},
		{"index never moves", func(int) uint64 { return 7 }},
		{"index moves at every answer", func(n int) uint64 { return uint64(n) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeAgent{answer: func(n int, _ string) (uint64, bool) { return tc.answer(n), false }}
			srv := httptest.NewServer(f)
			defer srv.Close()
			c, err := client.New(client.Config{Address: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			r := client.NewResolver(c, client.ResolverConfig{MinInterval: minInterval, Jitter: time.Millisecond})
			defer r.Close()
			if _, err := r.Instances(ctxT(t), "x"); err != nil {
				t.Fatal(err)
			}
			const queries = 8
			eventually(t, 20*time.Second, func() (bool, string) {
				return len(f.arrivals()) >= queries, fmt.Sprint(len(f.arrivals()), " queries")
			})
			at := f.arrivals()
			for i := 1; i < queries; i++ {
				if gap := at[i].Sub(at[i-1]); gap < minInterval {
					t.Fatalf("query %d came %v after the one before it, want at least MinInterval (%v): the watch spins", i+1, gap, minInterval)
				}
			}
		})
	}
}

// arrivals returns when each request came.
func (f *fakeAgent) arrivals() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.at)
}

func TestResolverUnreachableFirstLookup(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there now
	c, err := client.New(client.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	r := fastResolver(t, c, client.ResolverConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.Instances(ctx, "web"); err == nil {
		t.Fatal("lookup with no registry and nothing known succeeded")
	}
}
