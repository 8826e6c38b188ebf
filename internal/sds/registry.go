package sds

import (
	"context"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// Registry is what the SDS API calls of the registry (*registry.Service):
// host registrations and check-ins, reads by service and by repo, and
// readiness. Called from request goroutines, many at once.
type Registry interface {
	Register(ctx context.Context, in *registry.Instance) (registry.ApplyResult, error)
	Deregister(ctx context.Context, key registry.Key) (uint64, error)
	Heartbeat(ctx context.Context, key registry.Key) error
	Get(key registry.Key) (*registry.Instance, error)
	Instances(ctx context.Context, q registry.Query, minIndex uint64, wait time.Duration) (registry.Result, error)
	InstancesByRepo(repo string) ([]*registry.Instance, error)
	ServiceIndex(name string) uint64
	Ready() bool
}

var _ Registry = (*registry.Service)(nil)
