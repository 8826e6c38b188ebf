package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/internal/testagent"
)

func TestMain(m *testing.M) {
	os.Exit(testagent.RunMain(m, client.AddressEnv))
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	testagent.Eventually(t, timeout, cond)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newClient(t testing.TB, a *testagent.Agent) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Address: a.Addr, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fastResolver follows changes quickly and reconnects quickly, for tests.
func fastResolver(t testing.TB, c *client.Client, cfg client.ResolverConfig) *client.Resolver {
	t.Helper()
	cfg.MinInterval, cfg.Jitter = 10*time.Millisecond, 10*time.Millisecond
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	if cfg.Wait == 0 {
		cfg.Wait = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	r := client.NewResolver(c, cfg)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// backend is one test HTTP server of a fleet: it answers its name and
// counts requests.
type backend struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64
	addr string // host:port, kept across restarts
	port int
}

func newBackend(t testing.TB, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	b.start(t, "127.0.0.1:0")
	return b
}

func (b *backend) start(t testing.TB, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	// A restart reuses the port; give the kernel a moment if it is slow
	// to release it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if d := r.URL.Query().Get("sleep"); d != "" {
			ms, _ := strconv.Atoi(d)
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
			case <-r.Context().Done():
			}
		}
		fmt.Fprint(w, b.name)
	}))
	b.srv.Listener.Close()
	b.srv.Listener = ln
	b.srv.Start()
	b.addr = ln.Addr().String()
	_, p, _ := net.SplitHostPort(b.addr)
	b.port, _ = strconv.Atoi(p)
	t.Cleanup(b.srv.Close)
}

func (b *backend) kill() {
	b.srv.CloseClientConnections()
	b.srv.Close()
}

func (b *backend) instance(service string) client.Instance {
	return client.Instance{Service: service, ID: b.name, Address: "127.0.0.1", Port: b.port, TTL: client.Duration(10 * time.Second)}
}

// fleet starts n backends and registers them under service.
func fleet(t testing.TB, c *client.Client, service string, n int, edit func(i int, in *client.Instance)) ([]*backend, []*client.Registration) {
	t.Helper()
	var bs []*backend
	var regs []*client.Registration
	for i := range n {
		b := newBackend(t, fmt.Sprintf("%s-%d", service, i))
		in := b.instance(service)
		if edit != nil {
			edit(i, &in)
		}
		reg, err := c.Register(ctxT(t), in)
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
		regs = append(regs, reg)
	}
	return bs, regs
}
