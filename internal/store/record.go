package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// The types of this file are the durable format: what log entries and
// snapshots hold. They belong to the store, not to the registry model, so
// that a change to the model or to an API's output never changes what an
// old log decodes to. Their JSON names and omitempty options are those
// every release wrote; testdata/ pins the bytes. A field is never renamed
// or given another meaning; a new one is added, optional, and old entries
// without it must still apply the same (ARCHITECTURE.md, "The durable
// format").

// keyRecord is a registry.Key.
type keyRecord struct {
	Service string `json:"service"`
	ID      string `json:"id"`
}

func keyToRecord(k registry.Key) keyRecord { return keyRecord(k) }

func (k keyRecord) key() registry.Key { return registry.Key(k) }

// instanceRecord is a registry.Instance.
type instanceRecord struct {
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

	Checks []checkRecord `json:"checks,omitempty"`
	Health string        `json:"health"`

	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

// checkRecord is a registry.Check.
type checkRecord struct {
	ID                     string    `json:"id"`
	Name                   string    `json:"name,omitempty"`
	Type                   string    `json:"type"`
	Target                 string    `json:"target,omitempty"`
	Interval               Duration  `json:"interval,omitempty"`
	Timeout                Duration  `json:"timeout,omitempty"`
	TTL                    Duration  `json:"ttl,omitempty"`
	FailuresBeforeCritical int       `json:"failures_before_critical,omitempty"`
	SuccessesBeforePassing int       `json:"successes_before_passing,omitempty"`
	DeregisterAfter        Duration  `json:"deregister_after,omitempty"`
	Status                 string    `json:"status"`
	Output                 string    `json:"output,omitempty"`
	CriticalSince          time.Time `json:"critical_since,omitzero"`
}

// fill sets r to in, reusing r's checks (for writing: an empty list and
// none are written alike).
func (r *instanceRecord) fill(in *registry.Instance) {
	checks := r.Checks[:0]
	*r = instanceRecord{
		Service: in.Service, ID: in.ID, Address: in.Address, Port: in.Port,
		Tags: in.Tags, Meta: in.Meta, Weight: in.Weight, Priority: in.Priority,
		Zone: in.Zone, Region: in.Region, Canary: in.Canary, Revision: in.Revision, Repo: in.Repo,
		Health: string(in.Health), CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex,
	}
	for _, c := range in.Checks {
		checks = append(checks, checkRecord{
			ID: c.ID, Name: c.Name, Type: string(c.Type), Target: c.Target,
			Interval: Duration(c.Interval), Timeout: Duration(c.Timeout), TTL: Duration(c.TTL),
			FailuresBeforeCritical: c.FailuresBeforeCritical, SuccessesBeforePassing: c.SuccessesBeforePassing,
			DeregisterAfter: Duration(c.DeregisterAfter),
			Status:          string(c.Status), Output: c.Output, CriticalSince: c.CriticalSince,
		})
	}
	r.Checks = checks
}

func instanceToRecord(in *registry.Instance) *instanceRecord {
	if in == nil {
		return nil
	}
	r := &instanceRecord{}
	r.fill(in)
	return r
}

// instance returns the instance r holds. It shares r's tags and metadata.
func (r *instanceRecord) instance() *registry.Instance {
	in := &registry.Instance{
		Service: r.Service, ID: r.ID, Address: r.Address, Port: r.Port,
		Tags: r.Tags, Meta: r.Meta, Weight: r.Weight, Priority: r.Priority,
		Zone: r.Zone, Region: r.Region, Canary: r.Canary, Revision: r.Revision, Repo: r.Repo,
		Health: registry.Health(r.Health), CreateIndex: r.CreateIndex, ModifyIndex: r.ModifyIndex,
	}
	if r.Checks != nil {
		in.Checks = make([]registry.Check, len(r.Checks))
	}
	for i, c := range r.Checks {
		in.Checks[i] = registry.Check{
			ID: c.ID, Name: c.Name, Type: registry.CheckType(c.Type), Target: c.Target,
			Interval: registry.Duration(c.Interval), Timeout: registry.Duration(c.Timeout), TTL: registry.Duration(c.TTL),
			FailuresBeforeCritical: c.FailuresBeforeCritical, SuccessesBeforePassing: c.SuccessesBeforePassing,
			DeregisterAfter: registry.Duration(c.DeregisterAfter),
			Status:          registry.Health(c.Status), Output: c.Output, CriticalSince: c.CriticalSince,
		}
	}
	return in
}

// serviceRecord is a registry.ServiceSummary. Only the name and the
// modify index are read back; the counts are derived from the instances.
type serviceRecord struct {
	Name        string `json:"name"`
	Instances   int    `json:"instances"`
	Passing     int    `json:"passing"`
	Warning     int    `json:"warning"`
	Critical    int    `json:"critical"`
	ModifyIndex uint64 `json:"modify_index"`
}

func serviceToRecord(s *registry.ServiceSummary) *serviceRecord {
	return &serviceRecord{Name: s.Name, Instances: s.Instances, Passing: s.Passing, Warning: s.Warning,
		Critical: s.Critical, ModifyIndex: s.ModifyIndex}
}

// Duration is a duration of the durable format, written as a Go
// duration string ("1m30s"); a number of nanoseconds is read too. The
// cluster's wire format uses it as well, so both encode durations alike.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q", s)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid duration %s", b)
	}
	*d = Duration(n)
	return nil
}

// Log entries: the body of each entry type (codec.go).

type registerEntry struct {
	Instance *instanceRecord `json:"instance"`
	At       time.Time       `json:"at"`
}

type deregisterEntry struct {
	Key        keyRecord `json:"key"`
	IfCritical string    `json:"if_critical,omitempty"`
}

type setCheckEntry struct {
	Key     keyRecord `json:"key"`
	CheckID string    `json:"check_id"`
	Status  string    `json:"status"`
	Output  string    `json:"output,omitempty"`
	At      time.Time `json:"at"`
}

type maintenanceEntry struct {
	Key     keyRecord `json:"key"`
	CheckID string    `json:"check_id"`
	Enable  bool      `json:"enable"`
	Name    string    `json:"name,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

type reindexEntry struct{}
