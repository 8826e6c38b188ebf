package client_test

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/balance"
	"github.com/rosterhq/roster/client/internal/testagent"
)

func get(t testing.TB, hc *http.Client, url string, header ...string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func resetHits(bs []*backend) {
	for _, b := range bs {
		b.hits.Store(0)
	}
}

// near reports whether got is within tol (a fraction of n) of share*n.
func near(got int64, share float64, n int, tol float64) bool {
	return math.Abs(float64(got)-share*float64(n)) <= tol*float64(n)
}

func TestTransportPolicies(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	c := newClient(t, a)
	r := fastResolver(t, c, client.ResolverConfig{})
	// Four instances: weights 1..4; the first two at priority 0.
	bs, _ := fleet(t, c, "svc", 4, func(i int, in *client.Instance) {
		in.Weight = i + 1
		in.Priority = i / 2
	})
	tests := []struct {
		name  string
		b     balance.Balancer
		n     int
		share []float64 // expected share of each backend
		tol   float64   // absolute tolerance, as a fraction of n
	}{
		{"round robin", balance.RoundRobin(), 400, []float64{.25, .25, .25, .25}, 0.01},
		{"random", balance.Random(), 1600, []float64{.25, .25, .25, .25}, 0.06},
		{"weighted random", balance.WeightedRandom(), 1600, []float64{.1, .2, .3, .4}, 0.06},
		{"priority then weight", balance.Priority(), 1600, []float64{1. / 3, 2. / 3, 0, 0}, 0.06},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := &client.Transport{Resolver: r, Match: client.MatchHosts("svc"), Filter: client.Filter{Balancer: tc.b}}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr}
			resetHits(bs)
			for range tc.n {
				get(t, hc, "http://svc/")
			}
			for i, b := range bs {
				if !near(b.hits.Load(), tc.share[i], tc.n, tc.tol) {
					t.Errorf("%s: %d of %d requests, want %.0f%% ±%.0f%%", b.name, b.hits.Load(), tc.n, tc.share[i]*100, tc.tol*100)
				}
			}
		})
	}

	t.Run("ring hash on a header", func(t *testing.T) {
		tr := &client.Transport{Resolver: r, Match: client.MatchHosts("*.service.test"), KeyHeader: "User-Id",
			Filter: client.Filter{Balancer: balance.RingHash()}}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr}
		home := map[string]string{}
		perBackend := map[string]int{}
		for round := range 3 {
			for u := range 200 {
				user := fmt.Sprint("user-", u)
				got := get(t, hc, "http://svc.service.test/", "User-Id", user)
				if round == 0 {
					home[user] = got
					perBackend[got]++
				} else if home[user] != got {
					t.Fatalf("%s went to %s, then to %s", user, home[user], got)
				}
			}
		}
		// Weighted ring: every backend has keys, the heaviest the most.
		if len(perBackend) != 4 || perBackend["svc-3"] < perBackend["svc-0"] {
			t.Fatalf("keys per backend: %v", perBackend)
		}
	})

	t.Run("least loaded", func(t *testing.T) {
		tr := &client.Transport{Resolver: r, Match: client.MatchHosts("svc"), Filter: client.Filter{Balancer: balance.LeastLoaded()}}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Transport: tr}
		slow := bs[0]
		// Keep svc-0 busy with slow requests counted on its endpoint: with
		// four in flight it should lose every draw against an idle peer.
		ep := findEndpoint(t, r, "svc", slow.name)
		stop := make(chan struct{})
		var busy sync.WaitGroup
		for range 4 {
			busy.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					ep.Begin()
					resp, err := http.Get("http://" + slow.addr + "/?sleep=20")
					ep.End(err == nil)
					if err == nil {
						resp.Body.Close()
					}
				}
			})
		}
		defer func() {
			close(stop)
			busy.Wait()
		}()
		eventually(t, 5*time.Second, func() (bool, string) { return ep.InFlight() >= 3, "slow backend not busy" })
		const workers, each = 4, 50
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range each {
					name := get(t, hc, "http://svc/")
					mu.Lock()
					got[name]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		// Round robin would send it a quarter (50).
		if got[slow.name] > workers*each/20 {
			t.Fatalf("busy backend got %d of %d requests: %v", got[slow.name], workers*each, got)
		}
	})
}

func findEndpoint(t testing.TB, r *client.Resolver, service, id string) *balance.Endpoint {
	t.Helper()
	tg, err := r.Target(ctxT(t), service, client.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	for _, e := range tg.Endpoints() {
		if e.ID == id {
			return e
		}
	}
	t.Fatalf("no endpoint %s/%s", service, id)
	return nil
}

func TestTransportFailOver(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	r := fastResolver(t, newClient(t, a), client.ResolverConfig{})
	// Each backend registers through its own client, so that "crashing"
	// one stops its renewals without deregistering it.
	var bs []*backend
	var clients []*client.Client
	for i := range 3 {
		c := newClient(t, a)
		b := newBackend(t, fmt.Sprint("fo-", i))
		in := b.instance("fo")
		in.TTL = client.Duration(time.Second)
		if _, err := c.Register(ctxT(t), in); err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
		clients = append(clients, c)
	}
	tr := &client.Transport{Resolver: r, Match: client.MatchHosts("fo")}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	eventually(t, 5*time.Second, func() (bool, string) {
		ins, _ := r.Instances(ctxT(t), "fo")
		return len(ins) == 3, fmt.Sprint(ids(ins))
	})

	// fo-0 crashes: its process is gone, its lease not yet expired.
	bs[0].kill()
	_ = clients[0].Close()
	for range 30 {
		if got := get(t, hc, "http://fo/"); got == "fo-0" {
			t.Fatal("answer from a dead backend")
		}
	}
	ep := findEndpoint(t, r, "fo", "fo-0")
	if ep.Available() {
		t.Fatal("dead backend not ejected after repeated failures")
	}
	// Its lease expires; the registry marks it critical and the resolver
	// drops it.
	eventually(t, 10*time.Second, func() (bool, string) {
		ins, _ := r.Instances(ctxT(t), "fo")
		return len(ins) == 2, fmt.Sprint(ids(ins))
	})
	// It restarts on the same port and registers again: traffic returns.
	bs[0].start(t, bs[0].addr)
	c := newClient(t, a)
	in := bs[0].instance("fo")
	if _, err := c.Register(ctxT(t), in); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() (bool, string) {
		return get(t, hc, "http://fo/") == "fo-0", "no request reached the restarted backend"
	})

	// A POST is not retried: with one dead instance, some fail.
	bs[1].kill()
	failed := 0
	for range 30 {
		resp, err := hc.Post("http://fo/", "text/plain", strings.NewReader("x"))
		if err != nil {
			failed++
			continue
		}
		resp.Body.Close()
	}
	if failed == 0 {
		t.Fatal("no POST failed although one instance is dead: POSTs must not be retried")
	}
}
