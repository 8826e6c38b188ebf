package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/balance"
)

// TestCallerCancelIsNotAFailure: a request whose caller cancels it before
// the instance answers says nothing about the instance: many of them do
// not eject it (through Transport and Dialer alike), and leave nothing in
// flight. A request that runs into the caller's deadline does count: the
// instance did not answer in time.
func TestCallerCancelIsNotAFailure(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "slow-0")
	f := newFakeRegistry(t)
	f.set("slow", inst("slow", "slow-0", b.port, nil))

	// hang stops a dial before it connects until its context ends.
	hang := &net.Dialer{ControlContext: func(ctx context.Context, _, _ string, _ syscall.RawConn) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	tests := []struct {
		name string
		// do sends one request to "slow" that hangs until ctx ends;
		// started is closed once the instance is being asked.
		do func(t *testing.T, r *client.Resolver, ctx context.Context, started func())
	}{
		{"transport", func(t *testing.T, r *client.Resolver, ctx context.Context, started func()) {
			hc := &http.Client{Transport: &client.Transport{Resolver: r, Match: client.MatchHosts("slow")}}
			before := b.hits.Load()
			go func() {
				eventuallyCtx(ctx, func() bool { return b.hits.Load() > before })
				started()
			}()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://slow/?sleep=10000", nil)
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
				t.Error("a request to a hanging backend succeeded")
			}
		}},
		{"dialer", func(t *testing.T, r *client.Resolver, ctx context.Context, started func()) {
			d := &client.Dialer{Resolver: r, Match: client.MatchHosts("slow"), Dialer: hang, MaxAttempts: 1}
			started() // the dial hangs at once
			if conn, err := d.DialContext(ctx, "tcp", "slow:80"); err == nil {
				conn.Close()
				t.Error("a hanging dial succeeded")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := &balance.Outlier{ConsecutiveFailures: 2, BaseEjection: time.Hour}
			r := fastResolver(t, f.client(t), client.ResolverConfig{Outlier: out})
			tg, err := r.Target(ctxT(t), "slow", client.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			ep := tg.Endpoints()[0]

			// Canceled by the caller, once the instance has the request:
			// twice the ejection threshold.
			for range 4 {
				ctx, cancel := context.WithCancel(ctxT(t))
				tc.do(t, r, ctx, cancel)
				cancel()
			}
			if !ep.Available() {
				t.Fatal("requests canceled by their caller ejected the instance")
			}
			eventually(t, 5*time.Second, func() (bool, string) {
				return ep.InFlight() == 0, "canceled requests left in flight"
			})

			// The caller's deadline passing is a failure of the instance.
			for range 2 {
				ctx, cancel := context.WithTimeout(ctxT(t), 50*time.Millisecond)
				tc.do(t, r, ctx, func() {})
				if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
					t.Fatalf("context: %v", ctx.Err())
				}
				cancel()
			}
			if ep.Available() {
				t.Fatal("two requests that ran into their deadline did not eject the instance (threshold 2)")
			}
		})
	}
}

// eventuallyCtx polls cond until it holds or ctx ends.
func eventuallyCtx(ctx context.Context, cond func() bool) {
	for !cond() && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
}
