package client_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/internal/testagent"
)

// health returns the instance's health in the registry ("" when absent).
func health(t testing.TB, c *client.Client, service, id string) string {
	t.Helper()
	ins, _, err := c.Instances(ctxT(t), service, client.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		if in.ID == id {
			return in.Health
		}
	}
	return ""
}

func TestRegistrationKeepsLeaseAlive(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	c := newClient(t, a)
	reg, err := c.Register(ctxT(t), client.Instance{Service: "web", Address: "127.0.0.1", Port: 8080, TTL: client.Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	id := reg.Instance().ID
	if id == "" {
		t.Fatal("no ID generated")
	}
	// Three TTLs pass; the lease must hold throughout.
	start := time.Now()
	eventually(t, 10*time.Second, func() (bool, string) {
		if h := health(t, c, "web", id); h != client.Passing {
			t.Fatalf("after %v the instance is %q, want passing", time.Since(start), h)
		}
		return time.Since(start) > 3*time.Second, ""
	})
	if s := reg.Stats(); s.Renewed < 6 || s.Reregistered != 0 {
		t.Fatalf("stats %+v: want at least 6 renewals (TTL/3) and no re-registration", s)
	}
	if err := reg.Deregister(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if h := health(t, c, "web", id); h != "" {
		t.Fatalf("deregistered instance still listed (%s)", h)
	}
	if err := reg.Deregister(ctxT(t)); err != nil {
		t.Fatalf("second deregister: %v", err)
	}
}

func TestRegistrationReregistersWhenLost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int // registrations held by the client: 1 uses the single heartbeat, more the batch
	}{
		{"single", 1},
		{"batch", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := testagent.Start(t)
			c := newClient(t, a)
			other := newClient(t, a)
			var regs []*client.Registration
			for i := range tc.n {
				reg, err := c.Register(ctxT(t), client.Instance{Service: "api", ID: fmt.Sprint("api-", i), Address: "127.0.0.1",
					Port: 9000 + i, TTL: client.Duration(time.Second), Meta: map[string]string{"version": "v1"}})
				if err != nil {
					t.Fatal(err)
				}
				regs = append(regs, reg)
			}
			// Someone else removes the first instance: the next renewal
			// finds it gone and registers it again at once.
			if err := other.Remove(ctxT(t), "api", "api-0"); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, func() (bool, string) {
				s := regs[0].Stats()
				return s.Reregistered >= 1 && health(t, c, "api", "api-0") == client.Passing, fmt.Sprintf("stats %+v", s)
			})
			ins, _, err := c.Instances(ctxT(t), "api", client.QueryOptions{Status: client.Passing})
			if err != nil {
				t.Fatal(err)
			}
			if len(ins) != tc.n || ins[0].Meta["version"] != "v1" {
				t.Fatalf("after re-registration: %+v", ins)
			}
			for _, r := range regs[1:] {
				if r.Stats().Reregistered != 0 {
					t.Fatalf("%s re-registered without being lost", r.Key().ID)
				}
			}
		})
	}
}

func TestRegistrationSurvivesAgentRestart(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	c := newClient(t, a)
	reg, err := c.Register(ctxT(t), client.Instance{Service: "db", ID: "db-1", Address: "127.0.0.1", Port: 5432, TTL: client.Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	a.Kill()
	// Renewals fail while the agent is down; they are retried.
	eventually(t, 5*time.Second, func() (bool, string) {
		return reg.Stats().LastError != nil, "no renewal error while the agent is down"
	})
	a.Restart() // -dev: the new registry is empty
	eventually(t, 10*time.Second, func() (bool, string) {
		s := reg.Stats()
		return s.Reregistered >= 1 && s.LastError == nil, fmt.Sprintf("stats %+v", s)
	})
	if h := health(t, c, "db", "db-1"); h != client.Passing {
		t.Fatalf("after the restart the instance is %q", h)
	}
}

func TestRegisterRejected(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	c := newClient(t, a)
	_, err := c.Register(ctxT(t), client.Instance{Service: "web", Address: "127.0.0.1", Port: 70000})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || len(apiErr.Fields) == 0 || apiErr.Fields[0].Field != "port" {
		t.Fatalf("got %v, want a 400 naming port", err)
	}
	if err := c.Heartbeat(ctxT(t), "web", "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("heartbeat of unknown instance: %v, want ErrNotFound", err)
	}
}
