package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/balance"
	"github.com/rosterhq/roster/internal/proxy"
)

// proxyFlags are the settings of `roster proxy`.
type proxyFlags struct {
	httpAddr, listen, admin, routesFile string
	domains, balancer, hashHeader, zone string
	logLevel, logFormat                 string
	noDefaultHosts, accessLog, debug    bool
	maxAttempts, maxPending             int
	maxConns, maxIdle, outlierFailures  int
	gcPercent                           int
	flushInterval                       time.Duration
	dialTimeout, headerTimeout, drain   time.Duration
	outlierEjection, outlierMaxEjection time.Duration
	routes                              stringList
	resolverWait, resolverMinInterval   time.Duration
	idleServiceTimeout                  time.Duration
}

func (f *proxyFlags) bind(fs *flag.FlagSet, e *env) {
	def := proxy.DefaultConfig()
	agent := e.getenv("ROSTER_HTTP_ADDR")
	if agent == "" {
		agent = client.DefaultAddress
	}
	fs.StringVar(&f.httpAddr, "http-addr", agent, "agent HTTP address the proxy reads the registry from (env ROSTER_HTTP_ADDR)")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "host:port the proxy serves HTTP/1.1 and cleartext HTTP/2 on")
	fs.StringVar(&f.admin, "admin-addr", "", "host:port serving /metrics and /healthz (empty: none)")
	fs.StringVar(&f.routesFile, "routes", "", `JSON routes file: {"routes": [{"host": ..., "path_prefix": ..., "service": ...}]}`)
	fs.Var(&f.routes, "route", "route HOST=SERVICE, /PREFIX=SERVICE or HOST/PREFIX=SERVICE (repeatable; after the file's)")
	fs.BoolVar(&f.noDefaultHosts, "no-default-hosts", false, "do not route host NAME and NAME.DOMAIN to service NAME when no route matches")
	fs.StringVar(&f.domains, "domains", strings.Join(def.Domains, ","), "comma-separated domains for default hosts (NAME.DOMAIN)")
	fs.StringVar(&f.balancer, "balancer", "round_robin", "policy of default-host services: "+strings.Join(proxy.Balancers, ", "))
	fs.StringVar(&f.hashHeader, "hash-header", "", "request header hashed by ring_hash (and to choose subsets) for default-host services")
	fs.StringVar(&f.zone, "zone", "", "preferred zone (other zones only when it has no available instance)")
	fs.IntVar(&f.maxAttempts, "max-attempts", def.MaxAttempts, "tries of an idempotent request, each on another instance")
	fs.IntVar(&f.maxPending, "max-pending", def.MaxPending, "requests of one route waiting for an answer before 503 (0: no limit)")
	fs.IntVar(&f.maxConns, "max-conns-per-upstream", def.MaxConnsPerUpstream, "connections to one instance (0: no limit)")
	fs.IntVar(&f.maxIdle, "max-idle-conns-per-upstream", def.MaxIdleConnsPerUpstream, "kept-alive idle connections per instance")
	fs.DurationVar(&f.dialTimeout, "dial-timeout", def.DialTimeout, "bound on connecting to an instance")
	fs.DurationVar(&f.headerTimeout, "response-header-timeout", def.ResponseHeaderTimeout, "bound on waiting for an instance's response headers (0: none)")
	fs.IntVar(&f.outlierFailures, "outlier-failures", 5, "consecutive failures (errors, 5xx) that eject an instance (-1: no ejection)")
	fs.DurationVar(&f.outlierEjection, "outlier-ejection", 10*time.Second, "first ejection's length, doubled for each repeat")
	fs.DurationVar(&f.outlierMaxEjection, "outlier-max-ejection", 5*time.Minute, "longest ejection")
	fs.DurationVar(&f.resolverWait, "watch-wait", 5*time.Minute, "how long one blocking query on the agent waits for a change")
	fs.DurationVar(&f.resolverMinInterval, "watch-min-interval", 100*time.Millisecond, "least time between a watch's answer and its next query")
	fs.DurationVar(&f.idleServiceTimeout, "idle-service-timeout", def.IdleServiceTimeout, "release a default-host service unused this long")
	fs.DurationVar(&f.flushInterval, "flush-interval", def.FlushInterval, "longest an answer of known length waits in the proxy before it is flushed (-1ns: flush every write)")
	fs.IntVar(&f.gcPercent, "gc-percent", 400, "Go GC target (GOGC): the proxy's heap is small, so collecting less often saves CPU for a few MB (-1: GOGC's)")
	fs.BoolVar(&f.accessLog, "access-log", false, "log every request (info level)")
	fs.BoolVar(&f.debug, "enable-debug", false, "serve Go's profiler at /debug/pprof/ on the admin address")
	fs.DurationVar(&f.drain, "shutdown-timeout", 10*time.Second, "how long requests in flight may finish at shutdown")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
}

func runProxy(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("proxy", e)
	var f proxyFlags
	f.bind(fs, e)
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"unexpected argument " + pos[0]}
	}
	log, err := proxyLogger(e, f.logLevel, f.logFormat)
	if err != nil {
		return usageError{err.Error()}
	}
	cfg, err := f.config()
	if err != nil {
		return usageError{err.Error()}
	}
	if f.gcPercent >= 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(f.gcPercent)
	}
	c, err := client.New(client.Config{Address: f.httpAddr, Logger: log})
	if err != nil {
		return usageError{err.Error()}
	}
	defer c.Close()
	outlier := &balance.Outlier{ConsecutiveFailures: f.outlierFailures, BaseEjection: f.outlierEjection, MaxEjection: f.outlierMaxEjection}
	res := client.NewResolver(c, client.ResolverConfig{
		Zone: f.zone, Wait: f.resolverWait, MinInterval: f.resolverMinInterval, Outlier: outlier, Logger: log,
		IdleTimeout: f.idleServiceTimeout,
	})
	defer res.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Resolver, cfg.Logger, cfg.Metrics = res, log, reg
	p, err := proxy.New(cfg)
	if err != nil {
		return usageError{err.Error()}
	}
	defer p.Close()

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", f.listen, err)
	}
	if f.admin != "" {
		aln, err := net.Listen("tcp", f.admin)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin listen %s: %w", f.admin, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		if f.debug {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		asrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = asrv.Serve(aln) }()
		defer asrv.Close()
		log.Info("proxy admin listening", "addr", aln.Addr().String())
	}
	log.Info("proxy listening", "addr", ln.Addr().String(), "agent", f.httpAddr, "routes", len(cfg.Routes),
		"default_hosts", cfg.DefaultHosts)
	err = p.Serve(ctx, ln, f.drain)
	log.Info("proxy stopped")
	return err
}

// config turns the flags into the proxy's config (without the resolver).
func (f *proxyFlags) config() (proxy.Config, error) {
	cfg := proxy.DefaultConfig()
	if f.routesFile != "" {
		file, err := os.Open(f.routesFile)
		if err != nil {
			return cfg, err
		}
		cfg.Routes, err = proxy.ParseRoutes(file)
		file.Close()
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", f.routesFile, err)
		}
	}
	for _, s := range f.routes {
		r, err := proxy.ParseRouteFlag(s)
		if err != nil {
			return cfg, err
		}
		cfg.Routes = append(cfg.Routes, r)
	}
	cfg.DefaultHosts = !f.noDefaultHosts
	cfg.Domains = nil
	for _, d := range strings.Split(f.domains, ",") {
		if d = strings.TrimSpace(d); d != "" {
			cfg.Domains = append(cfg.Domains, d)
		}
	}
	cfg.Balancer, cfg.HashHeader, cfg.Zone, cfg.AccessLog = f.balancer, f.hashHeader, f.zone, f.accessLog
	cfg.MaxAttempts, cfg.MaxPending = f.maxAttempts, f.maxPending
	cfg.MaxConnsPerUpstream, cfg.MaxIdleConnsPerUpstream = f.maxConns, f.maxIdle
	cfg.DialTimeout, cfg.ResponseHeaderTimeout = f.dialTimeout, f.headerTimeout
	cfg.IdleServiceTimeout, cfg.FlushInterval = f.idleServiceTimeout, f.flushInterval
	if f.outlierFailures == 0 || f.outlierFailures < -1 {
		return cfg, errors.New("outlier-failures: at least 1, or -1 for no ejection")
	}
	return cfg, nil
}

func proxyLogger(e *env, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	}
	return nil, fmt.Errorf("log-format: %q is not text or json", format)
}
