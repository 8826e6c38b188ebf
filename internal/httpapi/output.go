package httpapi

import (
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// instanceOut is the wire form of an instance in every answer: a write's
// result, a read, a list and a watch event. The API owns it, as it owns
// instanceBody, so that neither the model nor the store's durable format
// decides what clients read. Durations are Go duration strings ("1m30s").
type instanceOut struct {
	Service  string            `json:"service"`
	ID       string            `json:"id"`
	Address  string            `json:"address"`
	Port     int               `json:"port"`
	Tags     []string          `json:"tags,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
	Weight   int               `json:"weight"`
	Priority int               `json:"priority"`
	Zone     string            `json:"zone,omitempty"`
	Region   string            `json:"region,omitempty"`
	Canary   bool              `json:"canary"`
	Revision string            `json:"revision,omitempty"`
	Repo     string            `json:"repo,omitempty"`

	Checks []checkOut `json:"checks,omitempty"`
	Health string     `json:"health"`

	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

type checkOut struct {
	ID                     string    `json:"id"`
	Name                   string    `json:"name,omitempty"`
	Type                   string    `json:"type"`
	Target                 string    `json:"target,omitempty"`
	Interval               string    `json:"interval,omitempty"`
	Timeout                string    `json:"timeout,omitempty"`
	TTL                    string    `json:"ttl,omitempty"`
	FailuresBeforeCritical int       `json:"failures_before_critical,omitempty"`
	SuccessesBeforePassing int       `json:"successes_before_passing,omitempty"`
	DeregisterAfter        string    `json:"deregister_after,omitempty"`
	Status                 string    `json:"status"`
	Output                 string    `json:"output,omitempty"`
	CriticalSince          time.Time `json:"critical_since,omitzero"`
}

// wireKey names an instance in heartbeat bodies and answers and in watch
// events.
type wireKey struct {
	Service string `json:"service"`
	ID      string `json:"id"`
}

func toInstanceOut(in *registry.Instance) instanceOut {
	out := instanceOut{
		Service: in.Service, ID: in.ID, Address: in.Address, Port: in.Port,
		Tags: in.Tags, Meta: in.Meta, Weight: in.Weight, Priority: in.Priority,
		Zone: in.Zone, Region: in.Region, Canary: in.Canary, Revision: in.Revision, Repo: in.Repo,
		Health: string(in.Health), CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex,
	}
	if len(in.Checks) > 0 {
		out.Checks = make([]checkOut, len(in.Checks))
	}
	for i, c := range in.Checks {
		out.Checks[i] = checkOut{
			ID: c.ID, Name: c.Name, Type: string(c.Type), Target: c.Target,
			Interval: durationOut(c.Interval), Timeout: durationOut(c.Timeout), TTL: durationOut(c.TTL),
			FailuresBeforeCritical: c.FailuresBeforeCritical, SuccessesBeforePassing: c.SuccessesBeforePassing,
			DeregisterAfter: durationOut(c.DeregisterAfter),
			Status:          string(c.Status), Output: c.Output, CriticalSince: c.CriticalSince,
		}
	}
	return out
}

// toInstancesOut converts a list; it is never nil, so an empty list is
// written as [].
func toInstancesOut(ins []*registry.Instance) []instanceOut {
	out := make([]instanceOut, len(ins))
	for i, in := range ins {
		out[i] = toInstanceOut(in)
	}
	return out
}

// durationOut is d as a Go duration string, or "" (left out) for zero.
func durationOut(d registry.Duration) string {
	if d == 0 {
		return ""
	}
	return d.D().String()
}
