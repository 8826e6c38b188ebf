package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/config"
	"github.com/rosterhq/roster/internal/testutil"
)

// devConfig is a dev agent with every front door on a loopback port.
func devConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Dev = true
	cfg.HTTPAddr, cfg.DNSAddr, cfg.XDSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.SDSAddr, cfg.ProxyAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

// freePort returns a loopback address no one listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func refused(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
	}
	return err != nil
}

// TestServerRun: a dev agent with every front door serves until its
// context ends, then Run stops every component and returns nil, and no
// listener is left open.
func TestServerRun(t *testing.T) {
	ctx := testutil.Context(t, 30*time.Second)
	s, err := New(devConfig(t), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{s.HTTPAddr(), s.DNSAddr(), s.XDSAddr(), s.sds.Addr(), s.proxy.Addr()}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- s.Run(runCtx) }()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.HTTPAddr()+"/readyz", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return")
	}
	for _, a := range addrs {
		if !refused(a) {
			t.Errorf("%s still accepts after Run", a)
		}
	}
}

// TestNewReleasesOnError: when the last listener cannot be bound, New
// fails with its error and releases the log and every listener bound
// before it (TestMain checks the log's goroutines are gone).
func TestNewReleasesOnError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := devConfig(t)
	cfg.HTTPAddr, cfg.SDSAddr, cfg.XDSAddr = freePort(t), freePort(t), freePort(t)
	cfg.ProxyAddr = taken.Addr().String()
	_, err = New(cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err == nil || !strings.Contains(err.Error(), "proxy listen "+cfg.ProxyAddr) {
		t.Fatalf("New: %v, want the proxy's listen error", err)
	}
	for _, addr := range []string{cfg.HTTPAddr, cfg.SDSAddr, cfg.XDSAddr} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s not released: %v", addr, err)
			continue
		}
		ln.Close()
	}
}
