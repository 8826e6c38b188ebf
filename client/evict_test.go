package client_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
)

// droppedLog records the Dropped hook's calls.
type droppedLog struct {
	mu    sync.Mutex
	names []string
}

func (d *droppedLog) add(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.names = append(d.names, name)
}

func (d *droppedLog) get() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.names)
}

// TestIdleServicesAreDropped: a service nobody uses is dropped after
// IdleTimeout (its watch stops, and with it the service-list watch once
// it follows nothing), while a service in use and one held by an open
// Target stay; a later lookup fetches a dropped service again, and a
// Transport keeps working across the drop.
func TestIdleServicesAreDropped(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	tests := []struct {
		name    string
		direct  int
		watched func(f *fakeRegistry, service string) bool // a watch of the service is open
	}{
		{"blocking query per service", 0, func(f *fakeRegistry, s string) bool {
			return f.inProgress("/v1/services/"+s+"/instances") > 0
		}},
		{"service list watch", -1, func(f *fakeRegistry, _ string) bool { return f.inProgress("/v1/services") > 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBackend(t, "web-0")
			f := newFakeRegistry(t)
			for _, s := range []string{"held", "used", "idle", "web"} {
				f.set(s, inst(s, s+"-0", b.port, nil))
			}
			var dropped droppedLog
			r := fastResolver(t, f.client(t), client.ResolverConfig{MaxDirectWatches: tc.direct, IdleTimeout: idle,
				Hooks: client.Hooks{Dropped: dropped.add}})
			held, err := r.Target(ctxT(t), "held", client.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Pick(ctxT(t), "used", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Instances(ctxT(t), "idle"); err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Transport: &client.Transport{Resolver: r, Match: client.MatchHosts("*.svc")}}
			if got := get(t, hc, "http://web.svc/"); got != "web-0" {
				t.Fatalf("through the transport: %q", got)
			}

			// Use "used" (well within the idle time) until "idle" and "web"
			// are dropped.
			var maxGap time.Duration
			last := time.Now()
			eventually(t, 10*time.Second, func() (bool, string) {
				if _, err := r.Pick(ctxT(t), "used", ""); err != nil {
					t.Fatal(err)
				}
				maxGap, last = max(maxGap, time.Since(last)), time.Now()
				got := dropped.get()
				slices.Sort(got)
				return len(got) >= 2, fmt.Sprint("dropped ", got)
			})
			got := dropped.get()
			slices.Sort(got)
			if maxGap < idle/2 {
				// (Unless this goroutine stalled for most of the idle time,
				// "used" was in use all along.)
				if !slices.Equal(got, []string{"idle", "web"}) {
					t.Fatalf("dropped %v, want [idle web]", got)
				}
				if s := r.Stats(); s.Services != 2 || s.Dropped != 2 {
					t.Fatalf("stats %+v, want 2 services followed and 2 dropped", s)
				}
			}
			if tc.direct == 0 {
				eventually(t, 5*time.Second, func() (bool, string) {
					return !tc.watched(f, "idle") && !tc.watched(f, "web"), "a dropped service's watch is still open"
				})
			}

			// Requests through the transport keep working: the service is
			// fetched again.
			fetches := len(f.requests("/v1/services/web/instances"))
			if got := get(t, hc, "http://web.svc/"); got != "web-0" {
				t.Fatalf("through the transport after the drop: %q", got)
			}
			if n := len(f.requests("/v1/services/web/instances")); n == fetches {
				t.Fatal("the transport used a dropped service without fetching it again")
			}
			// A closed Target lets its service go; with nothing in use,
			// nothing stays followed.
			held.Close()
			eventually(t, 10*time.Second, func() (bool, string) {
				s := r.Stats()
				return s.Services == 0 && !tc.watched(f, "held") && !tc.watched(f, "used") && !tc.watched(f, "web"),
					fmt.Sprintf("stats %+v, dropped %v", s, dropped.get())
			})
			// A later lookup fills the cache again.
			ins, err := r.Instances(ctxT(t), "idle")
			if err != nil || len(ins) != 1 {
				t.Fatalf("lookup after the drop: %v, %v", ins, err)
			}
			eventually(t, 5*time.Second, func() (bool, string) {
				return tc.watched(f, "idle"), "no watch after the lookup"
			})
		})
	}
}

// TestRejectedNameIsNotRetried: a name the agent rejects (400) fails
// lookups at once with the agent's error, without asking again, and is
// dropped after RejectedTTL instead of being retried in the background;
// the next lookup asks again.
func TestRejectedNameIsNotRetried(t *testing.T) {
	t.Parallel()
	for _, direct := range []int{0, -1} {
		t.Run(fmt.Sprint("direct=", direct), func(t *testing.T) {
			t.Parallel()
			f := newFakeRegistry(t)
			var dropped droppedLog
			r := fastResolver(t, f.client(t), client.ResolverConfig{MaxDirectWatches: direct,
				RejectedTTL: 300 * time.Millisecond, Hooks: client.Hooks{Dropped: dropped.add}})
			const path = "/v1/services/no_such/instances"
			lookup := func() {
				t.Helper()
				_, err := r.Instances(ctxT(t), "no_such")
				var ae *client.APIError
				if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
					t.Fatalf("lookup of an invalid name: %v, want the agent's 400", err)
				}
			}
			lookup()
			lookup() // remembered: no second request
			if n := len(f.requests(path)); n != 1 {
				t.Fatalf("%d requests for a rejected name, want 1", n)
			}
			eventually(t, 10*time.Second, func() (bool, string) {
				return slices.Equal(dropped.get(), []string{"no_such"}), fmt.Sprint("dropped ", dropped.get())
			})
			// Not retried in the background while it was remembered (the
			// fast resolver reconnects from 20ms).
			if n := len(f.requests(path)); n != 1 {
				t.Fatalf("%d requests for a rejected name before it was dropped, want 1", n)
			}
			if s := r.Stats(); s.Services != 0 {
				t.Fatalf("stats after the drop: %+v", s)
			}
			eventually(t, 5*time.Second, func() (bool, string) {
				return f.inProgress("/v1/services") == 0, "the service-list watch runs on with nothing to follow"
			})
			lookup()
			if n := len(f.requests(path)); n != 2 {
				t.Fatalf("%d requests after a lookup of the dropped name, want 2", n)
			}
		})
	}
}
