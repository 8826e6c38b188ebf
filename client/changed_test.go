package client_test

import (
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/internal/testagent"
)

// TestTargetChanged checks the change notification that push-based
// consumers (the gRPC resolver) follow: a channel taken before reading
// Endpoints is closed by the next change of the service, and not before.
func TestTargetChanged(t *testing.T) {
	a := testagent.Start(t)
	c := newClient(t, a)
	fleet(t, c, "changed", 1, nil)
	r := fastResolver(t, c, client.ResolverConfig{})
	tg, err := r.Target(ctxT(t), "changed", client.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()

	ch := tg.Changed()
	if n := len(tg.Endpoints()); n != 1 {
		t.Fatalf("want 1 endpoint, got %d", n)
	}
	select {
	case <-ch:
		t.Fatal("closed before any change")
	default:
	}

	b := newBackend(t, "changed-1")
	if _, err := c.Put(ctxT(t), &client.Instance{Service: "changed", ID: b.name, Address: "127.0.0.1", Port: b.port}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("a registration did not close the channel within 10s")
	}
	if n := len(tg.Endpoints()); n != 2 {
		t.Fatalf("after the change: want 2 endpoints, got %d", n)
	}
	next := tg.Changed()
	if next == ch {
		t.Fatal("Changed returned the closed channel again")
	}
	if err := c.Remove(ctxT(t), "changed", b.name); err != nil {
		t.Fatal(err)
	}
	select {
	case <-next:
	case <-time.After(10 * time.Second):
		t.Fatal("a deregistration did not close the next channel within 10s")
	}
	if n := len(tg.Endpoints()); n != 1 {
		t.Fatalf("after the removal: want 1 endpoint, got %d", n)
	}
}
