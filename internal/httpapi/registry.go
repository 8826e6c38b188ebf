package httpapi

import (
	"context"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// Registry is what the native API calls of the registry
// (*registry.Service): reads with blocking, writes and heartbeats, and
// the readiness and drain signals. Called from request goroutines, many
// at once.
type Registry interface {
	Register(ctx context.Context, in *registry.Instance) (registry.ApplyResult, error)
	Deregister(ctx context.Context, key registry.Key) (uint64, error)
	Heartbeat(ctx context.Context, key registry.Key) error
	Instance(ctx context.Context, key registry.Key, minIndex uint64, wait time.Duration) (*registry.Instance, uint64, error)
	Instances(ctx context.Context, q registry.Query, minIndex uint64, wait time.Duration) (registry.Result, error)
	Services(ctx context.Context, minIndex uint64, wait time.Duration) (uint64, []registry.ServiceSummary, error)
	ServiceIndex(name string) uint64
	// Block waits until read() passes minIndex on watch key, the wait
	// ends, the context ends or the registry drains.
	Block(ctx context.Context, key string, minIndex uint64, wait time.Duration, read func() uint64) error
	LastIndex() uint64
	Ready() bool
	// Draining is closed once the agent shuts down: streams end.
	Draining() <-chan struct{}
}

var _ Registry = (*registry.Service)(nil)
