package registry

import "context"

// State is the read side of the registry, implemented by the store. Values
// it returns are shared and immutable: callers must not change them.
// Every method is safe for concurrent use.
type State interface {
	// Instance returns one instance or ErrNotFound.
	Instance(key Key) (*Instance, error)
	// Instances returns the service's instances ordered by ID, and the
	// service's index: the log index of its last change, or 0 when the
	// service has never existed.
	Instances(service string) (index uint64, instances []*Instance)
	// ServiceIndex is the index Instances would return, without building
	// the list: what a blocking query waits on.
	ServiceIndex(service string) uint64
	// Services returns every service that has instances, ordered by name,
	// and the index of the last change to any of them.
	Services() (index uint64, services []ServiceSummary)
	// Checks returns every check of the given type with its instance key,
	// and the index of the last change to the set of check definitions.
	Checks(typ CheckType) (index uint64, checks []CheckRef)
	// EachCheck calls fn with every check of a type, in the same view,
	// until fn returns false, and returns the view's check-definitions
	// index. The check is the store's own: fn must not change or keep it.
	// It copies nothing, for callers that scan every instance.
	EachCheck(typ CheckType, fn func(Key, *Check) bool) (index uint64)
	// LastIndex is the index of the last write applied.
	LastIndex() uint64
	// Watch returns a channel closed at the next change of what key
	// names (WatchService, WatchServices, WatchChecks), and a function to
	// call when the caller stops waiting.
	Watch(key string) (ch <-chan struct{}, release func())
}

// RepoIndex is an optional capability of a State: the instances whose
// Repo is repo, found through an index rather than a scan. Service checks
// for it with a type assertion; the store implements it.
type RepoIndex interface {
	InstancesByRepo(repo string) []*Instance
}

// Watch keys.
const (
	// WatchServices changes with any service's instances or health counts.
	WatchServices = "\x00services"
	// WatchChecks changes when an active (not TTL) check is added,
	// removed or redefined, and after a restore.
	WatchChecks = "\x00checks"
)

// WatchService is the watch key of one service's instance set.
func WatchService(name string) string { return name }

// CheckRef is one check of one instance, as leases and the health
// scheduler see it.
type CheckRef struct {
	Key   Key
	Check Check
}

// Applier writes ops through the replicated log. Apply returns once the op
// is durable and applied to State, or with an error (ErrNotLeader, a
// context error, or the op's own error such as ErrNotFound). Safe for
// concurrent use; concurrent writes are batched by the log.
type Applier interface {
	Apply(ctx context.Context, op Op) (ApplyResult, error)
}

// Leases keeps TTL leases; heartbeats renew them in memory, not in the log.
// Both methods are called from request goroutines and must be cheap.
type Leases interface {
	// Renew extends key's lease by the TTL of check (its TTL check) from now.
	Renew(key Key, check Check)
	// Forget drops key's lease after the instance was deregistered.
	Forget(key Key)
}
