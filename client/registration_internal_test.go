package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptedAgent is a fake agent for the lease keeper: it stores nothing,
// records every request (and when a PUT finished), and lets a test hold
// heartbeats or re-registrations in flight.
type scriptedAgent struct {
	mu     sync.Mutex
	events []string
	puts   int

	// heartbeat answers a heartbeat; it may block.
	heartbeat func(r *http.Request) int
	// reput answers the second and later PUTs of an instance; it may block.
	reput func(r *http.Request)
}

func (a *scriptedAgent) record(ev string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
	if ev == "PUT" {
		a.puts++
	}
	return a.puts
}

func (a *scriptedAgent) log() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

func (a *scriptedAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/heartbeat"):
		a.record("HB")
		status := http.StatusNoContent
		if a.heartbeat != nil {
			status = a.heartbeat(r)
		}
		if status == http.StatusNotFound {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":"instance not found"}`))
			return
		}
		w.WriteHeader(status)
	case r.Method == http.MethodPut:
		if n := a.record("PUT"); n > 1 && a.reput != nil {
			a.reput(r)
		}
		var in Instance
		_ = json.NewDecoder(r.Body).Decode(&in)
		a.record("PUT done")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(in)
	case r.Method == http.MethodDelete:
		a.record("DELETE")
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// startRound makes reg's renewal due now and wakes the lease keeper.
func startRound(c *Client, reg *Registration) {
	c.mu.Lock()
	hb := c.hb
	c.mu.Unlock()
	hb.mu.Lock()
	reg.next = time.Now()
	hb.mu.Unlock()
	hb.poke()
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10s", what)
	}
}

func scriptedClient(t *testing.T, a *scriptedAgent) *Client {
	t.Helper()
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	c, err := New(Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// A lease of 30 minutes: the renewal round's own timeout (a third of it)
// is far longer than any test, so only Deregister's context can end a wait.
var longLease = Instance{Service: "web", ID: "web-1", Address: "127.0.0.1", Port: 80, TTL: Duration(30 * time.Minute)}

func TestDeregisterHonoursContextAndCanBeRetried(t *testing.T) {
	hbStarted, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a := &scriptedAgent{heartbeat: func(r *http.Request) int {
		once.Do(func() { close(hbStarted) })
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return http.StatusNoContent
	}}
	c := scriptedClient(t, a)
	reg, err := c.Register(context.Background(), longLease)
	if err != nil {
		t.Fatal(err)
	}
	startRound(c, reg)
	waitFor(t, hbStarted, "renewal round")

	// The agent is slow to answer the renewal: Deregister gives up when
	// its context ends instead of waiting for the round.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		done <- reg.Deregister(ctx)
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("deregister while a round is stuck: %v, want a deadline error", err)
		}
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("Deregister ignored its context while a renewal round was in flight")
	}
	if slices.Contains(a.log(), "DELETE") {
		t.Fatalf("deleted while a round was in flight: %v", a.log())
	}

	// The round ends; Deregister again really removes the instance.
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range a.log() {
		if ev == "DELETE" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d DELETEs after a failed and two good Deregisters, want 1: %v", n, a.log())
	}
}

func TestDeregisterWaitsForReregistrationInFlight(t *testing.T) {
	putStarted, release := make(chan struct{}), make(chan struct{})
	a := &scriptedAgent{
		heartbeat: func(*http.Request) int { return http.StatusNotFound }, // the registry lost it
		reput: func(*http.Request) {
			close(putStarted)
			<-release
		},
	}
	c := scriptedClient(t, a)
	reg, err := c.Register(context.Background(), longLease)
	if err != nil {
		t.Fatal(err)
	}
	startRound(c, reg)
	waitFor(t, putStarted, "re-registration")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- reg.Deregister(ctx)
	}()
	// Deregister has stopped the renewals and waits for the round.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.hb.mu.Lock()
		closed := reg.closed
		c.hb.mu.Unlock()
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Deregister did not start")
		}
		time.Sleep(time.Millisecond) // poll interval
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The DELETE comes after the re-registration: nothing brings it back.
	want := []string{"PUT", "PUT done", "HB", "PUT", "PUT done", "DELETE"}
	if got := a.log(); !slices.Equal(got, want) {
		t.Fatalf("requests %v, want %v", got, want)
	}
}

func TestRegisterOnClosedClientRegistersNothing(t *testing.T) {
	a := &scriptedAgent{}
	c := scriptedClient(t, a)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(context.Background(), longLease); !errors.Is(err, ErrClosed) {
		t.Fatalf("register on a closed client: %v, want ErrClosed", err)
	}
	if got := a.log(); len(got) != 0 {
		t.Fatalf("a closed client sent %v: the instance would stay registered with nobody renewing it", got)
	}
}

func TestRegistrationInstanceIsACopy(t *testing.T) {
	c := scriptedClient(t, &scriptedAgent{})
	in := longLease
	in.Tags, in.Meta = []string{"a"}, map[string]string{"version": "v1"}
	reg, err := c.Register(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	got := reg.Instance()
	got.Tags[0], got.Meta["version"] = "b", "v2"
	if again := reg.Instance(); again.Tags[0] != "a" || again.Meta["version"] != "v1" {
		t.Fatalf("changing Instance()'s result changed the registration: %+v", again)
	}
}
