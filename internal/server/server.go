// Package server is the agent's composition root: it builds every
// component from one config.Config, starts them in dependency order
// (store, log, registry, HTTP; then, while this agent leads, leases and
// active checks) and stops them in reverse. Nothing imports it but cli.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rosterhq/roster/internal/cluster"
	"github.com/rosterhq/roster/internal/clusterapi"
	"github.com/rosterhq/roster/internal/config"
	"github.com/rosterhq/roster/internal/consulapi"
	"github.com/rosterhq/roster/internal/dnsserver"
	"github.com/rosterhq/roster/internal/health"
	"github.com/rosterhq/roster/internal/httpapi"
	"github.com/rosterhq/roster/internal/lease"
	"github.com/rosterhq/roster/internal/raftlog"
	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/sds"
	"github.com/rosterhq/roster/internal/store"
	"github.com/rosterhq/roster/internal/xds"
)

// Server is one running agent.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	metrics  *prometheus.Registry
	store    *store.Store
	node     *raftlog.Node
	registry *registry.Service
	leases   *lease.Table
	checks   *health.Scheduler

	http  *httpServer       // the HTTP API
	sds   *httpServer       // the SDS API alone; nil without -sds-addr
	dns   *dnsserver.Server // nil when DNS is off
	xds   *xds.Server       // nil when xDS is off
	proxy *embeddedProxy    // nil without -proxy-addr

	// cluster is this agent's part in a cluster; nil on a single agent.
	cluster *cluster.Cluster
	raftNet *cluster.Network

	draining atomic.Bool
}

// New opens the data directory and builds every component, binding their
// listeners, so that their addresses are known before Run. When it fails,
// it releases what it had opened.
func New(cfg config.Config, log *slog.Logger) (_ *Server, err error) {
	var undo closers
	defer func() {
		if err != nil {
			undo.close()
		}
	}()
	s := &Server{cfg: cfg, log: log, metrics: prometheus.NewRegistry()}
	if limit, _ := config.ParseBytes(cfg.MemoryLimit); limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	nodeID, err := s.openLog(&undo)
	if err != nil {
		return nil, err
	}
	var consistent func(context.Context) error
	if s.raftNet != nil {
		// A follower's copy may lag the log, and so may a leader's that
		// was deposed without knowing it yet (a long pause).
		consistent = s.node.Consistent
	}
	s.registry = registry.New(registry.Config{State: s.store, Log: store.NewLog(s.store, s.node), Ready: s.node.Ready, Consistent: consistent})
	s.leases = lease.New(lease.Config{
		Registry: s.registry, Logger: log, Metrics: s.metrics,
		GuardFraction: cfg.LeaseGuardFraction, GuardMinLeases: cfg.LeaseGuardMin,
	})
	s.checks = health.New(health.Config{Registry: s.registry, Logger: log, Metrics: s.metrics})

	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("http listen %s: %w", cfg.HTTPAddr, err)
	}
	undo.push(httpLn.Close)
	snapMax, _ := config.ParseBytes(cfg.SnapshotMaxBytes) // checked by Validate
	local := localRestore{node: s.node, registry: s.registry, maxBytes: snapMax, busy: new(atomic.Bool)}
	var leases registry.Leases = s.leases
	if s.raftNet != nil {
		s.cluster = cluster.New(cluster.Config{
			Node: s.node, Network: s.raftNet, Registry: s.registry, Leases: s.leases,
			HTTPAddr: httpLn.Addr().String(), Join: cfg.JoinList(), BootstrapExpect: cfg.BootstrapExpect,
			DeadServerAfter: cfg.DeadServerAfter, MinServers: cfg.MinServers,
			Restore: local.restore, Logger: log, Metrics: s.metrics,
		})
		// Heartbeats reaching a follower renew the leader's leases.
		leases = s.cluster.Leases()
		log.Info("raft listening", "addr", s.raftNet.Addr(), "tls", s.raftNet.TLS(), "join", cfg.Join, "bootstrap_expect", cfg.BootstrapExpect)
	}
	// A setter, not a registry.Config field: the lease table expires
	// instances through the registry, so it is built over it.
	s.registry.SetLeases(leases)

	sdsAPI, sdsLn, err := newSDS(cfg, s.registry, s.lastContact(), log, s.metrics)
	if err != nil {
		return nil, err
	}
	grace := &shutdownGrace{d: cfg.ShutdownTimeout}
	if sdsLn != nil {
		undo.push(sdsLn.Close)
		s.sds = newHTTPServer(sdsLn, sdsAPI, grace, log.With("component", "sds"))
	}
	snaps := &snapshots{store: s.store, local: local, cluster: s.cluster}
	s.http = newHTTPServer(httpLn, s.handler(nodeID, httpLn.Addr().String(), snaps, sdsAPI), grace, log)
	if cfg.DNSEnabled() {
		if s.dns, err = newDNS(cfg, s.registry, s.lastContact(), log, s.metrics); err != nil {
			return nil, err
		}
		undo.push(s.dns.Close)
	}
	if cfg.XDSEnabled() {
		if s.xds, err = newXDS(cfg, s.registry, log, s.metrics); err != nil {
			return nil, err
		}
		undo.push(s.xds.Close)
	}
	if cfg.ProxyEnabled() {
		if s.proxy, err = newEmbeddedProxy(cfg, s.HTTPAddr(), log, s.metrics); err != nil {
			return nil, err
		}
		undo.push(s.proxy.Close)
	}
	return s, nil
}

// openLog creates the data directory, reads the node ID, and opens the
// store and the log over it (in cluster mode, on the raft port it binds).
func (s *Server) openLog(undo *closers) (nodeID string, err error) {
	cfg := s.cfg
	dir := cfg.DataDir
	if cfg.Dev {
		dir = ""
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	if nodeID, err = readNodeID(dir); err != nil {
		return "", err
	}
	s.store = store.New()
	s.store.RegisterMetrics(s.metrics)
	rc := raftlog.DefaultConfig()
	rc.Dir, rc.NodeID, rc.Logger, rc.Metrics = dir, nodeID, s.log, s.metrics
	rc.SnapshotInterval, rc.SnapshotThreshold, rc.TrailingLogs = cfg.SnapshotInterval, cfg.SnapshotThreshold, cfg.TrailingLogs
	rc.RecoverFromSnapshot = cfg.RecoverFromSnapshot
	// raft's own lines are for debugging the log itself: a single node
	// warns of an "election" at every start.
	rc.RaftLogLevel = "error"
	if cfg.LogLevel == "debug" {
		rc.RaftLogLevel = "debug"
	}
	if cfg.Clustered() {
		s.raftNet, err = cluster.Listen(cluster.NetworkConfig{
			Addr: cfg.RaftBindAddr(), Advertise: cfg.RaftAdvertise,
			CertFile: cfg.RaftTLSCert, KeyFile: cfg.RaftTLSKey, CAFile: cfg.RaftTLSCA, Logger: s.log,
		})
		if err != nil {
			return "", err
		}
		undo.push(s.raftNet.Close)
		// The network also closes with the node's transport.
		rc.Stream = s.raftNet.RaftLayer()
		rc.AwaitBootstrap = len(cfg.JoinList()) > 0 || cfg.BootstrapExpect > 1
	}
	if s.node, err = raftlog.Open(rc, s.store); err != nil {
		return "", err
	}
	undo.push(s.node.Close)
	return nodeID, nil
}

// handler builds the HTTP API: the native API, /debug/pprof/ with
// -enable-debug, the SDS routes, the cluster's routes and headers in
// cluster mode, and the Consul-compatible API, which reports the bound
// address.
func (s *Server) handler(nodeID, httpAddr string, snaps *snapshots, sdsAPI *sds.API) http.Handler {
	snapMax, _ := config.ParseBytes(s.cfg.SnapshotMaxBytes)
	api := httpapi.New(httpapi.Config{
		Registry: s.registry, Snapshots: snaps, MaxSnapshotBytes: snapMax,
		Logger: s.log, Metrics: s.metrics, Gatherer: s.metrics, Draining: s.draining.Load, Serving: s.node.Serving,
	})
	if s.cfg.EnableDebug {
		api.Mount("/debug/pprof/", http.HandlerFunc(pprof.Index))
		api.Mount("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
		api.Mount("/debug/pprof/trace", http.HandlerFunc(pprof.Trace))
	}
	sdsAPI.Mount(api.Mount)
	var capi *clusterapi.API
	if s.cluster != nil {
		capi = clusterapi.New(s.cluster)
		capi.MountOn(api)
	}
	consulapi.New(consulapi.Config{
		Registry: s.registry, Cluster: s.node, NodeName: s.cfg.NodeName, NodeID: nodeID,
		HTTPAddr: httpAddr, Datacenter: s.cfg.Datacenter, GETWrites: s.cfg.ConsulGETWrites,
		Logger: s.log, Metrics: s.metrics,
	}).MountOn(api)
	if capi != nil {
		return capi.Wrap(api.Handler())
	}
	return api.Handler()
}

// HTTPAddr is the address the HTTP API listens on.
func (s *Server) HTTPAddr() string { return s.http.Addr() }

// DNSAddr is the address the DNS interface listens on (UDP and TCP), or
// "" when it is off.
func (s *Server) DNSAddr() string {
	if s.dns == nil {
		return ""
	}
	return s.dns.Addr()
}

// XDSAddr is the address the xDS control plane listens on, or "" when it
// is off.
func (s *Server) XDSAddr() string {
	if s.xds == nil {
		return ""
	}
	return s.xds.Addr()
}

// lastContact is how long ago this agent heard from the cluster's leader
// (0 on the leader, negative when never), for -max-stale; nil on a
// single agent, which is never stale.
func (s *Server) lastContact() func() time.Duration {
	if s.cluster == nil {
		return nil
	}
	return func() time.Duration {
		_, d := s.cluster.LeaderState()
		return d
	}
}

// newDNS builds the DNS handler over the registry and binds its UDP and
// TCP listeners.
func newDNS(cfg config.Config, reg *registry.Service, lastContact func() time.Duration, log *slog.Logger, metrics prometheus.Registerer) (*dnsserver.Server, error) {
	dc := dnsserver.DefaultConfig()
	dc.Registry, dc.Logger, dc.Metrics = reg, log, metrics
	dc.LastContact, dc.MaxStale = lastContact, cfg.MaxStale
	dc.Domains = []string{cfg.DNSDomain}
	if cfg.DNSAltDomain != "" {
		dc.Domains = append(dc.Domains, cfg.DNSAltDomain)
	}
	dc.TTL, dc.NegativeTTL, dc.OnlyPassing = cfg.DNSTTL, cfg.DNSNegativeTTL, cfg.DNSOnlyPassing
	dc.MaxAnswers, dc.Recursors, dc.RateLimit = cfg.DNSMaxAnswers, cfg.DNSRecursorList(), cfg.DNSRateLimit
	dc.RecursorAllow, _ = config.ParsePrefixes(cfg.DNSRecursorAllow) // checked by cfg.Validate
	if host, _, err := net.SplitHostPort(cfg.DNSAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			dc.NSAddrs = []net.IP{ip}
		}
	}
	h, err := dnsserver.New(dc)
	if err != nil {
		return nil, err
	}
	return dnsserver.Listen(cfg.DNSAddr, h)
}

// newXDS binds the xDS listener and builds the control plane over the
// registry on it. An address that cannot be bound stops the agent, as for
// HTTP and DNS (-xds-addr off runs without xDS).
func newXDS(cfg config.Config, reg *registry.Service, log *slog.Logger, metrics prometheus.Registerer) (*xds.Server, error) {
	ln, err := net.Listen("tcp", cfg.XDSAddr)
	if err != nil {
		return nil, fmt.Errorf("xds listen %s (-xds-addr): %w", cfg.XDSAddr, err)
	}
	xc := xds.DefaultConfig()
	xc.Registry, xc.Listener, xc.Logger, xc.Metrics = reg, ln, log, metrics
	xc.Warning = xds.WarningMode(cfg.XDSWarning)
	x, err := xds.New(xc)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return x, nil
}

// newSDS builds the discovery-service (v1 SDS) API over the registry and,
// with -sds-addr, binds its own listener.
func newSDS(cfg config.Config, reg *registry.Service, lastContact func() time.Duration, log *slog.Logger, metrics prometheus.Registerer) (*sds.API, net.Listener, error) {
	sc := sds.DefaultConfig()
	sc.Registry, sc.Logger, sc.Metrics = reg, log, metrics
	sc.LastContact, sc.MaxStale = lastContact, cfg.MaxStale
	sc.HostTTL, sc.CacheType, sc.CacheTTL, sc.Env = cfg.SDSHostTTL, cfg.SDSCacheType, cfg.SDSCacheTTL, cfg.SDSEnv
	var err error
	if sc.TrustedProxies, err = config.ParsePrefixes(cfg.SDSTrustedProxies); err != nil {
		return nil, nil, fmt.Errorf("sds-trusted-proxies: %w", err)
	}
	if sc.AutoIPNets, err = config.ParsePrefixes(cfg.SDSAutoIPNets); err != nil {
		return nil, nil, fmt.Errorf("sds-auto-ip-nets: %w", err)
	}
	api, err := sds.New(sc)
	if err != nil || cfg.SDSAddr == "" {
		return api, nil, err
	}
	ln, err := net.Listen("tcp", cfg.SDSAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("sds listen %s: %w", cfg.SDSAddr, err)
	}
	return api, ln, nil
}

// components is the agent's ordered list of components: Run starts them
// in this order and stops them in reverse, so a component may use those
// before it until it stops. A new component (a front door on a listener
// of its own, say) is built in New and added here, once, with the policy
// for its failure.
func (s *Server) components() []component {
	cs := []component{
		// Last to stop: closes the log, then the raft port, so that a
		// restart serves the same state. A log that does not close
		// cleanly fails the agent's exit.
		{name: "log", run: onStop(s.closeLog), failure: stopAgent},
	}
	if s.cluster != nil {
		// Forms or joins the cluster and answers the peers' forwarded
		// writes: an agent its peers cannot reach must not stay in it.
		cs = append(cs, component{name: "cluster", run: s.cluster, failure: stopAgent})
	}
	cs = append(cs,
		// Once leases and checks have stopped: the leadership transfer
		// and the snapshot. Their failures are logged as warnings.
		component{name: "handover", run: onStop(s.handOver), failure: carryOn},
		// Leases and checks while leading. A leader that cannot expire
		// leases or run checks stops, so that another server leads.
		component{name: "leadership", run: &leadership{node: s.node, log: s.log, duties: []component{
			{name: "leases", run: s.leases, failure: stopAgent},
			{name: "checks", run: s.checks, failure: stopAgent},
		}}, failure: stopAgent},
	)
	if s.dns != nil {
		// In the clients' request path: an agent that has silently
		// stopped answering DNS is worse than one that exits and is
		// restarted.
		cs = append(cs, component{name: "dns", run: s.dns, failure: stopAgent, listening: []any{"addr", s.DNSAddr()}})
	}
	if s.xds != nil {
		// Envoy and gRPC clients keep their last configuration and
		// resume on another agent or after a restart: the rest goes on.
		cs = append(cs, component{name: "xds", run: s.xds, failure: carryOn, listening: []any{"addr", s.XDSAddr()}})
	}
	// The agent cannot be used, watched or health-checked without it.
	cs = append(cs, component{name: "http api", run: s.http, failure: stopAgent,
		listening: []any{"addr", s.HTTPAddr(), "data_dir", s.dataDirForLog(), "node", s.cfg.NodeName}})
	if s.sds != nil {
		// A second door: the HTTP API serves the same SDS routes.
		cs = append(cs, component{name: "sds api", run: s.sds, failure: carryOn, listening: []any{"addr", s.sds.Addr()}})
	}
	// Before the HTTP listeners stop accepting: /readyz turns 503 and
	// blocking queries return their current answer at once.
	cs = append(cs, component{name: "drain", run: onStop(s.drain), failure: carryOn})
	if s.proxy != nil {
		// In the clients' request path, as DNS. First to stop: it reads
		// the registry through the HTTP API.
		cs = append(cs, component{name: "proxy", run: s.proxy, failure: stopAgent, listening: []any{"addr", s.proxy.Addr()}})
	}
	return cs
}

// Run serves until ctx ends, then shuts down gracefully, stopping the
// components in the reverse of their order: the proxy; report not ready
// and release blocking queries; stop accepting and let in-flight requests
// finish within -shutdown-timeout; xDS, DNS; leases and checks; hand
// leadership over and take a snapshot; the cluster side; close the log so
// a restart serves the same state. A component whose failure stops the
// agent starts the same shutdown, and Run returns that failure.
func (s *Server) Run(ctx context.Context) error {
	err := runComponents(ctx, s.log, s.components(), func() { s.log.Info("shutting down") })
	s.log.Info("stopped")
	return err
}

// drain reports the agent not ready (/readyz) and makes blocking queries
// return at once.
func (s *Server) drain() error {
	s.draining.Store(true)
	s.registry.Drain()
	return nil
}

// handOver runs once leases and checks have stopped. A leader of a
// cluster hands leadership over first, so that the cluster does not wait
// an election timeout for a new leader; then, outside dev mode, a
// snapshot lets a restart restore it instead of replaying the log.
func (s *Server) handOver() error {
	if s.cluster != nil && s.node.IsLeader() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.node.TransferLeadership(ctx); err != nil {
			s.log.Warn("leadership transfer at shutdown", "err", err)
		}
	}
	if !s.cfg.Dev {
		if err := s.node.SnapshotIfBehind(1024); err != nil {
			s.log.Warn("snapshot at shutdown", "err", err)
		}
	}
	return nil
}

// closeLog closes the log, then the cluster side: raft's transport runs on
// its port.
func (s *Server) closeLog() error {
	err := s.node.Close()
	if s.cluster != nil {
		s.cluster.Close()
	}
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

func (s *Server) dataDirForLog() string {
	if s.cfg.Dev {
		return "(memory)"
	}
	return s.cfg.DataDir
}

// readNodeID reads the agent's stable ID from the data directory, creating
// it on first start. In dev mode every start gets a new one.
func readNodeID(dir string) (string, error) {
	newID := func() string {
		var b [8]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}
	if dir == "" {
		return newID(), nil
	}
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("node id: %w", err)
	}
	id := newID()
	if err := writeFileSync(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return id, nil
}

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
