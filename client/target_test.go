package client_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/balance"
	"github.com/rosterhq/roster/client/internal/testagent"
)

func TestTargetFilters(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	c := newClient(t, a)
	r := fastResolver(t, c, client.ResolverConfig{Zone: "a", Outlier: &balance.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Hour}})
	// Six instances: zones a,a,b,b,b,b; version v1 except 4 and 5 (v2);
	// instance 1 a canary; instance 2 tagged "blue".
	for i := range 6 {
		in := client.Instance{Service: "cat", ID: fmt.Sprint("cat-", i), Address: "127.0.0.1", Port: 1000 + i,
			Zone: "b", Meta: map[string]string{"version": "v1"}}
		if i < 2 {
			in.Zone = "a"
		}
		if i >= 4 {
			in.Meta["version"] = "v2"
		}
		in.Canary = i == 1
		if i == 2 {
			in.Tags = []string{"blue"}
		}
		if _, err := c.Register(ctxT(t), in); err != nil {
			t.Fatal(err)
		}
	}
	picks := func(tg *client.Target, n int) map[string]int {
		got := map[string]int{}
		for i := range n {
			e, err := tg.Pick(fmt.Sprint(i))
			if err != nil {
				t.Fatal(err)
			}
			got[e.ID]++
		}
		return got
	}
	keys := func(m map[string]int) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	tests := []struct {
		name   string
		filter client.Filter
		want   []string
	}{
		{"local zone preferred", client.Filter{}, []string{"cat-0", "cat-1"}},
		{"other zone asked", client.Filter{Zone: "b"}, []string{"cat-2", "cat-3", "cat-4", "cat-5"}},
		{"no canaries", client.Filter{Canary: client.CanaryExclude}, []string{"cat-0"}},
		{"only canaries", client.Filter{Canary: client.CanaryOnly}, []string{"cat-1"}},
		{"tag", client.Filter{Tags: []string{"blue"}}, []string{"cat-2"}},
		{"meta", client.Filter{Meta: map[string]string{"version": "v2"}}, []string{"cat-4", "cat-5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := r.Target(ctxT(t), "cat", tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			if got := keys(picks(tg, 400)); !slices.Equal(got, tc.want) {
				t.Fatalf("picked %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("subsets split by weight", func(t *testing.T) {
		tg, err := r.Target(ctxT(t), "cat", client.Filter{Zone: "b", Subsets: []client.Subset{
			{Name: "stable", Meta: map[string]string{"version": "v1"}, Weight: 90},
			{Name: "next", Meta: map[string]string{"version": "v2"}, Weight: 10},
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		const n = 10000
		got := picks(tg, n)
		v2 := got["cat-4"] + got["cat-5"]
		if v2 < n*8/100 || v2 > n*12/100 {
			t.Fatalf("v2 got %d of %d picks, want 10%% ±2%%: %v", v2, n, got)
		}
		// A key always lands in the same subset (and instance, here).
		for i := range 50 {
			k := fmt.Sprint("user-", i)
			e1, _ := tg.Pick(k)
			e2, _ := tg.Pick(k)
			if e1.Meta["version"] != e2.Meta["version"] {
				t.Fatalf("key %s moved between subsets", k)
			}
		}
	})

	t.Run("zone spill-over", func(t *testing.T) {
		tg, err := r.Target(ctxT(t), "cat", client.Filter{Balancer: balance.RoundRobin()})
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		// Both instances of zone a fail once (threshold 1): ejected.
		for _, e := range tg.Endpoints() {
			if e.Zone == "a" {
				e.Report(false)
				defer e.Eject(0)
			}
		}
		if got := keys(picks(tg, 400)); !slices.Equal(got, []string{"cat-2", "cat-3", "cat-4", "cat-5"}) {
			t.Fatalf("with zone a ejected, picked %v", got)
		}
		// Everything ejected: still an answer (panic mode), not an error.
		for _, e := range tg.Endpoints() {
			e.Report(false)
			defer e.Eject(0)
		}
		if _, err := tg.Pick(""); err != nil {
			t.Fatalf("all ejected: %v", err)
		}
	})
}

// TestTargetCopiesFilter: a Target keeps its own copy of the filter's
// slices and maps: changing them after Target returns does not change
// which instances it selects at its next rebuild.
func TestTargetCopiesFilter(t *testing.T) {
	t.Parallel()
	f := newFakeRegistry(t)
	v1 := map[string]string{"version": "v1"}
	v2 := map[string]string{"version": "v2"}
	f.set("copy", inst("copy", "a", 1, v1, "blue"), inst("copy", "b", 2, v2, "green"))
	r := fastResolver(t, f.client(t), client.ResolverConfig{})
	filter := func() client.Filter {
		return client.Filter{Tags: []string{"blue"}, Meta: map[string]string{"version": "v1"},
			Subsets: []client.Subset{{Tags: []string{"blue"}, Meta: map[string]string{"version": "v1"}, Weight: 1}}}
	}
	tests := []struct {
		name   string
		change func(f *client.Filter)
	}{
		{"tags", func(f *client.Filter) { f.Tags[0] = "green" }},
		{"meta", func(f *client.Filter) { f.Meta["version"] = "v2" }},
		{"subsets", func(f *client.Filter) {
			f.Subsets[0] = client.Subset{Meta: map[string]string{"version": "v2"}, Weight: 1}
		}},
		{"subset tags", func(f *client.Filter) { f.Subsets[0].Tags[0] = "green" }},
		{"subset meta", func(f *client.Filter) { f.Subsets[0].Meta["version"] = "v2" }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			flt := filter()
			tg, err := r.Target(ctxT(t), "copy", flt)
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			changed := tg.Changed()
			tc.change(&flt)
			// A change of the set rebuilds the target with its filter.
			c := fmt.Sprint("c", i)
			f.set("copy", inst("copy", "a", 1, v1, "blue"), inst("copy", "b", 2, v2, "green"), inst("copy", c, 3, v1, "blue"))
			select {
			case <-changed:
			case <-time.After(10 * time.Second):
				t.Fatal("no rebuild")
			}
			var got []string
			for _, e := range tg.Endpoints() {
				got = append(got, e.ID)
			}
			slices.Sort(got)
			if want := []string{"a", c}; !slices.Equal(got, want) {
				t.Fatalf("after the caller changed its filter: endpoints %v, want %v", got, want)
			}
		})
	}
}

// TestEmptySubsetShareGoesToNext pins Filter.Subsets' rule: the share of
// a subset with no instance goes to the next subset in the list (wrapping
// around), not to all the others.
func TestEmptySubsetShareGoesToNext(t *testing.T) {
	t.Parallel()
	f := newFakeRegistry(t)
	f.set("split", inst("split", "a", 1, map[string]string{"group": "a"}), inst("split", "c", 3, map[string]string{"group": "c"}))
	r := fastResolver(t, f.client(t), client.ResolverConfig{})
	sub := func(g string) client.Subset {
		return client.Subset{Name: g, Meta: map[string]string{"group": g}, Weight: 1}
	}
	tests := []struct {
		name    string
		subsets []client.Subset
		want    map[string]float64
	}{
		{"middle empty", []client.Subset{sub("a"), sub("b"), sub("c")}, map[string]float64{"a": 1. / 3, "c": 2. / 3}},
		{"last empty wraps to first", []client.Subset{sub("a"), sub("c"), sub("b")}, map[string]float64{"a": 2. / 3, "c": 1. / 3}},
	}
	const n = 6000
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := r.Target(ctxT(t), "split", client.Filter{Subsets: tc.subsets})
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			got := map[string]int{}
			for i := range n {
				e, err := tg.Pick(fmt.Sprint("user-", i))
				if err != nil {
					t.Fatal(err)
				}
				got[e.ID]++
			}
			for id, share := range tc.want {
				if d := float64(got[id])/n - share; d < -0.04 || d > 0.04 {
					t.Errorf("%s got %d of %d keyed picks, want %.0f%% ±4%%", id, got[id], n, share*100)
				}
			}
		})
	}
}
