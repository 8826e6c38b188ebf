package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/balance"
	"github.com/rosterhq/roster/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBinaries()
	os.Exit(code)
}

// testTimeout bounds every test that runs an agent.
const testTimeout = 60 * time.Second

// env is one agent, an SDK client and resolver on it, and the backends
// registered in it.
type env struct {
	t     testing.TB
	ctx   context.Context
	agent *testutil.Agent
	c     *client.Client
	res   *client.Resolver
}

// newEnv starts an in-memory agent and a resolver on it. outlier, when not
// nil, replaces the SDK's outlier detection defaults.
func newEnv(t testing.TB, outlier *balance.Outlier) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the roster binary")
	}
	ctx := testutil.Context(t, testTimeout)
	a := testutil.StartAgent(t, testutil.BuildBinary(t), testutil.AgentOptions{Dev: true, Args: []string{"-dns-addr", "off"}})
	c, err := client.New(client.Config{Address: a.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	res := client.NewResolver(c, client.ResolverConfig{MinInterval: 5 * time.Millisecond, Jitter: 5 * time.Millisecond, Outlier: outlier})
	t.Cleanup(func() { res.Close() })
	return &env{t: t, ctx: ctx, agent: a, c: c, res: res}
}

// backend is one httptest server registered as an instance. Its default
// handler answers 200 with its ID as the body and echoes what it saw in
// X-Seen-* headers.
type backend struct {
	id      string
	srv     *httptest.Server
	hits    atomic.Int64
	conns   atomic.Int64 // connections accepted
	closed  atomic.Int64 // connections closed
	active  atomic.Int64 // requests being handled
	maxSeen atomic.Int64 // most requests handled at once
}

type backendOpts struct {
	meta    map[string]string
	weight  int
	h2c     bool
	idle    time.Duration                                            // the server's IdleTimeout (0: net/http's)
	handler func(b *backend, w http.ResponseWriter, r *http.Request) // nil: the echo handler
}

// backend starts a server and registers it as service/id.
func (e *env) backend(service, id string, o backendOpts) *backend {
	e.t.Helper()
	b := &backend{id: id}
	h := o.handler
	if h == nil {
		h = echo
	}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		n := b.active.Add(1)
		defer b.active.Add(-1)
		for {
			m := b.maxSeen.Load()
			if n <= m || b.maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		h(b, w, r)
	}))
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			b.conns.Add(1)
		case http.StateClosed:
			b.closed.Add(1)
		}
	}
	b.srv.Config.IdleTimeout = o.idle
	if o.h2c {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		b.srv.Config.Protocols = &p
	}
	b.srv.Start()
	e.t.Cleanup(b.srv.Close)
	e.register(service, id, b.srv.Listener.Addr().(*net.TCPAddr).Port, o)
	return b
}

func (e *env) register(service, id string, port int, o backendOpts) {
	e.t.Helper()
	_, err := e.c.Put(e.ctx, &client.Instance{Service: service, ID: id, Address: "127.0.0.1", Port: port, Meta: o.meta, Weight: o.weight})
	if err != nil {
		e.t.Fatalf("register %s/%s: %v", service, id, err)
	}
}

// echo answers the backend's ID and what it saw of the request.
func echo(b *backend, w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h := w.Header()
	h.Set("X-Backend", b.id)
	h.Set("X-Seen-Host", r.Host)
	h.Set("X-Seen-Path", r.URL.Path)
	h.Set("X-Seen-Proto", r.Proto)
	h.Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
	h.Set("X-Seen-XF-Host", r.Header.Get("X-Forwarded-Host"))
	h.Set("X-Seen-XF-Proto", r.Header.Get("X-Forwarded-Proto"))
	_, _ = io.WriteString(w, b.id)
}

// running is a proxy served on a loopback port.
type running struct {
	*Proxy
	url string
	reg *prometheus.Registry
}

// proxy builds a proxy over the env's resolver and serves it until the
// test ends.
func (e *env) proxy(cfg Config) *running {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Resolver, cfg.Metrics = e.res, reg
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(e.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Serve(ctx, ln, 5*time.Second); err != nil {
			e.t.Errorf("serve: %v", err)
		}
	}()
	e.t.Cleanup(func() {
		cancel()
		<-done
		p.Close()
	})
	return &running{Proxy: p, url: "http://" + ln.Addr().String(), reg: reg}
}

// testClient talks HTTP/1.1 to the proxy with kept-alive connections.
var testClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}

// answer is a response read in full.
type answer struct {
	status int
	header http.Header
	body   string
}

// do sends one request through the proxy with the given Host and headers
// (name, value pairs) and reads the answer. It fails the test when the
// request gets no answer.
func (e *env) do(hc *http.Client, method, url, host string, body io.Reader, hdr ...string) answer {
	e.t.Helper()
	a, err := send(e.ctx, hc, method, url, host, body, hdr...)
	if err != nil {
		e.t.Fatalf("%s %s (host %s): %v", method, url, host, err)
	}
	return a
}

// send is do for goroutines other than the test's.
func send(ctx context.Context, hc *http.Client, method, url, host string, body io.Reader, hdr ...string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return answer{}, err
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// spread sends n GETs for host and counts the answering backends; every
// answer must be 200.
func (e *env) spread(p *running, host string, n int, hdr ...string) map[string]int {
	e.t.Helper()
	got := map[string]int{}
	for range n {
		a := e.do(testClient, "GET", p.url+"/", host, nil, hdr...)
		if a.status != http.StatusOK {
			e.t.Fatalf("GET host %s: %d %s", host, a.status, a.body)
		}
		got[a.header.Get("X-Backend")]++
	}
	return got
}

// within reports whether got is within tol of want.
func within(got, want, tol int) bool { return got >= want-tol && got <= want+tol }

// metric returns the value of the counter or gauge name with labels
// (name=value pairs) in reg, or 0 when it has no such sample.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// gate blocks handlers until opened.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate() *gate  { return &gate{ch: make(chan struct{})} }
func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }
func (g *gate) wait(ctx context.Context) bool {
	select {
	case <-g.ch:
		return true
	case <-ctx.Done():
		return false
	}
}

func describe(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+strconv.Itoa(v))
	}
	return fmt.Sprint(parts)
}

func newJSONLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }
