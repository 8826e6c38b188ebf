// Package xds is roster's xDS control plane: it serves the registry over
// the xDS v3 protocol (gRPC, state-of-the-world and delta, aggregated and
// per type) to Envoy and to proxyless gRPC clients, with
// envoyproxy/go-control-plane's snapshot cache and server.
//
// Every service with instances is served as four resources named after
// it: an EDS cluster (CDS), its endpoints (EDS: the healthy instances with
// weight, locality, priority, canary and health status), an API listener
// (LDS) and a route configuration (RDS) sending everything to the
// cluster, which is what a gRPC client dialling xds:///NAME asks for.
//
// The resources follow the registry through one watch on its service
// list, with no polling: a change rebuilds only the services whose index
// moved, and sets one consistent snapshot whose versions are registry
// indexes. Every node sees the same snapshot. The package owns no
// registry state, only the resources built from it.
package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/rosterhq/roster/internal/registry"
)

// Registry is what the control plane reads: registry.Service satisfies
// it. Every method is called from the one goroutine that follows the
// registry, without blocking (minIndex 0).
type Registry interface {
	Ready() bool
	Services(ctx context.Context, minIndex uint64, wait time.Duration) (uint64, []registry.ServiceSummary, error)
	Instances(ctx context.Context, q registry.Query, minIndex uint64, wait time.Duration) (registry.Result, error)
	Watch(key string) (<-chan struct{}, func())
}

var _ Registry = (*registry.Service)(nil)

// Config configures a Server.
type Config struct {
	// Registry is followed for changes. Required.
	Registry Registry
	// Listener is where xDS is served. Required. The Server owns it from
	// New on: Run closes it when it returns, Close if Run is never called.
	Listener net.Listener
	// Warning is how instances whose health is warning are served:
	// healthy (default), degraded or omit.
	Warning WarningMode
	// ConnectTimeout is every cluster's connect_timeout (default 5s).
	ConnectTimeout time.Duration
	// ReadyPoll is how often the registry is asked whether it is ready,
	// until it is (default 50ms). After that, changes arrive by watch.
	ReadyPoll time.Duration
	// Logger receives the component's logs; nil discards them.
	Logger *slog.Logger
	// Metrics registers the roster_xds_* metrics; nil registers none.
	Metrics prometheus.Registerer
}

// DefaultConfig returns the defaults; set Registry and Listener.
func DefaultConfig() Config {
	return Config{Warning: WarningHealthy, ConnectTimeout: 5 * time.Second, ReadyPoll: 50 * time.Millisecond}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if c.Registry == nil {
		return errors.New("xds: Registry is required")
	}
	if c.Listener == nil {
		return errors.New("xds: Listener is required")
	}
	if !c.Warning.Valid() {
		return fmt.Errorf("xds: warning mode %q is not healthy, degraded or omit", c.Warning)
	}
	if c.ConnectTimeout <= 0 {
		return errors.New("xds: ConnectTimeout must be positive")
	}
	if c.ReadyPoll <= 0 {
		return errors.New("xds: ReadyPoll must be positive")
	}
	return nil
}

// nodeGroup is the one snapshot key: every node is served the same
// resources, so the cache keeps one snapshot for all of them.
const nodeGroup = "roster"

// allNodes maps every node to nodeGroup.
type allNodes struct{}

func (allNodes) ID(*corev3.Node) string { return nodeGroup }

// Server is the xDS control plane: a gRPC server for the discovery
// services and the loop that keeps the snapshot in step with the
// registry.
type Server struct {
	cfg     Config
	ln      net.Listener
	log     *slog.Logger
	cache   cachev3.SnapshotCache
	grpc    *grpc.Server
	builder *builder
	m       *metrics
}

// New builds a Server over cfg.Listener; Run serves it. On error the
// listener is left to the caller.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "xds")
	s := &Server{
		cfg:     cfg,
		ln:      cfg.Listener,
		log:     log,
		cache:   cachev3.NewSnapshotCache(false, allNodes{}, cacheLogger{log}),
		builder: newBuilder(buildOptions{warning: cfg.Warning, connectTimeout: cfg.ConnectTimeout}),
		m:       newMetrics(cfg.Metrics),
	}
	xs := serverv3.NewServer(context.Background(), s.cache, s.m.callbacks())
	s.grpc = grpc.NewServer(
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	register(s.grpc, xs)
	return s, nil
}

// Addr is the address xDS is served on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run follows the registry and serves xDS on the listener until ctx ends,
// then closes every stream (clients reconnect and resume from their
// versions) and the listener. It returns an error only when the listener
// fails. Call it once.
func (s *Server) Run(ctx context.Context) error {
	followCtx, stop := context.WithCancel(ctx)
	defer stop()
	followed := make(chan struct{})
	go func() { defer close(followed); s.follow(followCtx) }()
	served := make(chan error, 1)
	go func() { served <- s.grpc.Serve(s.ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("xds serve: %w", err)
	}
	s.grpc.Stop()
	stop()
	<-followed
	return err
}

// Close releases the listener of a Server that was never Run.
func (s *Server) Close() error { return s.ln.Close() }
