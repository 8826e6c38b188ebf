package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/client/balance"
	"github.com/rosterhq/roster/internal/testutil"
)

func TestRouting(t *testing.T) {
	e := newEnv(t, nil)
	e.backend("web", "web-1", backendOpts{})
	e.backend("api", "api-1", backendOpts{})
	e.backend("search", "search-1", backendOpts{})
	cfg := DefaultConfig()
	cfg.Routes = []Route{
		{Host: "shop.example", Service: "web"},
		{Host: "shop.example", PathPrefix: "/api", Service: "api"},
		{PathPrefix: "/search", StripPrefix: true, Service: "search"},
	}
	p := e.proxy(cfg)
	tests := []struct {
		host, path string
		status     int
		backend    string
		seenPath   string
	}{
		{"shop.example", "/x", 200, "web-1", "/x"},
		{"SHOP.example:8080", "/", 200, "web-1", "/"},
		{"shop.example", "/api/v1", 200, "api-1", "/api/v1"},
		{"other.example", "/search/q", 200, "search-1", "/q"},
		{"other.example", "/search", 200, "search-1", "/"},
		{"api", "/v1", 200, "api-1", "/v1"},                    // default host: NAME
		{"api.service.roster", "/v1", 200, "api-1", "/v1"},     // default host: NAME.DOMAIN
		{"nosuch", "/", http.StatusServiceUnavailable, "", ""}, // no instance
		{"10.1.2.3", "/other", http.StatusNotFound, "", ""},    // no route
		{"other.example", "/searching", http.StatusNotFound, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			a := e.do(testClient, "GET", p.url+tc.path, tc.host, nil)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.status != 200 {
				return
			}
			if got := a.header.Get("X-Backend"); got != tc.backend {
				t.Fatalf("backend %q, want %q", got, tc.backend)
			}
			if got := a.header.Get("X-Seen-Path"); got != tc.seenPath {
				t.Fatalf("path upstream %q, want %q", got, tc.seenPath)
			}
			if got := a.header.Get("X-Seen-Host"); got != tc.host {
				t.Fatalf("Host upstream %q, want the client's %q", got, tc.host)
			}
		})
	}
	if got := metric(t, p.reg, "roster_proxy_requests_total", "service", "", "code", "404"); got != 2 {
		t.Fatalf("requests_total{service=\"\",code=404} = %v, want 2", got)
	}
	if got := metric(t, p.reg, "roster_proxy_upstream_requests_total", "service", "api", "instance", "api-1", "code", "200"); got != 3 {
		t.Fatalf("upstream_requests_total{api-1,200} = %v, want 3", got)
	}
}

func TestForwardedHeaders(t *testing.T) {
	e := newEnv(t, nil)
	e.backend("web", "web-1", backendOpts{})
	p := e.proxy(DefaultConfig())
	a := e.do(testClient, "GET", p.url+"/", "web", nil)
	if a.header.Get("X-Seen-XFF") != "127.0.0.1" || a.header.Get("X-Seen-XF-Host") != "web" || a.header.Get("X-Seen-XF-Proto") != "http" {
		t.Fatalf("forwarded headers upstream: XFF %q, host %q, proto %q", a.header.Get("X-Seen-XFF"),
			a.header.Get("X-Seen-XF-Host"), a.header.Get("X-Seen-XF-Proto"))
	}
	a = e.do(testClient, "GET", p.url+"/", "web", nil, "X-Forwarded-For", "203.0.113.9")
	if got := a.header.Get("X-Seen-XFF"); got != "203.0.113.9, 127.0.0.1" {
		t.Fatalf("X-Forwarded-For upstream %q, want the chain with the client appended", got)
	}
}

func TestBalancers(t *testing.T) {
	e := newEnv(t, nil)
	slow := func(b *backend, w http.ResponseWriter, r *http.Request) {
		if b.id == "ll-a" {
			time.Sleep(20 * time.Millisecond)
		}
		echo(b, w, r)
	}
	for i, w := range []int{1, 1, 1} {
		e.backend("rr", "rr-"+strconv.Itoa(i), backendOpts{weight: w})
		e.backend("rnd", "rnd-"+strconv.Itoa(i), backendOpts{weight: w})
	}
	for i, w := range []int{1, 2, 3} {
		e.backend("wt", "wt-"+strconv.Itoa(i), backendOpts{weight: w})
	}
	for _, id := range []string{"ll-a", "ll-b", "ll-c"} {
		e.backend("ll", id, backendOpts{handler: slow})
	}
	cfg := DefaultConfig()
	cfg.Routes = []Route{
		{Host: "rr", Service: "rr", Balancer: "round_robin"},
		{Host: "rnd", Service: "rnd", Balancer: "random"},
		{Host: "wt", Service: "wt", Balancer: "weighted"},
		{Host: "ll", Service: "ll", Balancer: "least_loaded"},
	}
	p := e.proxy(cfg)

	t.Run("round_robin", func(t *testing.T) {
		got := e.spread(p, "rr", 300)
		for i := range 3 {
			if n := got["rr-"+strconv.Itoa(i)]; !within(n, 100, 2) {
				t.Fatalf("round robin over 3: %s, want 100 each", describe(got))
			}
		}
	})
	t.Run("random", func(t *testing.T) {
		got := e.spread(p, "rnd", 600)
		for i := range 3 {
			// Binomial(600, 1/3): sd 11.5; 5 sd.
			if n := got["rnd-"+strconv.Itoa(i)]; !within(n, 200, 58) {
				t.Fatalf("random over 3: %s, want about 200 each", describe(got))
			}
		}
	})
	t.Run("weighted", func(t *testing.T) {
		got := e.spread(p, "wt", 600)
		for i, want := range []int{100, 200, 300} {
			// sd 9.1, 11.5, 12.2; 5 sd.
			if n := got["wt-"+strconv.Itoa(i)]; !within(n, want, 62) {
				t.Fatalf("weighted 1:2:3: %s, want about 100/200/300", describe(got))
			}
		}
	})
	t.Run("least_loaded", func(t *testing.T) {
		// ll-a takes 20 ms a request, the others none: with 8 requests in
		// flight at all times, power of two choices keeps ll-a busy with
		// about one at a time while the others turn over quickly.
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 40 {
					a, err := send(e.ctx, testClient, "GET", p.url+"/", "ll", nil)
					if err != nil || a.status != 200 {
						t.Errorf("GET: %v %d", err, a.status)
						return
					}
					mu.Lock()
					got[a.header.Get("X-Backend")]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if n := got["ll-a"]; n > 320/6 {
			t.Fatalf("least loaded: %s; the slow ll-a should get far less than a third", describe(got))
		}
	})
}

func TestSubsetSplit(t *testing.T) {
	e := newEnv(t, nil)
	e.backend("pay", "v1-a", backendOpts{meta: map[string]string{"version": "v1"}})
	e.backend("pay", "v1-b", backendOpts{meta: map[string]string{"version": "v1"}})
	e.backend("pay", "v2-a", backendOpts{meta: map[string]string{"version": "v2"}})
	subsets := []Subset{{Name: "v1", Meta: map[string]string{"version": "v1"}, Weight: 90}, {Name: "v2", Meta: map[string]string{"version": "v2"}, Weight: 10}}
	cfg := DefaultConfig()
	cfg.Routes = []Route{
		{Host: "pay", Service: "pay", Subsets: subsets},
		{Host: "pay-sticky", Service: "pay", Subsets: subsets, HashHeader: "User-Id"},
	}
	p := e.proxy(cfg)
	got := e.spread(p, "pay", 1000)
	// Binomial(1000, 0.1): sd 9.5; 5 sd.
	if n := got["v2-a"]; !within(n, 100, 47) {
		t.Fatalf("90/10 split: %s, want about 100 on v2", describe(got))
	}
	if got["v1-a"] == 0 || got["v1-b"] == 0 {
		t.Fatalf("v1 subset not balanced over both: %s", describe(got))
	}
	// Keyed: a user stays in one subset.
	v2Users := 0
	for u := range 100 {
		seen := e.spread(p, "pay-sticky", 3, "User-Id", "user-"+strconv.Itoa(u))
		if seen["v2-a"] != 0 && seen["v2-a"] != 3 {
			t.Fatalf("user-%d split between subsets: %s", u, describe(seen))
		}
		if seen["v2-a"] == 3 {
			v2Users++
		}
	}
	if v2Users == 0 || v2Users > 30 {
		t.Fatalf("%d of 100 users in v2, want about 10", v2Users)
	}
}

func TestRingHashSticky(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 4 {
		e.backend("cart", "cart-"+strconv.Itoa(i), backendOpts{})
	}
	cfg := DefaultConfig()
	cfg.Balancer, cfg.HashHeader = "ring_hash", "User-Id"
	p := e.proxy(cfg)
	used := map[string]bool{}
	for u := range 40 {
		seen := e.spread(p, "cart", 5, "User-Id", "user-"+strconv.Itoa(u))
		if len(seen) != 1 {
			t.Fatalf("user-%d reached %s, want one instance", u, describe(seen))
		}
		for id := range seen {
			used[id] = true
		}
	}
	if len(used) < 3 {
		t.Fatalf("40 users hashed onto %d of 4 instances", len(used))
	}
}

func TestRetries(t *testing.T) {
	e := newEnv(t, &balance.Outlier{ConsecutiveFailures: -1}) // no ejection: every try meets the bad ones
	// A registered instance that refuses connections.
	down := e.backend("svc", "down", backendOpts{})
	down.srv.Close()
	busy := func(b *backend, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", b.id)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}
	e.backend("svc", "busy", backendOpts{handler: busy})
	var mu sync.Mutex
	var bodies []string
	good := e.backend("svc", "good", backendOpts{handler: func(b *backend, w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.Method+" "+string(body))
		mu.Unlock()
		echo(b, w, r)
	}})
	cfg := DefaultConfig()
	cfg.Balancer = "random"
	p := e.proxy(cfg)

	t.Run("GET retried on another instance", func(t *testing.T) {
		got := e.spread(p, "svc", 60)
		if got["good"] != 60 {
			t.Fatalf("GETs answered by %s, want all by good", describe(got))
		}
		if n := metric(t, p.reg, "roster_proxy_upstream_requests_total", "instance", "down", "code", "error"); n == 0 {
			t.Fatal("no try reached the down instance: the test proves nothing")
		}
		if n := metric(t, p.reg, "roster_proxy_retries_total", "service", "svc"); n == 0 {
			t.Fatal("retries_total is 0")
		}
	})
	t.Run("PUT with a small body retried with its body", func(t *testing.T) {
		mu.Lock()
		bodies = nil
		mu.Unlock()
		for i := range 20 {
			body := "payload-" + strconv.Itoa(i)
			a := e.do(testClient, "PUT", p.url+"/", "svc", strings.NewReader(body))
			if a.status != 200 {
				t.Fatalf("PUT %d: %d %s", i, a.status, a.body)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(bodies) != 20 {
			t.Fatalf("good saw %d PUTs, want 20", len(bodies))
		}
		for i, b := range bodies {
			if want := "PUT payload-" + strconv.Itoa(i); b != want {
				t.Fatalf("good saw %q, want %q", b, want)
			}
		}
	})
	t.Run("POST not retried", func(t *testing.T) {
		before := good.hits.Load()
		statuses := map[int]int{}
		var bodies502 []string
		for range 60 {
			a := e.do(testClient, "POST", p.url+"/", "svc", strings.NewReader("x"))
			statuses[a.status]++
			if a.status == http.StatusBadGateway {
				bodies502 = append(bodies502, a.body)
			}
		}
		goodPosts := int(good.hits.Load() - before)
		if statuses[200] != goodPosts {
			t.Fatalf("%d POSTs answered 200, good saw %d", statuses[200], goodPosts)
		}
		// Random over three: each gets about 20; a retry would make every
		// answer 200.
		if statuses[http.StatusServiceUnavailable] == 0 || statuses[http.StatusBadGateway] == 0 {
			t.Fatalf("POST answers %v: want the busy instance's 503 and the down instance's 502 passed on", statuses)
		}
		// A 502 says what happened, not where: no internal address.
		for _, b := range bodies502 {
			if strings.Contains(b, "127.0.0.1") || strings.Contains(b, "dial") {
				t.Fatalf("502 body names the upstream: %q", b)
			}
		}
	})
}

func TestOutlierEjection(t *testing.T) {
	e := newEnv(t, &balance.Outlier{ConsecutiveFailures: 3, BaseEjection: time.Minute})
	bad := e.backend("flaky", "bad", backendOpts{handler: func(b *backend, w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	}})
	e.backend("flaky", "good", backendOpts{})
	p := e.proxy(DefaultConfig())
	statuses := map[int]int{}
	for range 60 {
		a := e.do(testClient, "GET", p.url+"/", "flaky", nil)
		statuses[a.status]++
	}
	// 500 is not retried: the client sees the three failures that eject
	// the instance, then only the good one.
	if bad.hits.Load() != 3 || statuses[500] != 3 || statuses[200] != 57 {
		t.Fatalf("bad instance hit %d times, answers %v; want 3 hits then ejection", bad.hits.Load(), statuses)
	}
	if n := metric(t, p.reg, "roster_proxy_upstream_ejections_total", "service", "flaky", "instance", "bad"); n != 1 {
		t.Fatalf("ejections_total{bad} = %v, want 1", n)
	}
}

func TestMaxPending(t *testing.T) {
	e := newEnv(t, nil)
	g := newGate()
	t.Cleanup(g.open)
	b := e.backend("slow", "slow-1", backendOpts{handler: func(b *backend, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			g.wait(r.Context())
		}
		echo(b, w, r)
	}})
	cfg := DefaultConfig()
	cfg.Routes = []Route{{Host: "slow", Service: "slow", MaxPending: 2}}
	p := e.proxy(cfg)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			a, err := send(e.ctx, testClient, "GET", p.url+"/block", "slow", nil)
			if err == nil && a.status != 200 {
				err = &statusError{a}
			}
			errs <- err
		}()
	}
	testutil.WaitFor(t, e.ctx, "two requests at the backend", func() bool { return b.active.Load() == 2 })
	a := e.do(testClient, "GET", p.url+"/", "slow", nil)
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Fatalf("third request: %d %q, want 503 with Retry-After", a.status, a.body)
	}
	if n := metric(t, p.reg, "roster_proxy_pending_overflow_total", "service", "slow"); n != 1 {
		t.Fatalf("pending_overflow_total = %v, want 1", n)
	}
	g.open()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("held request: %v", err)
		}
	}
	if a := e.do(testClient, "GET", p.url+"/", "slow", nil); a.status != 200 {
		t.Fatalf("after the pending requests finished: %d", a.status)
	}
}

type statusError struct{ a answer }

func (e *statusError) Error() string { return "status " + strconv.Itoa(e.a.status) + ": " + e.a.body }

func TestConnectionPoolAndLimit(t *testing.T) {
	e := newEnv(t, nil)
	b := e.backend("pool", "pool-1", backendOpts{handler: func(b *backend, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			time.Sleep(10 * time.Millisecond)
		}
		echo(b, w, r)
	}})
	cfg := DefaultConfig()
	cfg.MaxConnsPerUpstream = 1
	p := e.proxy(cfg)
	for range 20 {
		if a := e.do(testClient, "GET", p.url+"/", "pool", nil); a.status != 200 {
			t.Fatalf("GET: %d", a.status)
		}
	}
	if n := b.conns.Load(); n != 1 {
		t.Fatalf("20 sequential requests used %d connections, want 1 kept alive", n)
	}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if a, err := send(e.ctx, testClient, "GET", p.url+"/wait", "pool", nil); err != nil || a.status != 200 {
				t.Errorf("GET /wait: %v %d", err, a.status)
			}
		})
	}
	wg.Wait()
	if n, m := b.conns.Load(), b.maxSeen.Load(); n != 1 || m != 1 {
		t.Fatalf("6 concurrent requests with max 1 connection: %d connections, %d at once at the backend", n, m)
	}
	addr := b.srv.Listener.Addr().String()
	if n := metric(t, p.reg, "roster_proxy_upstream_connections", "address", addr); n != 1 {
		t.Fatalf("upstream_connections{%s} = %v, want 1", addr, n)
	}
}

func TestStreaming(t *testing.T) {
	e := newEnv(t, nil)
	g := newGate()
	t.Cleanup(g.open)
	firstBody := make(chan struct{})
	e.backend("stream", "s-1", backendOpts{handler: func(b *backend, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/down":
			// A known length: only a proxy that streams sends the first
			// part before the backend finishes.
			w.Header().Set("Content-Length", "12")
			_, _ = io.WriteString(w, "first\n")
			http.NewResponseController(w).Flush()
			g.wait(r.Context())
			_, _ = io.WriteString(w, "last.\n")
		case "/up":
			buf := make([]byte, 5)
			if _, err := io.ReadFull(r.Body, buf); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			close(firstBody)
			rest, _ := io.ReadAll(r.Body)
			_, _ = io.WriteString(w, string(buf)+string(rest))
		}
	}})
	p := e.proxy(DefaultConfig())

	t.Run("response", func(t *testing.T) {
		// Without streaming the first line would come only after the
		// gate opens, which this test does only after reading it.
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", p.url+"/down", nil)
		req.Host = "stream"
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "first\n" {
			t.Fatalf("first chunk %q, %v: want it before the backend finishes", line, err)
		}
		g.open()
		rest, err := io.ReadAll(resp.Body)
		if err != nil || string(rest) != "last.\n" {
			t.Fatalf("rest %q, %v", rest, err)
		}
	})
	t.Run("request", func(t *testing.T) {
		pr, pw := io.Pipe()
		done := make(chan answer, 1)
		go func() {
			a, err := send(e.ctx, testClient, "POST", p.url+"/up", "stream", pr)
			if err != nil {
				a.body = err.Error()
			}
			done <- a
		}()
		if _, err := pw.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-firstBody:
		case <-e.ctx.Done():
			t.Fatal("the backend did not get the start of the body before the client finished sending it")
		}
		_, _ = pw.Write([]byte(" world"))
		pw.Close()
		if a := <-done; a.status != 200 || a.body != "hello world" {
			t.Fatalf("answer %d %q", a.status, a.body)
		}
	})
}

func TestH2C(t *testing.T) {
	e := newEnv(t, nil)
	e.backend("grpcish", "g-1", backendOpts{h2c: true})
	cfg := DefaultConfig()
	cfg.Routes = []Route{{Host: "grpcish", Service: "grpcish", Protocol: "h2c"}, {Host: "plain", Service: "grpcish"}}
	p := e.proxy(cfg)
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: &http.Transport{Protocols: &protos}}
	t.Cleanup(h2.CloseIdleConnections)
	tests := []struct {
		host      string
		client    *http.Client
		wantIn    int    // the client's protocol version
		wantProto string // what the backend saw
	}{
		{"grpcish", h2, 2, "HTTP/2.0"},
		{"plain", h2, 2, "HTTP/1.1"},
		{"grpcish", testClient, 1, "HTTP/2.0"},
	}
	for _, tc := range tests {
		req, _ := http.NewRequestWithContext(e.ctx, "GET", p.url+"/", nil)
		req.Host = tc.host
		resp, err := tc.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "g-1" {
			t.Fatalf("%s: %d %q", tc.host, resp.StatusCode, body)
		}
		if resp.ProtoMajor != tc.wantIn || resp.Header.Get("X-Seen-Proto") != tc.wantProto {
			t.Fatalf("%s: client spoke %s, backend saw %s; want HTTP/%d and %s", tc.host, resp.Proto,
				resp.Header.Get("X-Seen-Proto"), tc.wantIn, tc.wantProto)
		}
	}
}

func TestDeregisterDrains(t *testing.T) {
	e := newEnv(t, nil)
	g := newGate()
	t.Cleanup(g.open)
	started := make(chan string, 2)
	slow := func(b *backend, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- b.id
			w.Header().Set("X-Backend", b.id)
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "begun ")
			http.NewResponseController(w).Flush()
			g.wait(r.Context())
			_, _ = io.WriteString(w, "done")
			return
		}
		echo(b, w, r)
	}
	backends := map[string]*backend{
		"a": e.backend("drain", "a", backendOpts{handler: slow}),
		"b": e.backend("drain", "b", backendOpts{handler: slow}),
	}
	p := e.proxy(DefaultConfig())
	e.spread(p, "drain", 4) // the target is followed

	slowDone := make(chan answer, 1)
	go func() {
		a, err := send(e.ctx, testClient, "GET", p.url+"/slow", "drain", nil)
		if err != nil {
			a.body = err.Error()
		}
		slowDone <- a
	}()
	var victim string
	select {
	case victim = <-started:
	case <-e.ctx.Done():
		t.Fatal("slow request never started")
	}
	other := "a"
	if victim == "a" {
		other = "b"
	}
	if err := e.c.Remove(e.ctx, "drain", victim); err != nil {
		t.Fatal(err)
	}
	// Once the change reaches the resolver, the instance gets nothing.
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		got := e.spread(p, "drain", 10)
		return got[victim] == 0, "still reaching " + victim + ": " + describe(got)
	})
	hits := backends[victim].hits.Load()
	if got := e.spread(p, "drain", 50); got[other] != 50 {
		t.Fatalf("after deregistration: %s", describe(got))
	}
	if n := backends[victim].hits.Load(); n != hits {
		t.Fatalf("deregistered %s got %d new requests", victim, n-hits)
	}
	// The request in flight on it finishes.
	g.open()
	select {
	case a := <-slowDone:
		if a.status != 200 || a.body != "begun done" {
			t.Fatalf("in-flight request: %d %q", a.status, a.body)
		}
	case <-e.ctx.Done():
		t.Fatal("in-flight request did not finish")
	}
}

func TestAccessLog(t *testing.T) {
	e := newEnv(t, nil)
	e.backend("web", "web-1", backendOpts{})
	var buf syncBuffer
	cfg := DefaultConfig()
	cfg.AccessLog, cfg.Logger = true, newJSONLogger(&buf)
	p := e.proxy(cfg)
	e.do(testClient, "GET", p.url+"/hello", "web", nil)
	// The line is written once the handler returns, which may be after
	// the client has the whole answer.
	testutil.WaitFor(t, e.ctx, "the access log line", func() bool { return strings.Contains(buf.String(), `"msg":"request"`) })
	out := buf.String()
	for _, want := range []string{`"msg":"request"`, `"path":"/hello"`, `"status":200`, `"service":"web"`, `"instance":"web-1"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("access log %q lacks %s", out, want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestIdleConnectionClosedByInstance: an instance that closes kept-alive
// connections when idle costs no failed request, idempotent or not, and
// counts no failure against the instance.
func TestIdleConnectionClosedByInstance(t *testing.T) {
	e := newEnv(t, nil)
	b := e.backend("idle", "idle-1", backendOpts{idle: 20 * time.Millisecond})
	closed := &b.closed
	p := e.proxy(DefaultConfig())
	for i, method := range []string{"GET", "POST", "GET", "PUT", "DELETE", "POST"} {
		before := closed.Load()
		var body io.Reader
		if method == "POST" || method == "PUT" {
			body = strings.NewReader("data")
		}
		if a := e.do(testClient, method, p.url+"/", "idle", body); a.status != 200 {
			t.Fatalf("%s #%d after the instance closed the idle connection: %d %s", method, i, a.status, a.body)
		}
		testutil.WaitFor(t, e.ctx, "the instance closing the idle connection", func() bool { return closed.Load() > before })
	}
	if n := metric(t, p.reg, "roster_proxy_upstream_requests_total", "instance", "idle-1", "code", "error"); n != 0 {
		t.Fatalf("%v tries failed on connections the instance had closed", n)
	}
	if n := b.conns.Load(); n != 6 {
		t.Fatalf("%d connections for 6 requests each after an idle close", n)
	}
}

// TestUpgrade: a protocol upgrade (as WebSocket does) passes through, and
// the connection carries bytes both ways afterwards.
func TestUpgrade(t *testing.T) {
	e := newEnv(t, nil)
	e.backend("ws", "ws-1", backendOpts{handler: func(b *backend, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		line, err := brw.ReadString('\n')
		if err == nil {
			_, _ = brw.WriteString("echo: " + line)
			_ = brw.Flush()
		}
	}})
	p := e.proxy(DefaultConfig())
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(conn, "GET /chat HTTP/1.1\r\nHost: ws\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered %d", resp.StatusCode)
	}
	_, _ = io.WriteString(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: hello\n" {
		t.Fatalf("after the upgrade: %q, %v", line, err)
	}
}

// TestClientGone: a client that closes its connection while its request
// waits for an instance gets the request to the instance aborted too.
func TestClientGone(t *testing.T) {
	e := newEnv(t, nil)
	arrived, ended := make(chan struct{}), make(chan struct{})
	e.backend("poll", "poll-1", backendOpts{handler: func(b *backend, w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done() // answers only when the proxy gives up
		close(ended)
	}})
	p := e.proxy(DefaultConfig())
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(conn, "GET /wait HTTP/1.1\r\nHost: poll\r\n\r\n")
	select {
	case <-arrived:
	case <-e.ctx.Done():
		t.Fatal("request never reached the instance")
	}
	conn.Close()
	select {
	case <-ended:
	case <-e.ctx.Done():
		t.Fatal("the request to the instance outlived its client")
	}
	testutil.WaitFor(t, e.ctx, "the try counted as canceled", func() bool {
		return metric(t, p.reg, "roster_proxy_upstream_requests_total", "instance", "poll-1", "code", "canceled") == 1
	})
}
