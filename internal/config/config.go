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
}

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
		LeaseGuardFraction: 0.5,
		LeaseGuardMin:      10,
		ShutdownTimeout:    10 * time.Second,
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
	fs.Float64Var(&c.LeaseGuardFraction, "lease-guard-fraction", c.LeaseGuardFraction, "share of leases lapsing within one TTL that stops expiry (1 disables)")
	fs.IntVar(&c.LeaseGuardMin, "lease-guard-min", c.LeaseGuardMin, "fewest leases for the self-preservation guard to apply")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long in-flight requests may finish at shutdown")
	fs.StringVar(&c.MemoryLimit, "memory-limit", c.MemoryLimit, "soft memory limit such as 150MiB; the GC trades CPU for staying under it")
	fs.BoolVar(&c.EnableDebug, "enable-debug", c.EnableDebug, "serve /debug/pprof/ on the HTTP API")
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
	if _, err := ParseBytes(c.MemoryLimit); err != nil {
		return fmt.Errorf("memory-limit: %w", err)
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
