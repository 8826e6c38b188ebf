package cluster

import (
	"time"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// The internal RPCs' bodies. They are this package's own types, not the
// registry's model, so that a change to the model or to another front
// door's output does not change what agents say to each other: agents of
// two versions talk during a rolling upgrade, and testdata/wire pins the
// bytes (TestWireBytes). Add fields with omitempty; never rename one.

// Internal RPCs, HTTP/1.1 over the raft port (protoRPC). Only agents of
// the cluster reach them (with TLS on, only holders of a certificate the
// CA signed).
const (
	pathApply     = "/internal/apply"      // POST entry bytes → wireResult (leader)
	pathReadIndex = "/internal/read-index" // GET → wireIndex (leader)
	pathLeases    = "/internal/leases"     // POST []wireLease (leader)
	pathJoin      = "/internal/join"       // POST joinRequest → joinResponse
	pathStatus    = "/internal/status"     // GET → Member (any agent, about itself)
	pathRemove    = "/internal/remove"     // POST wireRemove (leader)
	pathRestore   = "/internal/snapshot"   // PUT snapshot → wireIndex (leader)
)

// maxEntryBytes bounds a forwarded entry: far above any valid op. The
// entry itself is the store's encoding, which this package never reads.
const maxEntryBytes = 4 << 20

// wireResult is a store.Response on the wire.
type wireResult struct {
	Index    uint64        `json:"index"`
	Instance *wireInstance `json:"instance,omitempty"`
	Created  bool          `json:"created,omitempty"`
	// Err is the op's own error (not found, condition failed, ...).
	Err *wireError `json:"err,omitempty"`
}

func resultToWire(r store.Response) wireResult {
	return wireResult{Index: r.Result.Index, Instance: instanceToWire(r.Result.Instance), Created: r.Result.Created, Err: toWire(r.Err)}
}

func (w *wireResult) response() store.Response {
	return store.Response{Result: registry.ApplyResult{Index: w.Index, Instance: w.Instance.instance(), Created: w.Created}, Err: w.Err.err()}
}

// wireIndex is the answer of a read index or a restore.
type wireIndex struct {
	Index uint64 `json:"index"`
}

// wireRemove asks the leader to remove a server.
type wireRemove struct {
	ID string `json:"id"`
}

// wireLease is one renewal (or, with Forget, a removal) of a lease.
type wireLease struct {
	Service string `json:"s"`
	ID      string `json:"i"`
	Forget  bool   `json:"f,omitempty"`
}

// peer is a server heard of while the cluster forms.
type peer struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

type joinRequest struct {
	ID     string `json:"id"`
	Addr   string `json:"addr"`
	Expect int    `json:"expect,omitempty"`
	Known  []peer `json:"known,omitempty"`
}

type joinResponse struct {
	// Joined: the leader added the asker (or it was a member already).
	Joined bool   `json:"joined"`
	Known  []peer `json:"known,omitempty"`
}

// wireInstance is a registry.Instance as the leader returns it for a
// forwarded write.
type wireInstance struct {
	Service     string            `json:"service"`
	ID          string            `json:"id"`
	Address     string            `json:"address"`
	Port        int               `json:"port"`
	Tags        []string          `json:"tags,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	Weight      int               `json:"weight"`
	Priority    int               `json:"priority"`
	Zone        string            `json:"zone,omitempty"`
	Region      string            `json:"region,omitempty"`
	Canary      bool              `json:"canary"`
	Revision    string            `json:"revision,omitempty"`
	Repo        string            `json:"repo,omitempty"`
	Checks      []wireCheck       `json:"checks,omitempty"`
	Health      string            `json:"health"`
	CreateIndex uint64            `json:"create_index"`
	ModifyIndex uint64            `json:"modify_index"`
}

// wireCheck is a registry.Check on the wire.
type wireCheck struct {
	ID                     string         `json:"id"`
	Name                   string         `json:"name,omitempty"`
	Type                   string         `json:"type"`
	Target                 string         `json:"target,omitempty"`
	Interval               store.Duration `json:"interval,omitempty"`
	Timeout                store.Duration `json:"timeout,omitempty"`
	TTL                    store.Duration `json:"ttl,omitempty"`
	FailuresBeforeCritical int            `json:"failures_before_critical,omitempty"`
	SuccessesBeforePassing int            `json:"successes_before_passing,omitempty"`
	DeregisterAfter        store.Duration `json:"deregister_after,omitempty"`
	Status                 string         `json:"status"`
	Output                 string         `json:"output,omitempty"`
	CriticalSince          time.Time      `json:"critical_since,omitzero"`
}

func instanceToWire(in *registry.Instance) *wireInstance {
	if in == nil {
		return nil
	}
	w := &wireInstance{
		Service: in.Service, ID: in.ID, Address: in.Address, Port: in.Port, Tags: in.Tags, Meta: in.Meta,
		Weight: in.Weight, Priority: in.Priority, Zone: in.Zone, Region: in.Region, Canary: in.Canary,
		Revision: in.Revision, Repo: in.Repo, Health: string(in.Health),
		CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex,
	}
	if in.Checks != nil {
		w.Checks = make([]wireCheck, len(in.Checks))
	}
	for i, c := range in.Checks {
		w.Checks[i] = wireCheck{
			ID: c.ID, Name: c.Name, Type: string(c.Type), Target: c.Target,
			Interval: store.Duration(c.Interval), Timeout: store.Duration(c.Timeout), TTL: store.Duration(c.TTL),
			FailuresBeforeCritical: c.FailuresBeforeCritical, SuccessesBeforePassing: c.SuccessesBeforePassing,
			DeregisterAfter: store.Duration(c.DeregisterAfter),
			Status:          string(c.Status), Output: c.Output, CriticalSince: c.CriticalSince,
		}
	}
	return w
}

func (w *wireInstance) instance() *registry.Instance {
	if w == nil {
		return nil
	}
	in := &registry.Instance{
		Service: w.Service, ID: w.ID, Address: w.Address, Port: w.Port, Tags: w.Tags, Meta: w.Meta,
		Weight: w.Weight, Priority: w.Priority, Zone: w.Zone, Region: w.Region, Canary: w.Canary,
		Revision: w.Revision, Repo: w.Repo, Health: registry.Health(w.Health),
		CreateIndex: w.CreateIndex, ModifyIndex: w.ModifyIndex,
	}
	if w.Checks != nil {
		in.Checks = make([]registry.Check, len(w.Checks))
	}
	for i, c := range w.Checks {
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
