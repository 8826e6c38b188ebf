package consulapi

import (
	"context"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// Registry is what the Consul API calls of the registry
// (*registry.Service): reads with blocking, writes, TTL check updates and
// maintenance. Called from request goroutines, many at once.
type Registry interface {
	Register(ctx context.Context, in *registry.Instance) (registry.ApplyResult, error)
	Deregister(ctx context.Context, key registry.Key) (uint64, error)
	UpdateTTL(ctx context.Context, key registry.Key, checkID string, status registry.Health, output string) error
	EnableMaintenance(ctx context.Context, key registry.Key, m registry.Maintenance) (registry.ApplyResult, error)
	DisableMaintenance(ctx context.Context, key registry.Key, checkID string) (registry.ApplyResult, error)
	Get(key registry.Key) (*registry.Instance, error)
	Instances(ctx context.Context, q registry.Query, minIndex uint64, wait time.Duration) (registry.Result, error)
	Services(ctx context.Context, minIndex uint64, wait time.Duration) (uint64, []registry.ServiceSummary, error)
	ServiceIndex(name string) uint64
	// Block waits until read() passes minIndex on watch key, the wait
	// ends, the context ends or the registry drains.
	Block(ctx context.Context, key string, minIndex uint64, wait time.Duration, read func() uint64) error
}

var _ Registry = (*registry.Service)(nil)
