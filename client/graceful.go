package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// ShutdownOptions tune ServeGracefully.
type ShutdownOptions struct {
	// Signals start the shutdown (default SIGTERM and SIGINT). A second
	// signal during the shutdown ends the process the usual way.
	Signals []os.Signal
	// DeregisterTimeout bounds the deregistrations (default 5s).
	DeregisterTimeout time.Duration
	// LameDuck is a pause after deregistering, before the listener
	// closes, for clients that picked this instance just before they
	// learned of its removal (default 0: resolvers fed by blocking
	// queries learn within milliseconds).
	LameDuck time.Duration
	// DrainTimeout bounds the wait for in-flight requests (default 30s);
	// connections still busy after it are closed.
	DrainTimeout time.Duration
	// Logger receives one line per step; nil discards.
	Logger *slog.Logger
}

// ServeGracefully serves srv on ln until ctx ends or a shutdown signal
// arrives, then shuts down in the order that loses no request:
// deregister every registration first (so that clients stop choosing
// this instance), stop accepting connections, drain in-flight requests
// within DrainTimeout, and return. It returns nil after a clean shutdown,
// the error of Serve if serving failed, or an error naming the step that
// did not finish in time. The caller exits after it returns.
func ServeGracefully(ctx context.Context, srv *http.Server, ln net.Listener, regs []*Registration, opts ShutdownOptions) error {
	if len(opts.Signals) == 0 {
		opts.Signals = []os.Signal{syscall.SIGTERM, os.Interrupt}
	}
	if opts.DeregisterTimeout <= 0 {
		opts.DeregisterTimeout = 5 * time.Second
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sigCtx, stopSignals := signal.NotifyContext(ctx, opts.Signals...)
	defer stopSignals()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var serveErr error
	select {
	case <-sigCtx.Done():
		// Restore the default handling: a second signal ends the process.
		stopSignals()
		log.Info("shutting down: deregistering", "instances", len(regs))
	case serveErr = <-served:
		log.Error("serve failed; deregistering", "err", serveErr)
	}

	var errs []error
	dctx, cancel := context.WithTimeout(context.Background(), opts.DeregisterTimeout)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, r := range regs {
		wg.Go(func() {
			if err := r.Deregister(dctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	cancel()
	if serveErr != nil {
		return errors.Join(append([]error{serveErr}, errs...)...)
	}
	if opts.LameDuck > 0 {
		t := time.NewTimer(opts.LameDuck)
		<-t.C
	}

	log.Info("shutting down: draining", "timeout", opts.DrainTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), opts.DrainTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		errs = append(errs, fmt.Errorf("drain in-flight requests: %w", err))
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	log.Info("shut down")
	return errors.Join(errs...)
}
