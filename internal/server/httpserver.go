package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// httpServer serves one handler on a listener it owns: the HTTP API on
// -http-addr, the SDS API alone on -sds-addr.
type httpServer struct {
	ln    net.Listener
	srv   *http.Server
	grace *shutdownGrace
	log   *slog.Logger
}

// newHTTPServer serves h on ln; log receives the server's own errors (bad
// requests, TLS handshakes) at Warn, and a shutdown past its grace.
func newHTTPServer(ln net.Listener, h http.Handler, grace *shutdownGrace, log *slog.Logger) *httpServer {
	return &httpServer{ln: ln, grace: grace, log: log, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
}

// Addr is the address the server listens on.
func (h *httpServer) Addr() string { return h.ln.Addr().String() }

// Run serves until ctx ends, then stops accepting and lets requests in
// flight finish within the grace period; past it, it closes their
// connections. It returns an error only when the listener fails.
func (h *httpServer) Run(ctx context.Context) error {
	served := make(chan error, 1)
	go func() { served <- h.srv.Serve(h.ln) }()
	select {
	case err := <-served:
		return err // never http.ErrServerClosed: only Shutdown causes that
	case <-ctx.Done():
	}
	sctx, cancel := h.grace.context()
	defer cancel()
	if err := h.srv.Shutdown(sctx); err != nil {
		h.log.Warn("http shutdown", "err", err)
		h.srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close releases the listener of a server that was never Run.
func (h *httpServer) Close() error { return h.ln.Close() }

// shutdownGrace is one grace period (-shutdown-timeout) shared by the
// agent's HTTP listeners. It starts when the first of them shuts down, so
// that all of them are done within one period of the agent turning to
// drain, however many there are.
type shutdownGrace struct {
	d        time.Duration
	once     sync.Once
	deadline time.Time
}

// context returns a context that ends when the grace period does.
func (g *shutdownGrace) context() (context.Context, context.CancelFunc) {
	g.once.Do(func() { g.deadline = time.Now().Add(g.d) })
	return context.WithDeadline(context.Background(), g.deadline)
}
