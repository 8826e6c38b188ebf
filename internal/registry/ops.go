package registry

import "time"

// Op is one write to the registry, as it is carried by the log. Every field
// an Op needs to apply deterministically (IDs, times) is chosen before it is
// written, by the agent that accepts the write. How ops are written to the
// log is the store's business (its entry types), not the model's.
type Op interface{ isOp() }

// RegisterOp creates or replaces an instance. On replace, an active check
// with the same ID and type keeps its status (so a periodic re-registration
// does not reset health), a TTL check turns passing (a registration is a
// heartbeat), and a maintenance check of the stored instance that the new
// definition does not name is kept: an operator's maintenance outlives the
// owner's re-registration. A maintenance check the definition names takes
// the status it is given.
type RegisterOp struct {
	Instance *Instance
	At       time.Time
}

// DeregisterOp removes an instance. With IfCritical set, the instance is
// removed only while that check is still critical (a deregister_after
// reaper must not remove an instance that recovered meanwhile).
type DeregisterOp struct {
	Key        Key
	IfCritical string
}

// SetCheckOp records a check's new status.
type SetCheckOp struct {
	Key     Key
	CheckID string
	Status  Health
	Output  string
	At      time.Time
}

// MaintenanceOp puts an instance into maintenance or takes it out. With
// Enable it adds the maintenance check CheckID, critical with Reason as its
// output, or turns an existing one critical (one already critical is left
// as it is); without, it removes that check. Applying it fails with
// ErrNotFound for an unknown instance and ErrConflict when CheckID names a
// check of another type.
type MaintenanceOp struct {
	Key     Key
	CheckID string
	Enable  bool
	Name    string
	Reason  string
	At      time.Time
}

// ReindexOp marks every service (tombstones included) as changed at the
// op's own index. It follows a snapshot restore: a restored service may
// carry an index older than one a watcher already holds, and would
// otherwise keep that watcher blocked on what it had before the restore.
type ReindexOp struct{}

func (*RegisterOp) isOp()    {}
func (*ReindexOp) isOp()     {}
func (*DeregisterOp) isOp()  {}
func (*SetCheckOp) isOp()    {}
func (*MaintenanceOp) isOp() {}

// ApplyResult is what applying an Op produced.
type ApplyResult struct {
	// Index is the log index the write was applied at.
	Index uint64
	// Instance is the instance as stored, for RegisterOp and SetCheckOp.
	Instance *Instance
	// Created is true when a RegisterOp made a new instance.
	Created bool
}
