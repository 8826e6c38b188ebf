package balance_test

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/client/balance"
)

func endpoints(weights ...int) []*balance.Endpoint {
	eps := make([]*balance.Endpoint, len(weights))
	for i, w := range weights {
		eps[i] = &balance.Endpoint{Service: "web", ID: "web-" + strconv.Itoa(i), Addr: "10.0.0." + strconv.Itoa(i+1) + ":80", Weight: w}
	}
	return eps
}

func counts(p balance.Picker, n int) map[string]int {
	got := map[string]int{}
	for i := range n {
		e := p.Pick(balance.HashString(strconv.Itoa(i)))
		if e == nil {
			got[""]++
			continue
		}
		got[e.ID]++
	}
	return got
}

// within reports whether got is within tol (a fraction) of want.
func within(got, want int, tol float64) bool {
	return math.Abs(float64(got-want)) <= tol*float64(want)
}

func TestSpread(t *testing.T) {
	const n = 30000
	tests := []struct {
		name    string
		b       balance.Balancer
		weights []int
		want    []float64 // share of each endpoint
		tol     float64
	}{
		{"round robin", balance.RoundRobin(), []int{1, 5, 1}, []float64{1. / 3, 1. / 3, 1. / 3}, 0.001},
		{"random", balance.Random(), []int{1, 5, 1}, []float64{1. / 3, 1. / 3, 1. / 3}, 0.05},
		{"weighted", balance.WeightedRandom(), []int{1, 2, 3}, []float64{1. / 6, 2. / 6, 3. / 6}, 0.06},
		{"least loaded idle", balance.LeastLoaded(), []int{1, 1, 1, 1}, []float64{.25, .25, .25, .25}, 0.06},
		{"ring hash", balance.RingHash(), []int{1, 1, 1, 1}, []float64{.25, .25, .25, .25}, 0.15},
		{"ring hash weighted", balance.RingHash(), []int{1, 3}, []float64{.25, .75}, 0.15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := endpoints(tc.weights...)
			got := counts(tc.b.Build(eps), n)
			for i, e := range eps {
				want := int(tc.want[i] * n)
				if !within(got[e.ID], want, tc.tol) {
					t.Errorf("%s got %d picks, want %d ±%.0f%% (all: %v)", e.ID, got[e.ID], want, tc.tol*100, got)
				}
			}
		})
	}
}

func TestPriorityFailsOverOnlyWhenBetterTierIsGone(t *testing.T) {
	eps := endpoints(1, 3, 1, 1)
	eps[0].Priority, eps[1].Priority = 0, 0
	eps[2].Priority, eps[3].Priority = 10, 10
	out := &balance.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Hour}
	for _, e := range eps {
		e.Outlier = out
	}
	p := balance.Priority().Build(eps)
	got := counts(p, 8000)
	if got["web-2"]+got["web-3"] != 0 {
		t.Fatalf("lower priority used while the better one is available: %v", got)
	}
	if !within(got["web-1"], 6000, 0.06) {
		t.Fatalf("weights within the priority not honoured: %v", got)
	}
	eps[0].Report(false)
	if got := counts(p, 1000); got["web-1"] != 1000 {
		t.Fatalf("one of the best priority left: all picks should go to it: %v", got)
	}
	eps[1].Report(false)
	got = counts(p, 4000)
	if got["web-0"]+got["web-1"] != 0 || !within(got["web-2"], 2000, 0.1) {
		t.Fatalf("after the best priority is ejected, want the next one evenly: %v", got)
	}
}

func TestEjectedSkippedAndNilWhenNoneLeft(t *testing.T) {
	policies := map[string]balance.Balancer{
		"round robin": balance.RoundRobin(), "random": balance.Random(), "weighted": balance.WeightedRandom(),
		"priority": balance.Priority(), "ring hash": balance.RingHash(), "least loaded": balance.LeastLoaded(),
	}
	for name, b := range policies {
		t.Run(name, func(t *testing.T) {
			eps := endpoints(1, 1, 1)
			out := &balance.Outlier{ConsecutiveFailures: 2, BaseEjection: time.Hour}
			for _, e := range eps {
				e.Outlier = out
			}
			p := b.Build(eps)
			eps[1].Report(false)
			eps[1].Report(false)
			if eps[1].Available() {
				t.Fatal("two failures with a threshold of 2 did not eject")
			}
			if got := counts(p, 3000); got["web-1"] != 0 || got[""] != 0 {
				t.Fatalf("ejected endpoint picked or nil returned: %v", got)
			}
			eps[0].Report(false)
			eps[0].Report(false)
			eps[2].Report(false)
			eps[2].Report(false)
			if e := p.Pick(7); e != nil {
				t.Fatalf("all ejected: got %s, want nil", e.ID)
			}
			if e := b.Build(nil).Pick(7); e != nil {
				t.Fatalf("empty set: got %s, want nil", e.ID)
			}
		})
	}
}

// TestAllEjectedPickIsLinear: when every endpoint is ejected, a pick
// looks at each endpoint about once (it reads the clock of each ejected
// one it looks at), not at each of a ring's 160 points per endpoint.
func TestAllEjectedPickIsLinear(t *testing.T) {
	policies := map[string]balance.Balancer{
		"round robin": balance.RoundRobin(), "random": balance.Random(), "weighted": balance.WeightedRandom(),
		"priority": balance.Priority(), "ring hash": balance.RingHash(), "least loaded": balance.LeastLoaded(),
	}
	for name, b := range policies {
		t.Run(name, func(t *testing.T) {
			var reads atomic.Int64
			out := &balance.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Hour, Now: func() time.Time {
				reads.Add(1)
				return time.Unix(1e9, 0)
			}}
			eps := endpoints(1, 2, 3, 1, 2, 3, 1, 2, 3, 1)
			for _, e := range eps {
				e.Outlier = out
				e.Report(false)
			}
			p := b.Build(eps)
			for key := range uint64(20) {
				reads.Store(0)
				if e := p.Pick(key * 0x9e3779b97f4a7c15); e != nil {
					t.Fatalf("all ejected: got %s, want nil", e.ID)
				}
				if n, limit := reads.Load(), int64(2*len(eps)+2); n > limit {
					t.Fatalf("one pick over %d ejected endpoints looked %d times, want at most %d", len(eps), n, limit)
				}
			}
		})
	}
}

// TestCancelReportsNothing: a request the caller canceled ends without an
// outcome: it neither counts as a failure nor ends a run of failures.
func TestCancelReportsNothing(t *testing.T) {
	e := endpoints(1)[0]
	e.Outlier = &balance.Outlier{ConsecutiveFailures: 2, BaseEjection: time.Hour}
	for range 10 {
		e.Begin()
		e.Cancel()
	}
	if !e.Available() || e.InFlight() != 0 {
		t.Fatalf("after canceled requests: available %v, in flight %d", e.Available(), e.InFlight())
	}
	e.Begin()
	e.End(false)
	e.Begin()
	e.Cancel() // not a success: the run of failures goes on
	e.Begin()
	e.End(false)
	if e.Available() {
		t.Fatal("two failures around a canceled request did not eject (threshold 2)")
	}
	if e.InFlight() != 0 {
		t.Fatalf("in flight %d, want 0", e.InFlight())
	}
}

func TestOutlierEjectionBacksOff(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	out := &balance.Outlier{ConsecutiveFailures: 3, BaseEjection: 10 * time.Second, MaxEjection: 40 * time.Second, Now: clock}
	e := &balance.Endpoint{ID: "a", Outlier: out}
	fail := func(n int) {
		for range n {
			e.Report(false)
		}
	}
	fail(2)
	e.Report(true) // a success resets the run
	fail(2)
	if !e.Available() {
		t.Fatal("ejected before 3 consecutive failures")
	}
	fail(1)
	if e.Available() {
		t.Fatal("not ejected after 3 consecutive failures")
	}
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second} {
		if i > 0 {
			fail(3)
		}
		now.Add(int64(want - time.Millisecond))
		if e.Available() {
			t.Fatalf("ejection %d ended before %v", i+1, want)
		}
		now.Add(int64(time.Millisecond))
		if !e.Available() {
			t.Fatalf("ejection %d still on after %v", i+1, want)
		}
	}
	// A long healthy stretch forgives: the next ejection is the base again.
	now.Add(int64(time.Minute))
	e.Report(true)
	fail(3)
	now.Add(int64(10 * time.Second))
	if !e.Available() {
		t.Fatal("ejection after a healthy stretch should be the base length")
	}
}

func TestRingHashMinimalMovement(t *testing.T) {
	const keys = 20000
	eps := endpoints(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	before := balance.RingHash().Build(eps)
	after := balance.RingHash().Build(eps[:9]) // web-9 leaves
	moved := 0
	for i := range keys {
		k := balance.HashString("user-" + strconv.Itoa(i))
		a, b := before.Pick(k), after.Pick(k)
		if a.ID != b.ID {
			if a.ID != "web-9" {
				t.Fatalf("key %d moved from %s (still present) to %s", i, a.ID, b.ID)
			}
			moved++
		}
	}
	// About 1/10 of the keys were on web-9.
	if !within(moved, keys/10, 0.25) {
		t.Fatalf("%d keys moved, want about %d", moved, keys/10)
	}
	// Same key, same endpoint, in a ring built by another client.
	again := balance.RingHash().Build(endpoints(1, 1, 1, 1, 1, 1, 1, 1, 1, 1))
	for i := range 1000 {
		k := balance.HashString(fmt.Sprint(i))
		if before.Pick(k).ID != again.Pick(k).ID {
			t.Fatal("two rings of the same set disagree")
		}
	}
}

func TestRingHashEjectionMovesKeysBack(t *testing.T) {
	eps := endpoints(1, 1, 1)
	out := &balance.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Hour}
	for _, e := range eps {
		e.Outlier = out
	}
	p := balance.RingHash().Build(eps)
	k := balance.HashString("user-42")
	home := p.Pick(k)
	home.Report(false)
	other := p.Pick(k)
	if other == home || other == nil {
		t.Fatalf("ejected home %s still picked (%v)", home.ID, other)
	}
	home.Eject(0) // the ejection ends
	if got := p.Pick(k); got != home {
		t.Fatalf("key did not move back home: %s", got.ID)
	}
}

func TestLeastLoadedPrefersIdle(t *testing.T) {
	eps := endpoints(1, 1, 1, 1)
	for range 50 {
		eps[0].Begin()
	}
	p := balance.LeastLoaded().Build(eps)
	got := counts(p, 4000)
	// web-0 is chosen only when drawn twice, which never happens (two
	// distinct draws): never.
	if got["web-0"] != 0 {
		t.Fatalf("busy endpoint picked: %v", got)
	}
	for range 50 {
		eps[0].End(true)
	}
	if eps[0].InFlight() != 0 {
		t.Fatalf("in flight %d, want 0", eps[0].InFlight())
	}
}

func TestConcurrentPick(t *testing.T) {
	eps := endpoints(1, 2, 3, 4)
	out := &balance.Outlier{ConsecutiveFailures: 2, BaseEjection: time.Millisecond}
	for _, e := range eps {
		e.Outlier = out
	}
	known := map[*balance.Endpoint]bool{}
	for _, e := range eps {
		known[e] = true
	}
	for _, b := range []balance.Balancer{balance.RoundRobin(), balance.RingHash(), balance.LeastLoaded(), balance.Priority()} {
		p := b.Build(eps)
		var (
			wg      sync.WaitGroup
			picked  atomic.Int64
			strange atomic.Pointer[balance.Endpoint]
		)
		for g := range 4 {
			wg.Go(func() {
				for i := range 2000 {
					e := p.Pick(uint64(i * g))
					if e == nil {
						continue
					}
					if !known[e] {
						strange.Store(e)
						continue
					}
					picked.Add(1)
					e.Begin()
					e.End(i%3 != 0)
				}
			})
		}
		wg.Wait()
		// Every pick is one of the endpoints, some picks succeed although
		// failures eject endpoints, and every Begin was matched by its End.
		if e := strange.Load(); e != nil {
			t.Errorf("%T picked an endpoint it was not built with: %+v", p, e)
		}
		if picked.Load() == 0 {
			t.Errorf("%T picked no endpoint in 8000 picks", p)
		}
		for _, e := range eps {
			if n := e.InFlight(); n != 0 {
				t.Errorf("%T: %s has %d in flight after every request ended, want 0", p, e.ID, n)
			}
		}
	}
}

func TestHashStringMatchesHashBytes(t *testing.T) {
	for _, s := range []string{"", "a", "user-1", "ünïcode"} {
		if balance.HashString(s) != balance.HashBytes([]byte(s)) {
			t.Fatalf("HashString(%q) != HashBytes", s)
		}
	}
	if balance.HashString("a") == balance.HashString("b") {
		t.Fatal("trivial collision")
	}
}

// TestEjectWithoutOutlierDetection: an explicit Eject holds even when
// passive outlier detection is off (nil Outlier), and ends on time.
func TestEjectWithoutOutlierDetection(t *testing.T) {
	eps := endpoints(1, 1)
	eps[0].Eject(time.Hour)
	if eps[0].Available() {
		t.Fatal("ejected endpoint without an Outlier is still available")
	}
	if got := counts(balance.RoundRobin().Build(eps), 100); got["web-0"] != 0 {
		t.Fatalf("ejected endpoint picked: %v", got)
	}
	eps[0].Eject(0) // the ejection ends
	if !eps[0].Available() {
		t.Fatal("ejection did not end")
	}
}
