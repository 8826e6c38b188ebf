// Package config assembles the agent's one Config: defaults, then an
// optional JSON config file, then ROSTER_* environment variables, then
// command-line flags, each overriding the one before. Every setting has
// all four forms: flag -http-addr, env ROSTER_HTTP_ADDR, file key
// "http_addr".
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is everything `roster agent` can be told.
type Config struct {
	// DataDir holds the log and snapshots.
	DataDir string
	// Dev keeps all state in memory: nothing survives a restart.
	Dev bool
	// HTTPAddr is the host:port of the HTTP API.
	HTTPAddr string
	// NodeName names this agent; defaults to the host name.
	NodeName string
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel  string
	LogFormat string
	// SnapshotInterval, SnapshotThreshold and TrailingLogs tune log
	// compaction (see raftlog.Config).
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// RecoverFromSnapshot lets the agent start on a data directory whose
	// log is missing, corrupt, or does not reach the latest snapshot, by
	// starting from that snapshot: the operator accepts losing the writes
	// only the log held (each is logged). Without it such a directory
	// refuses to start. Use once, for that start.
	RecoverFromSnapshot bool
	// SnapshotMaxBytes bounds a snapshot upload (PUT
	// /v1/registry/snapshot), such as "512MiB"; a larger one is refused
	// with 413 before anything changes.
	SnapshotMaxBytes string
	// LeaseGuardFraction and LeaseGuardMin tune self-preservation: when
	// more than this share of at least this many leases lapse within one
	// TTL, expiry stops. A fraction of 1 disables it.
	LeaseGuardFraction float64
	LeaseGuardMin      int
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout time.Duration
	// EnableDebug serves Go's profiler at /debug/pprof/ on the HTTP API.
	EnableDebug bool
	// MemoryLimit is a soft limit on the agent's memory, such as "150MiB"
	// (Go's runtime/debug.SetMemoryLimit): the garbage collector works
	// harder as the heap nears it, trading CPU for memory. Empty means no
	// limit beyond GOMEMLIMIT.
	MemoryLimit string

	// Server makes this agent a server of a cluster: raft runs over TCP
	// on RaftAddr so that other servers can join it. -join and
	// -bootstrap-expect imply it. Without it the agent is a one-voter
	// cluster on an in-memory transport (the default).
	Server bool
	// RaftAddr is the host:port of the raft port (raft and the agents'
	// internal RPCs); empty means DefaultRaftAddr when clustered.
	RaftAddr string
	// RaftAdvertise is the host:port other servers reach the raft port at;
	// empty means RaftAddr.
	RaftAdvertise string
	// Join is a comma-separated list of other servers' raft addresses to
	// join the cluster through.
	Join string
	// BootstrapExpect is how many servers form a new cluster: once this
	// agent knows of that many (through -join), it bootstraps them all.
	// 0: this agent bootstraps alone when it has no -join, else waits to
	// be added.
	BootstrapExpect int
	// RaftTLSCert, RaftTLSKey and RaftTLSCA turn on TLS on the raft port
	// (all three or none), with client certificates required.
	RaftTLSCert string
	RaftTLSKey  string
	RaftTLSCA   string
	// DeadServerAfter: the leader removes from the raft configuration a
	// server it has not reached for longer than this (Consul's autopilot
	// CleanupDeadServers), one at a time, never leaving fewer than
	// MinServers voters and only while the servers left that it reaches
	// are a quorum of the configuration after the removal. 0 turns the
	// cleanup off. The default, 72h, outlasts a weekend's outage and is
	// how long Consul keeps a failed agent before it reaps it.
	DeadServerAfter time.Duration
	// MinServers is the fewest voters dead-server cleanup leaves.
	MinServers int
	// MaxStale: an agent that has not heard from a leader for longer than
	// this answers DNS questions SERVFAIL and SDS reads 503 instead of
	// serving its possibly stale state. The leader is never stale. 0 (the
	// default, as Consul's dns_config.max_stale) is no limit.
	MaxStale time.Duration

	// Datacenter is the Consul datacenter the Consul-compatible API
	// reports this agent in.
	Datacenter string
	// ConsulGETWrites accepts GET as well as PUT on the Consul agent
	// endpoints python-consul 0.7 calls with GET (service deregister,
	// check pass/warn/fail). A web page can make a browser send a GET, so
	// turn it off where browsers reach the agent.
	ConsulGETWrites bool

	// SDSHostTTL is how long a host registered through the discovery-
	// service (v1 SDS) API stays listed after its last check-in.
	SDSHostTTL time.Duration
	// SDSCacheType is "null" (answers always fresh) or "simple" (service
	// answers served for SDSCacheTTL after they were built, as stale as
	// the original's cache).
	SDSCacheType string
	SDSCacheTTL  time.Duration
	// SDSEnv is reported as "env" in SDS answers.
	SDSEnv string
	// SDSAddr is an extra host:port serving only the SDS API; empty means
	// none (the API is always on the HTTP API's listener too).
	SDSAddr string
	// SDSTrustedProxies lists the IPs or CIDR prefixes (comma-separated)
	// of proxies whose X-Forwarded-For is believed for auto_ip.
	SDSTrustedProxies string
	// SDSAutoIPNets lists the prefixes an auto_ip address must be in.
	SDSAutoIPNets string
	// SDSCompat reads the original discovery service's environment
	// (HOST_TTL, CACHE_TTL, CACHE_TYPE, BACKEND_STORAGE, APPLICATION_ENV,
	// LOG_LEVEL, DEBUG, PORT) over the defaults, config file and ROSTER_*
	// variables; command-line flags still win.
	SDSCompat bool

	// DNSAddr is the host:port of the DNS interface (UDP and TCP); empty
	// or "off" disables it.
	DNSAddr string
	// DNSDomain is the domain DNS answers for; DNSAltDomain a second one
	// answered the same way (empty: none), so Consul-style names work.
	DNSDomain    string
	DNSAltDomain string
	// DNSTTL is the TTL of DNS answers; 0 makes every lookup reach the
	// agent, so registry changes show at once.
	DNSTTL time.Duration
	// DNSNegativeTTL is how long resolvers may cache a negative DNS
	// answer (the SOA minimum).
	DNSNegativeTTL time.Duration
	// DNSOnlyPassing leaves warning instances out of DNS answers.
	DNSOnlyPassing bool
	// DNSMaxAnswers caps the records of one DNS answer; 0 means as many
	// as fit in the message.
	DNSMaxAnswers int
	// DNSRecursors is a comma-separated list of host[:port] that DNS
	// questions for other names are forwarded to; empty answers REFUSED.
	DNSRecursors string
	// DNSRecursorAllow lists the IPs or CIDR prefixes (comma-separated)
	// whose DNS questions with RD set are forwarded to DNSRecursors; other
	// sources get REFUSED. Default loopback only: never an open resolver.
	DNSRecursorAllow string
	// DNSRateLimit is the DNS queries per second allowed from one source
	// address (IPv6 by /64); 0 disables the limit.
	DNSRateLimit float64

	// XDSAddr is the host:port of the xDS control plane (gRPC, for Envoy
	// and proxyless gRPC clients); empty or "off" disables it.
	XDSAddr string
	// XDSWarning is how xDS serves instances whose health is warning:
	// "healthy" (as HEALTHY endpoints), "degraded" (as DEGRADED: Envoy
	// uses them only when too few hosts are healthy; gRPC skips them) or
	// "omit" (passing instances only).
	XDSWarning string

	// ProxyAddr is the host:port of the built-in load-balancing proxy run
	// inside the agent (the same proxy as `roster proxy`, reading this
	// agent's registry through the Go SDK); empty or "off" disables it.
	ProxyAddr string
	// ProxyRoutes is a JSON routes file for it (see docs/proxy.md); empty:
	// hosts NAME and NAME.service.roster route to service NAME.
	ProxyRoutes string
}

// DefaultDNSAddr is where the DNS interface listens unless told
// otherwise.
const DefaultDNSAddr = "127.0.0.1:8600"

// DefaultXDSAddr is where the xDS control plane listens unless told
// otherwise.
const DefaultXDSAddr = "127.0.0.1:8502"

// Default returns the defaults.
func Default() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "roster"
	}
	return Config{
		DataDir:            "./roster-data",
		HTTPAddr:           "127.0.0.1:8500",
		NodeName:           host,
		LogLevel:           "info",
		LogFormat:          "text",
		SnapshotInterval:   10 * time.Second,
		SnapshotThreshold:  16384,
		TrailingLogs:       10240,
		SnapshotMaxBytes:   "512MiB",
		LeaseGuardFraction: 0.5,
		LeaseGuardMin:      10,
		ShutdownTimeout:    10 * time.Second,
		SDSHostTTL:         600 * time.Second,
		SDSCacheType:       "null",
		SDSCacheTTL:        30 * time.Second,
		SDSEnv:             "development",
		SDSTrustedProxies:  "127.0.0.0/8,::1/128",
		SDSAutoIPNets:      "192.168.0.0/16",
		DNSAddr:            DefaultDNSAddr,
		DNSDomain:          "roster.",
		DNSAltDomain:       "consul.",
		DNSRecursorAllow:   "127.0.0.0/8,::1/128",
		Datacenter:         "dc1",
		ConsulGETWrites:    true,
		XDSAddr:            DefaultXDSAddr,
		XDSWarning:         "healthy",
		DeadServerAfter:    72 * time.Hour,
		MinServers:         3,
	}
}

// EnvPrefix prefixes every environment variable.
const EnvPrefix = "ROSTER_"

// Flags binds every setting to fs, returning the config they fill and the
// flag naming the config file.
func Flags(fs *flag.FlagSet) (*Config, *string) {
	c := Default()
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the log and snapshots")
	fs.BoolVar(&c.Dev, "dev", c.Dev, "keep all state in memory (nothing survives a restart)")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "host:port of the HTTP API")
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "name of this agent")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", c.SnapshotInterval, "how often to consider a snapshot")
	fs.Uint64Var(&c.SnapshotThreshold, "snapshot-threshold", c.SnapshotThreshold, "new log entries that trigger a snapshot")
	fs.Uint64Var(&c.TrailingLogs, "trailing-logs", c.TrailingLogs, "log entries kept after a snapshot")
	fs.BoolVar(&c.RecoverFromSnapshot, "recover-from-snapshot", c.RecoverFromSnapshot, "start from the latest snapshot when the log is missing, corrupt or ends before it, accepting the loss of writes only the log held")
	fs.StringVar(&c.SnapshotMaxBytes, "snapshot-max-bytes", c.SnapshotMaxBytes, "largest snapshot upload accepted, such as 512MiB (larger: 413)")
	fs.Float64Var(&c.LeaseGuardFraction, "lease-guard-fraction", c.LeaseGuardFraction, "share of leases lapsing within one TTL that stops expiry (1 disables)")
	fs.IntVar(&c.LeaseGuardMin, "lease-guard-min", c.LeaseGuardMin, "fewest leases for the self-preservation guard to apply")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long in-flight requests may finish at shutdown")
	fs.StringVar(&c.MemoryLimit, "memory-limit", c.MemoryLimit, "soft memory limit such as 150MiB; the GC trades CPU for staying under it")
	fs.BoolVar(&c.EnableDebug, "enable-debug", c.EnableDebug, "serve /debug/pprof/ on the HTTP API")
	fs.BoolVar(&c.Server, "server", c.Server, "run as a server of a cluster: raft over TCP on -raft-addr (implied by -join and -bootstrap-expect)")
	fs.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "host:port of the raft port when clustered (default "+DefaultRaftAddr+")")
	fs.StringVar(&c.RaftAdvertise, "raft-advertise", c.RaftAdvertise, "host:port other servers reach the raft port at (default: -raft-addr)")
	fs.StringVar(&c.Join, "join", c.Join, "comma-separated raft addresses of servers to join the cluster through")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", c.BootstrapExpect, "servers that form a new cluster; bootstrap once this many are known")
	fs.StringVar(&c.RaftTLSCert, "raft-tls-cert", c.RaftTLSCert, "PEM certificate for TLS on the raft port (with -raft-tls-key and -raft-tls-ca)")
	fs.StringVar(&c.RaftTLSKey, "raft-tls-key", c.RaftTLSKey, "PEM key of -raft-tls-cert")
	fs.StringVar(&c.RaftTLSCA, "raft-tls-ca", c.RaftTLSCA, "PEM CA bundle that signs every server's raft certificate")
	fs.DurationVar(&c.DeadServerAfter, "dead-server-after", c.DeadServerAfter, "the leader removes a server it has not reached for this long (0: never)")
	fs.IntVar(&c.MinServers, "min-servers", c.MinServers, "fewest voters dead-server cleanup leaves")
	fs.DurationVar(&c.MaxStale, "max-stale", c.MaxStale, "DNS SERVFAIL and SDS 503 after this long without contact with a leader (0: no limit)")
	fs.StringVar(&c.Datacenter, "datacenter", c.Datacenter, "Consul datacenter the Consul-compatible API reports")
	fs.BoolVar(&c.ConsulGETWrites, "consul-get-writes", c.ConsulGETWrites, "accept GET for the Consul agent writes python-consul 0.7 sends with GET")
	fs.StringVar(&c.DNSAddr, "dns-addr", c.DNSAddr, `host:port of the DNS interface (UDP and TCP); "" or "off" disables it`)
	fs.StringVar(&c.DNSDomain, "dns-domain", c.DNSDomain, "domain the DNS interface answers for")
	fs.StringVar(&c.DNSAltDomain, "dns-alt-domain", c.DNSAltDomain, "second domain answered the same way (empty: none)")
	fs.DurationVar(&c.DNSTTL, "dns-ttl", c.DNSTTL, "TTL of DNS answers (0: every lookup reaches the agent)")
	fs.DurationVar(&c.DNSNegativeTTL, "dns-negative-ttl", c.DNSNegativeTTL, "how long resolvers may cache negative DNS answers (SOA minimum)")
	fs.BoolVar(&c.DNSOnlyPassing, "dns-only-passing", c.DNSOnlyPassing, "leave warning instances out of DNS answers")
	fs.IntVar(&c.DNSMaxAnswers, "dns-max-answers", c.DNSMaxAnswers, "most records in one DNS answer (0: as many as fit)")
	fs.StringVar(&c.DNSRecursors, "dns-recursors", c.DNSRecursors, "comma-separated host[:port] to forward other DNS names to (empty: REFUSED)")
	fs.StringVar(&c.DNSRecursorAllow, "dns-recursor-allow", c.DNSRecursorAllow, "comma-separated IPs/prefixes whose DNS questions may be forwarded to the recursors (others: REFUSED)")
	fs.Float64Var(&c.DNSRateLimit, "dns-rate-limit", c.DNSRateLimit, "DNS queries per second allowed per source address (0: no limit)")
	fs.StringVar(&c.XDSAddr, "xds-addr", c.XDSAddr, `host:port of the xDS control plane (gRPC); "" or "off" disables it`)
	fs.StringVar(&c.XDSWarning, "xds-warning", c.XDSWarning, "how xDS serves warning instances: healthy, degraded or omit")
	fs.StringVar(&c.ProxyAddr, "proxy-addr", c.ProxyAddr, `host:port of the built-in HTTP proxy; "" or "off" disables it`)
	fs.StringVar(&c.ProxyRoutes, "proxy-routes", c.ProxyRoutes, "JSON routes file of the built-in proxy (docs/proxy.md)")
	fs.DurationVar(&c.SDSHostTTL, "sds-host-ttl", c.SDSHostTTL, "SDS API: how long a host stays listed after its last check-in (1s-24h)")
	fs.StringVar(&c.SDSCacheType, "sds-cache-type", c.SDSCacheType, "SDS API: null (always fresh) or simple (service answers cached for -sds-cache-ttl)")
	fs.DurationVar(&c.SDSCacheTTL, "sds-cache-ttl", c.SDSCacheTTL, "SDS API: how long the simple cache serves an answer")
	fs.StringVar(&c.SDSEnv, "sds-env", c.SDSEnv, `SDS API: the "env" reported in answers`)
	fs.StringVar(&c.SDSAddr, "sds-addr", c.SDSAddr, "SDS API: extra host:port serving only the SDS API (empty: none)")
	fs.StringVar(&c.SDSTrustedProxies, "sds-trusted-proxies", c.SDSTrustedProxies, "SDS API: comma-separated IPs/prefixes whose X-Forwarded-For is believed for auto_ip")
	fs.StringVar(&c.SDSAutoIPNets, "sds-auto-ip-nets", c.SDSAutoIPNets, "SDS API: comma-separated prefixes an auto_ip address must be in")
	fs.BoolVar(&c.SDSCompat, "sds-compat", c.SDSCompat, "read the discovery service's environment (HOST_TTL, PORT, ...); flags still win")
	file := fs.String("config-file", "", "optional JSON config file; keys are flag names with '_' for '-'")
	return &c, file
}

// Load parses args and applies the config file and environment under the
// flags given explicitly.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (*Config, error) {
	c, file := Flags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if *file == "" {
		*file = getenv(EnvPrefix + "CONFIG_FILE")
	}
	if *file != "" {
		if err := applyFile(fs, *file, explicit); err != nil {
			return nil, err
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if explicit[f.Name] || f.Name == "config-file" {
			return
		}
		name := EnvPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, c.Validate()
}

func applyFile(fs *flag.FlagSet, path string, explicit map[string]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	var raw map[string]any
	dec := json.NewDecoder(io.LimitReader(f, 1<<20))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	for k, v := range raw {
		name := strings.ReplaceAll(k, "_", "-")
		if fs.Lookup(name) == nil || name == "config-file" {
			return fmt.Errorf("config file %s: unknown key %q", path, k)
		}
		if explicit[name] {
			continue
		}
		switch v.(type) {
		case string, bool, json.Number:
		default:
			return fmt.Errorf("config file %s: %s: want a string, number or boolean", path, k)
		}
		if err := fs.Set(name, fmt.Sprint(v)); err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, k, err)
		}
	}
	return nil
}

// Validate names the first bad setting.
func (c *Config) Validate() error {
	if !c.Dev && c.DataDir == "" {
		return errors.New("data-dir: required unless -dev")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("http-addr: %w", err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log-level: %q is not debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log-format: %q is not text or json", c.LogFormat)
	}
	if c.NodeName == "" {
		return errors.New("node-name: required")
	}
	if c.SnapshotInterval < time.Second {
		return errors.New("snapshot-interval: at least 1s")
	}
	if c.SnapshotThreshold < 1 {
		return errors.New("snapshot-threshold: at least 1")
	}
	if c.LeaseGuardFraction <= 0 {
		return errors.New("lease-guard-fraction: must be above 0 (1 disables the guard)")
	}
	if c.LeaseGuardMin < 1 {
		return errors.New("lease-guard-min: at least 1")
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("shutdown-timeout: must be positive")
	}
	if !validDatacenter(c.Datacenter) {
		return fmt.Errorf("datacenter: %q must be 1-64 letters, digits, '_' or '-'", c.Datacenter)
	}
	if _, err := ParseBytes(c.MemoryLimit); err != nil {
		return fmt.Errorf("memory-limit: %w", err)
	}
	if n, err := ParseBytes(c.SnapshotMaxBytes); err != nil || n == 0 {
		return fmt.Errorf("snapshot-max-bytes: %q is not a size such as 512MiB", c.SnapshotMaxBytes)
	}
	if err := c.validateSDS(); err != nil {
		return err
	}
	if err := c.validateDNS(); err != nil {
		return err
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	if err := c.validateXDS(); err != nil {
		return err
	}
	if c.ProxyEnabled() {
		if _, _, err := net.SplitHostPort(c.ProxyAddr); err != nil {
			return fmt.Errorf("proxy-addr: %w", err)
		}
	}
	return nil
}

// ProxyEnabled reports whether the built-in proxy runs in the agent.
func (c *Config) ProxyEnabled() bool { return c.ProxyAddr != "" && c.ProxyAddr != "off" }

// DefaultRaftAddr is the raft port of a clustered agent unless told
// otherwise.
const DefaultRaftAddr = "127.0.0.1:8300"

// Clustered reports whether this agent runs as a server of a cluster.
func (c *Config) Clustered() bool { return c.Server || c.Join != "" || c.BootstrapExpect > 0 }

// RaftBindAddr is the raft port's address when clustered.
func (c *Config) RaftBindAddr() string {
	if c.RaftAddr == "" {
		return DefaultRaftAddr
	}
	return c.RaftAddr
}

// JoinList splits Join.
func (c *Config) JoinList() []string {
	var out []string
	for _, a := range strings.Split(c.Join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func (c *Config) validateCluster() error {
	if c.BootstrapExpect < 0 {
		return errors.New("bootstrap-expect: must not be negative")
	}
	if c.DeadServerAfter < 0 {
		return errors.New("dead-server-after: must not be negative (0 turns the cleanup off)")
	}
	if c.MinServers < 1 {
		return errors.New("min-servers: at least 1")
	}
	if c.MaxStale < 0 {
		return errors.New("max-stale: must not be negative (0 is no limit)")
	}
	tls := c.RaftTLSCert != "" || c.RaftTLSKey != "" || c.RaftTLSCA != ""
	if !c.Clustered() {
		if c.RaftAddr != "" || c.RaftAdvertise != "" || tls {
			return errors.New("raft-addr, raft-advertise and raft-tls-*: only with -server (or -join, -bootstrap-expect)")
		}
		return nil
	}
	if tls && (c.RaftTLSCert == "" || c.RaftTLSKey == "" || c.RaftTLSCA == "") {
		return errors.New("raft-tls-cert, raft-tls-key, raft-tls-ca: give all three or none")
	}
	if _, _, err := net.SplitHostPort(c.RaftBindAddr()); err != nil {
		return fmt.Errorf("raft-addr: %w", err)
	}
	if c.RaftAdvertise != "" {
		if _, _, err := net.SplitHostPort(c.RaftAdvertise); err != nil {
			return fmt.Errorf("raft-advertise: %w", err)
		}
	}
	for _, a := range c.JoinList() {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("join: %q: %w", a, err)
		}
	}
	return nil
}

// DNSEnabled reports whether the DNS interface is on.
func (c *Config) DNSEnabled() bool { return c.DNSAddr != "" && c.DNSAddr != "off" }

// XDSEnabled reports whether the xDS control plane is on.
func (c *Config) XDSEnabled() bool { return c.XDSAddr != "" && c.XDSAddr != "off" }

func (c *Config) validateXDS() error {
	switch c.XDSWarning {
	case "healthy", "degraded", "omit":
	default:
		return fmt.Errorf("xds-warning: %q is not healthy, degraded or omit", c.XDSWarning)
	}
	if !c.XDSEnabled() {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.XDSAddr); err != nil {
		return fmt.Errorf("xds-addr: %w", err)
	}
	return nil
}

// DNSRecursorList splits DNSRecursors.
func (c *Config) DNSRecursorList() []string {
	var out []string
	for _, r := range strings.Split(c.DNSRecursors, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

func (c *Config) validateDNS() error {
	if !c.DNSEnabled() {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.DNSAddr); err != nil {
		return fmt.Errorf("dns-addr: %w", err)
	}
	if c.DNSDomain == "" {
		return errors.New("dns-domain: required while DNS is on")
	}
	if c.DNSTTL < 0 {
		return errors.New("dns-ttl: must not be negative")
	}
	if c.DNSNegativeTTL < 0 {
		return errors.New("dns-negative-ttl: must not be negative")
	}
	if c.DNSMaxAnswers < 0 {
		return errors.New("dns-max-answers: must not be negative")
	}
	if c.DNSRateLimit < 0 {
		return errors.New("dns-rate-limit: must not be negative")
	}
	allow, err := ParsePrefixes(c.DNSRecursorAllow)
	if err != nil {
		return fmt.Errorf("dns-recursor-allow: %w", err)
	}
	if len(allow) == 0 && len(c.DNSRecursorList()) > 0 {
		return errors.New("dns-recursor-allow: empty while dns-recursors is set (0.0.0.0/0,::/0 allows everyone)")
	}
	return nil
}

// ParseBytes reads a size such as "150MiB", "1GiB", "500MB" or "1048576".
// Empty is 0.
func ParseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 150MiB", s)
	}
	return n * mult, nil
}

func (c *Config) validateSDS() error {
	if c.SDSHostTTL < time.Second || c.SDSHostTTL > 24*time.Hour {
		return errors.New("sds-host-ttl: must be between 1s and 24h")
	}
	switch c.SDSCacheType {
	case "null", "simple":
	default:
		return fmt.Errorf("sds-cache-type: %q is not null or simple", c.SDSCacheType)
	}
	if c.SDSCacheType == "simple" && c.SDSCacheTTL <= 0 {
		return errors.New("sds-cache-ttl: must be positive with the simple cache")
	}
	if c.SDSAddr != "" {
		if _, _, err := net.SplitHostPort(c.SDSAddr); err != nil {
			return fmt.Errorf("sds-addr: %w", err)
		}
	}
	if _, err := ParsePrefixes(c.SDSTrustedProxies); err != nil {
		return fmt.Errorf("sds-trusted-proxies: %w", err)
	}
	if _, err := ParsePrefixes(c.SDSAutoIPNets); err != nil {
		return fmt.Errorf("sds-auto-ip-nets: %w", err)
	}
	return nil
}

// ParsePrefixes reads a comma-separated list of IP addresses and CIDR
// prefixes ("127.0.0.0/8, ::1"); an address is a prefix of its full
// length. Empty is an empty list.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP address or prefix", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or prefix", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// validDatacenter reports whether s is a Consul datacenter name.
func validDatacenter(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
