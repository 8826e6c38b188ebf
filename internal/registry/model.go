// Package registry is roster's one model of the service registry: instances,
// their checks and health, the queries every front door asks, the validation
// rules for writes, and the Service that reads and writes through small
// interfaces (State, Applier) implemented by the store and the log.
//
// It does not know how state is stored or replicated, and it does not run
// leases or active checks: those components report transitions through
// Service.SetCheckStatus and Service.Deregister.
package registry

import (
	"time"
)

// Health is the health status of a check or of an instance.
type Health string

// Health values, from best to worst.
const (
	Passing  Health = "passing"
	Warning  Health = "warning"
	Critical Health = "critical"
)

// rank orders health from best (0) to worst.
func (h Health) rank() int {
	switch h {
	case Passing:
		return 0
	case Warning:
		return 1
	default:
		return 2
	}
}

// Worse reports whether h is worse than o.
func (h Health) Worse(o Health) bool { return h.rank() > o.rank() }

// Valid reports whether h is one of the three known values.
func (h Health) Valid() bool { return h == Passing || h == Warning || h == Critical }

// CheckType names the kind of a check.
type CheckType string

// Check types. A TTL check is kept alive by heartbeats; http, tcp and grpc
// checks are probed by the agent that owns them. A maintenance check is
// neither: only an operator sets it (critical while the instance is in
// maintenance), no lease or prober touches it, and a re-registration that
// does not name it keeps it.
const (
	CheckTTL         CheckType = "ttl"
	CheckHTTP        CheckType = "http"
	CheckTCP         CheckType = "tcp"
	CheckGRPC        CheckType = "grpc"
	CheckMaintenance CheckType = "maintenance"
)

// Probed reports whether checks of type t are run by the health
// scheduler (http, tcp, grpc).
func (t CheckType) Probed() bool { return t == CheckHTTP || t == CheckTCP || t == CheckGRPC }

// TTLCheckID is the ID of the check created from an instance's TTL.
const TTLCheckID = "ttl"

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("10s", "1m30s"); it also accepts a number of nanoseconds.
type Duration time.Duration

// Check is one health check of an instance.
type Check struct {
	ID   string    `json:"id"`
	Name string    `json:"name,omitempty"`
	Type CheckType `json:"type"`
	// Target is what an active check probes: a URL for http, host:port for
	// tcp, host:port[/service] for grpc. Empty for ttl checks.
	Target   string   `json:"target,omitempty"`
	Interval Duration `json:"interval,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
	// TTL is the lease length of a ttl check.
	TTL Duration `json:"ttl,omitempty"`
	// FailuresBeforeCritical consecutive failures turn an active check
	// critical (default 3); SuccessesBeforePassing consecutive successes turn
	// it passing again (default 1).
	FailuresBeforeCritical int `json:"failures_before_critical,omitempty"`
	SuccessesBeforePassing int `json:"successes_before_passing,omitempty"`
	// DeregisterAfter removes the instance once this check has been critical
	// for this long. Zero means never.
	DeregisterAfter Duration `json:"deregister_after,omitempty"`

	Status Health `json:"status"`
	Output string `json:"output,omitempty"`
	// CriticalSince is when the check last turned critical; zero otherwise.
	CriticalSince time.Time `json:"critical_since,omitzero"`
}

// Instance is one registered instance of a service.
type Instance struct {
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

	Checks []Check `json:"checks,omitempty"`
	// Health is derived: the worst status of the instance's checks, passing
	// when it has none.
	Health Health `json:"health"`

	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

// Key identifies an instance across the registry.
type Key struct {
	Service string `json:"service"`
	ID      string `json:"id"`
}

// Key returns the instance's key.
func (in *Instance) Key() Key { return Key{Service: in.Service, ID: in.ID} }

// Check returns the check with the given ID, or nil.
func (in *Instance) Check(id string) *Check {
	for i := range in.Checks {
		if in.Checks[i].ID == id {
			return &in.Checks[i]
		}
	}
	return nil
}

// TTLCheck returns the instance's TTL check, or nil when it has none.
func (in *Instance) TTLCheck() *Check {
	for i := range in.Checks {
		if in.Checks[i].Type == CheckTTL {
			return &in.Checks[i]
		}
	}
	return nil
}

// ComputeHealth sets in.Health from its checks.
func (in *Instance) ComputeHealth() {
	h := Passing
	for _, c := range in.Checks {
		if c.Status.Worse(h) {
			h = c.Status
		}
	}
	in.Health = h
}

// HasTag reports whether the instance carries tag t.
func (in *Instance) HasTag(t string) bool {
	for _, x := range in.Tags {
		if x == t {
			return true
		}
	}
	return false
}

// Clone returns a deep copy, so a caller may change it without touching
// state shared with the store.
func (in *Instance) Clone() *Instance {
	c := *in
	c.Tags = append([]string(nil), in.Tags...)
	if in.Meta != nil {
		c.Meta = make(map[string]string, len(in.Meta))
		for k, v := range in.Meta {
			c.Meta[k] = v
		}
	}
	c.Checks = append([]Check(nil), in.Checks...)
	return &c
}

// ServiceSummary describes one service, derived from its instances.
type ServiceSummary struct {
	Name      string `json:"name"`
	Instances int    `json:"instances"`
	Passing   int    `json:"passing"`
	Warning   int    `json:"warning"`
	Critical  int    `json:"critical"`
	// ModifyIndex is the index of the last change to the service.
	ModifyIndex uint64 `json:"modify_index"`
}

// HealthFilter selects instances by health.
type HealthFilter int

// Health filters.
const (
	AnyHealth   HealthFilter = iota // all instances
	PassingOnly                     // passing only
	NotCritical                     // passing and warning
)

// Query selects instances of one service. All filters must match.
type Query struct {
	Service string
	Health  HealthFilter
	// Tags: the instance must carry every one.
	Tags []string
	// Meta: the instance's metadata must hold every key with that value.
	Meta map[string]string
	Zone string
}

// Match reports whether in satisfies the query's filters (not the service).
func (q *Query) Match(in *Instance) bool {
	switch q.Health {
	case PassingOnly:
		if in.Health != Passing {
			return false
		}
	case NotCritical:
		if in.Health == Critical {
			return false
		}
	}
	if q.Zone != "" && in.Zone != q.Zone {
		return false
	}
	for _, t := range q.Tags {
		if !in.HasTag(t) {
			return false
		}
	}
	for k, v := range q.Meta {
		if got, ok := in.Meta[k]; !ok || got != v {
			return false
		}
	}
	return true
}
