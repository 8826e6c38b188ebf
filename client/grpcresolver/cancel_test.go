package grpcresolver_test

import (
	"context"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/internal/testagent"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestCallerCancelReportsNothing: an RPC its caller cancels says nothing
// about the instance: canceled RPCs eject nothing and leave nothing in
// flight, and one between failures does not end their run as a success
// would (4 Unavailable, 1 Canceled, 1 Unavailable: 5 failures in a row
// eject the instance).
func TestCallerCancelReportsNothing(t *testing.T) {
	a := testagent.Start(t)
	c := newClient(t, a)
	bs, _ := fleet(t, c, "cancel", 1, nil)
	r := fastResolver(t, c) // 5 failures in a row eject
	conn := dial(t, r, "roster:///cancel")
	warm(t, conn, bs)
	tg, err := r.Target(ctxT(t), "cancel", client.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	ep := tg.Endpoints()[0]
	b := bs[0]

	canceled := func() {
		t.Helper()
		b.hold.Store(make(chan struct{})) // the server holds the call
		defer b.hold.Store((chan struct{})(nil))
		ctx, cancel := context.WithCancel(ctxT(t))
		before := b.calls.Load()
		go func() {
			for b.calls.Load() == before && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			cancel() // once the server has the call
		}()
		if err := call(ctx, conn); status.Code(err) != codes.Canceled {
			t.Fatalf("a call canceled by its caller: %v, want Canceled", err)
		}
	}
	failing := func() {
		t.Helper()
		if err := call(ctxT(t), conn); status.Code(err) != codes.Unavailable {
			t.Fatalf("a call to a failing server: %v, want Unavailable", err)
		}
	}

	for range 10 {
		canceled()
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		return ep.InFlight() == 0, "canceled calls left in flight"
	})
	if !ep.Available() {
		t.Fatal("calls canceled by their caller ejected the instance")
	}

	b.fail.Store(true)
	for range 4 {
		failing()
	}
	canceled()
	failing()
	eventually(t, 5*time.Second, func() (bool, string) {
		return !ep.Available(), "5 failures around a canceled call did not eject the instance"
	})
}
