package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/internal/config"
	"github.com/rosterhq/roster/internal/proxy"
)

// embeddedProxy is the built-in proxy run by the agent (-proxy-addr). It
// reads the registry the way `roster proxy` does, through the SDK over
// the agent's own HTTP API: one code path for both.
type embeddedProxy struct {
	c     *client.Client
	res   *client.Resolver
	p     *proxy.Proxy
	ln    net.Listener
	drain time.Duration
}

// newEmbeddedProxy builds the proxy over the agent at httpAddr and binds
// its listener.
func newEmbeddedProxy(cfg config.Config, httpAddr string, log *slog.Logger, metrics prometheus.Registerer) (*embeddedProxy, error) {
	pc := proxy.DefaultConfig()
	if cfg.ProxyRoutes != "" {
		f, err := os.Open(cfg.ProxyRoutes)
		if err != nil {
			return nil, fmt.Errorf("proxy-routes: %w", err)
		}
		pc.Routes, err = proxy.ParseRoutes(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("proxy-routes %s: %w", cfg.ProxyRoutes, err)
		}
	}
	c, err := client.New(client.Config{Address: httpAddr, Logger: log})
	if err != nil {
		return nil, err
	}
	res := client.NewResolver(c, client.ResolverConfig{Logger: log})
	pc.Resolver, pc.Logger, pc.Metrics = res, log, metrics
	p, err := proxy.New(pc)
	if err != nil {
		res.Close()
		c.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.ProxyAddr)
	if err != nil {
		p.Close()
		res.Close()
		c.Close()
		return nil, fmt.Errorf("proxy listen %s: %w", cfg.ProxyAddr, err)
	}
	return &embeddedProxy{c: c, res: res, p: p, ln: ln, drain: cfg.ShutdownTimeout}, nil
}

// Addr is the address the proxy listens on.
func (e *embeddedProxy) Addr() string { return e.ln.Addr().String() }

// Run serves the proxy until ctx ends, then lets its requests finish for
// up to -shutdown-timeout, and releases the resolver.
func (e *embeddedProxy) Run(ctx context.Context) error {
	err := e.p.Serve(ctx, e.ln, e.drain)
	e.release()
	return err
}

// Close releases the listener and the resolver of a proxy never Run.
func (e *embeddedProxy) Close() error {
	err := e.ln.Close()
	e.release()
	return err
}

func (e *embeddedProxy) release() {
	e.p.Close()
	e.res.Close()
	e.c.Close()
}
