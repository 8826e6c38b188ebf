package xds

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/testutil"
)

// newRegistry is a registry over an in-memory store.
func newRegistry() *registry.Service {
	reg, _ := testutil.NewRegistry()
	return reg
}

// put registers in (a copy), with a TTL check set to health when that is
// not passing.
func put(t testing.TB, reg *registry.Service, in registry.Instance, health registry.Health) {
	t.Helper()
	ctx := context.Background()
	if health != "" && health != registry.Passing {
		in.Checks = []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Hour)}}
	}
	res, err := reg.Register(ctx, &in)
	if err != nil {
		t.Fatalf("register %s/%s: %v", in.Service, in.ID, err)
	}
	if health != "" && health != registry.Passing {
		if _, err := reg.SetCheckStatus(ctx, res.Instance.Key(), registry.TTLCheckID, health, "test"); err != nil {
			t.Fatalf("set health of %s/%s: %v", in.Service, in.ID, err)
		}
	}
}

func remove(t testing.TB, reg *registry.Service, svc, id string) {
	t.Helper()
	if _, err := reg.Deregister(context.Background(), registry.Key{Service: svc, ID: id}); err != nil {
		t.Fatalf("deregister %s/%s: %v", svc, id, err)
	}
}

// startServer serves xDS over reg on a loopback port until the test
// ends, and returns the address.
func startServer(t testing.TB, reg Registry) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Registry, cfg.Listener = reg, ln
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return s, s.Addr()
}

// ctxFor bounds a test: it ends after d or with the test.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
