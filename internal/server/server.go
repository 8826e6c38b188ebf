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
	"sync"
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
	api      *httpapi.API
	http     *http.Server
	listener net.Listener
	dns      *dnsserver.Server // nil when DNS is off
	xds      *xds.Server       // nil when xDS is off
	xdsLn    net.Listener

	// cluster is this agent's part in a cluster; nil on a single agent.
	cluster *cluster.Cluster
	raftNet *cluster.Network

	sds         *sds.API     // also mounted on the HTTP API
	sdsListener net.Listener // nil without -sds-addr

	draining atomic.Bool
}

// New opens the data directory and builds every component. The HTTP
// listener is bound here, so its address is known before Run.
func New(cfg config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log, metrics: prometheus.NewRegistry()}
	if limit, _ := config.ParseBytes(cfg.MemoryLimit); limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	dir := cfg.DataDir
	if cfg.Dev {
		dir = ""
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	nodeID, err := nodeID(dir)
	if err != nil {
		return nil, err
	}

	s.store = store.New()
	s.store.RegisterMetrics(s.metrics)
	rc := raftlog.DefaultConfig()
	rc.Dir, rc.NodeID, rc.Logger, rc.Metrics = dir, nodeID, log, s.metrics
	rc.SnapshotInterval, rc.SnapshotThreshold, rc.TrailingLogs = cfg.SnapshotInterval, cfg.SnapshotThreshold, cfg.TrailingLogs
	// raft's own lines are for debugging the log itself: a single node
	// warns of an "election" at every start.
	rc.RaftLogLevel = "error"
	if cfg.LogLevel == "debug" {
		rc.RaftLogLevel = "debug"
	}
	if cfg.Clustered() {
		s.raftNet, err = cluster.Listen(cluster.NetworkConfig{
			Addr: cfg.RaftBindAddr(), Advertise: cfg.RaftAdvertise,
			CertFile: cfg.RaftTLSCert, KeyFile: cfg.RaftTLSKey, CAFile: cfg.RaftTLSCA, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		// The network closes with the node's transport.
		rc.Stream = s.raftNet.RaftLayer()
		rc.AwaitBootstrap = len(cfg.JoinList()) > 0 || cfg.BootstrapExpect > 1
	}
	s.node, err = raftlog.Open(rc, s.store)
	if err != nil {
		if s.raftNet != nil {
			s.raftNet.Close()
		}
		return nil, err
	}
	var lagging func() bool // a follower's copy may lag the log
	if s.raftNet != nil {
		// ... and so may a leader's, until a barrier of its term passed.
		lagging = func() bool { return !s.node.LeaderCaughtUp() }
	}
	s.registry = registry.New(registry.Config{State: s.store, Log: store.NewLog(s.store, s.node), Ready: s.node.Ready, Lagging: lagging})
	s.leases = lease.New(lease.Config{
		Registry: s.registry, Logger: log, Metrics: s.metrics,
		GuardFraction: cfg.LeaseGuardFraction, GuardMinLeases: cfg.LeaseGuardMin,
	})
	s.registry.SetLeases(s.leases)
	s.checks = health.New(health.Config{Registry: s.registry, Logger: log, Metrics: s.metrics})
	snaps := &snapshots{store: s.store, node: s.node, registry: s.registry}
	s.api = httpapi.New(httpapi.Config{
		Registry: s.registry, Snapshots: snaps,
		Logger: log, Metrics: s.metrics, Gatherer: s.metrics, Draining: s.draining.Load,
	})

	if cfg.EnableDebug {
		s.api.Mount("/debug/pprof/", http.HandlerFunc(pprof.Index))
		s.api.Mount("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
		s.api.Mount("/debug/pprof/trace", http.HandlerFunc(pprof.Trace))
	}
	if s.sds, s.sdsListener, err = newSDS(cfg, s.registry, log, s.metrics); err != nil {
		s.node.Close()
		return nil, err
	}
	s.sds.Mount(s.api.Mount)
	s.listener, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		if s.sdsListener != nil {
			s.sdsListener.Close()
		}
		s.node.Close()
		return nil, fmt.Errorf("http listen %s: %w", cfg.HTTPAddr, err)
	}
	if cfg.DNSEnabled() {
		s.dns, err = newDNS(cfg, s.registry, log, s.metrics)
		if err != nil {
			s.listener.Close()
			if s.sdsListener != nil {
				s.sdsListener.Close()
			}
			s.node.Close()
			return nil, err
		}
	}
	if cfg.XDSEnabled() {
		if s.xds, s.xdsLn, err = newXDS(cfg, s.registry, log, s.metrics); err != nil {
			s.listener.Close()
			if s.sdsListener != nil {
				s.sdsListener.Close()
			}
			if s.dns != nil {
				s.dns.Close()
			}
			s.node.Close()
			return nil, err
		}
	}
	if s.raftNet != nil {
		s.cluster = cluster.New(cluster.Config{
			Node: s.node, Network: s.raftNet, Registry: s.registry, Leases: s.leases,
			HTTPAddr: s.listener.Addr().String(), Join: cfg.JoinList(), BootstrapExpect: cfg.BootstrapExpect,
			Restore: snaps.restoreHere, Logger: log, Metrics: s.metrics,
		})
		s.registry.SetLeases(s.cluster.Leases())
		clusterapi.New(s.cluster).MountOn(s.api)
		snaps.cluster = s.cluster
		log.Info("raft listening", "addr", s.raftNet.Addr(), "tls", s.raftNet.TLS(), "join", cfg.Join, "bootstrap_expect", cfg.BootstrapExpect)
	}
	// The Consul-compatible API shares the listener and reports its
	// bound address, so it is built once the listener is.
	consulapi.New(consulapi.Config{
		Registry: s.registry, Cluster: s.node, NodeName: cfg.NodeName, NodeID: nodeID,
		HTTPAddr: s.listener.Addr().String(), Datacenter: cfg.Datacenter, GETWrites: cfg.ConsulGETWrites,
		Logger: log, Metrics: s.metrics,
	}).MountOn(s.api)
	handler := s.api.Handler()
	if s.cluster != nil {
		handler = clusterapi.New(s.cluster).Wrap(handler)
	}
	s.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// HTTPAddr is the address the HTTP API listens on.
func (s *Server) HTTPAddr() string { return s.listener.Addr().String() }

// DNSAddr is the address the DNS interface listens on (UDP and TCP), or
// "" when it is off.
func (s *Server) DNSAddr() string {
	if s.dns == nil {
		return ""
	}
	return s.dns.Addr()
}

// newDNS builds the DNS handler over the registry and binds its UDP and
// TCP listeners.
func newDNS(cfg config.Config, reg *registry.Service, log *slog.Logger, metrics prometheus.Registerer) (*dnsserver.Server, error) {
	dc := dnsserver.DefaultConfig()
	dc.Registry, dc.Logger, dc.Metrics = reg, log, metrics
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

// XDSAddr is the address the xDS control plane listens on, or "" when it
// is off.
func (s *Server) XDSAddr() string {
	if s.xdsLn == nil {
		return ""
	}
	return s.xdsLn.Addr().String()
}

// newXDS builds the xDS control plane over the registry and binds its
// listener. An address that cannot be bound stops the agent, as for HTTP
// and DNS (-xds-addr off runs without xDS).
func newXDS(cfg config.Config, reg *registry.Service, log *slog.Logger, metrics prometheus.Registerer) (*xds.Server, net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.XDSAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("xds listen %s (-xds-addr): %w", cfg.XDSAddr, err)
	}
	xc := xds.DefaultConfig()
	xc.Registry, xc.Logger, xc.Metrics = reg, log, metrics
	xc.Warning = xds.WarningMode(cfg.XDSWarning)
	x, err := xds.New(xc)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	return x, ln, nil
}

// newSDS builds the discovery-service (v1 SDS) API over the registry and,
// with -sds-addr, binds its own listener.
func newSDS(cfg config.Config, reg *registry.Service, log *slog.Logger, metrics prometheus.Registerer) (*sds.API, net.Listener, error) {
	sc := sds.DefaultConfig()
	sc.Registry, sc.Logger, sc.Metrics = reg, log, metrics
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

// Run serves until ctx ends, then shuts down gracefully: report not
// ready, stop accepting, let in-flight requests finish (blocking queries
// return their current answer at once), stop leases and checks, and close
// the log so a restart serves the same state.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	dnsCtx, stopDNS := context.WithCancel(context.Background())
	defer stopDNS()
	dnsErr, dnsDone := make(chan error, 1), make(chan struct{})
	if s.dns != nil {
		go func() { defer close(dnsDone); dnsErr <- s.dns.Run(dnsCtx) }()
		s.log.Info("dns listening", "addr", s.DNSAddr())
	} else {
		close(dnsDone)
	}
	xdsCtx, stopXDS := context.WithCancel(context.Background())
	defer stopXDS()
	xdsDone := make(chan struct{})
	if s.xds != nil {
		go func() {
			defer close(xdsDone)
			if err := s.xds.Serve(xdsCtx, s.xdsLn); err != nil {
				s.log.Error("xds server", "err", err)
			}
		}()
		s.log.Info("xds listening", "addr", s.XDSAddr())
	} else {
		close(xdsDone)
	}
	go func() { errc <- s.http.Serve(s.listener) }()
	s.log.Info("http api listening", "addr", s.HTTPAddr(), "data_dir", s.dataDirForLog(), "node", s.cfg.NodeName)
	sdsCtx, stopSDS := context.WithCancel(context.Background())
	defer stopSDS()
	sdsDone := make(chan struct{})
	if s.sdsListener != nil {
		go func() {
			defer close(sdsDone)
			if err := s.sds.Serve(sdsCtx, s.sdsListener, s.cfg.ShutdownTimeout); err != nil {
				s.log.Error("sds api listener", "err", err)
			}
		}()
		s.log.Info("sds api listening", "addr", s.sdsListener.Addr().String())
	} else {
		close(sdsDone)
	}

	clusterCtx, stopCluster := context.WithCancel(context.Background())
	defer stopCluster()
	clusterDone := make(chan struct{})
	if s.cluster != nil {
		go func() { defer close(clusterDone); s.cluster.Run(clusterCtx) }()
	} else {
		close(clusterDone)
	}

	leaderCtx, stopLeader := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.leadership(leaderCtx) }()

	proxyCtx, stopProxy := context.WithCancel(context.Background())
	defer stopProxy()
	proxyErr, proxyDone := make(chan error, 1), make(chan struct{})
	if s.cfg.ProxyEnabled() {
		go func() { defer close(proxyDone); proxyErr <- s.runProxy(proxyCtx) }()
	} else {
		close(proxyDone)
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("http: %w", err)
	case err = <-dnsErr:
	case err = <-proxyErr:
	}
	s.log.Info("shutting down")
	stopProxy() // first: it reads the registry through the HTTP API
	<-proxyDone
	s.draining.Store(true)
	s.registry.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	stopSDS() // shuts down beside the HTTP API
	if serr := s.http.Shutdown(sctx); serr != nil {
		s.log.Warn("http shutdown", "err", serr)
		s.http.Close()
	}
	<-sdsDone
	stopXDS() // closes every xDS stream; clients resume elsewhere or on restart
	<-xdsDone
	stopDNS()
	<-dnsDone
	stopLeader()
	wg.Wait()
	if s.cluster != nil && s.node.IsLeader() {
		// Hand leadership over first, so that the cluster does not wait
		// an election timeout for a new leader.
		tctx, tcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if terr := s.node.TransferLeadership(tctx); terr != nil {
			s.log.Warn("leadership transfer at shutdown", "err", terr)
		}
		tcancel()
	}
	if !s.cfg.Dev {
		// A restart then restores a snapshot instead of replaying the log.
		if serr := s.node.SnapshotIfBehind(1024); serr != nil {
			s.log.Warn("snapshot at shutdown", "err", serr)
		}
	}
	stopCluster()
	if cerr := s.node.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close log: %w", cerr))
	}
	if s.cluster != nil {
		s.cluster.Close() // after the node: raft's transport runs on its port
	}
	<-clusterDone
	s.log.Info("stopped")
	return err
}

// leadership runs leases and active checks while this agent leads, from
// the moment its state is caught up.
func (s *Server) leadership(ctx context.Context) {
	var (
		stop func()
		done chan struct{}
	)
	start := func() {
		lctx, cancel := context.WithCancel(ctx)
		done = make(chan struct{})
		stop = cancel
		go func() {
			defer close(done)
			if err := s.node.Barrier(lctx); err != nil {
				if lctx.Err() == nil {
					s.log.Warn("leadership: catching up failed", "err", err)
				}
				return
			}
			s.log.Info("leading: leases and checks started")
			var cwg sync.WaitGroup
			cwg.Add(2)
			go func() { defer cwg.Done(); _ = s.leases.Run(lctx) }()
			go func() { defer cwg.Done(); _ = s.checks.Run(lctx) }()
			cwg.Wait()
		}()
	}
	halt := func() {
		if stop != nil {
			stop()
			<-done
			stop = nil
		}
	}
	defer halt()
	if s.node.IsLeader() {
		start()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case leader := <-s.node.LeaderCh():
			halt()
			if leader {
				start()
			} else {
				s.log.Info("leadership lost: leases and checks stopped")
			}
		}
	}
}

func (s *Server) dataDirForLog() string {
	if s.cfg.Dev {
		return "(memory)"
	}
	return s.cfg.DataDir
}

// nodeID reads the agent's stable ID from the data directory, creating it
// on first start. In dev mode every start gets a new one.
func nodeID(dir string) (string, error) {
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
