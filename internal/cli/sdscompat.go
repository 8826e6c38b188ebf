package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rosterhq/roster/internal/config"
)

// runSDS is `roster sds`: an agent in discovery-service compatibility
// mode, as `roster agent -sds-compat`.
func runSDS(ctx context.Context, e *env, args []string) error {
	return runAgent(ctx, e, append([]string{"-sds-compat"}, args...))
}

// sdsDefaultPort is where the original discovery service listened when
// PORT was not set.
const sdsDefaultPort = "8080"

// compatVar maps one of the original discovery service's environment
// variables onto roster's config.
type compatVar struct {
	env   string
	flag  string // the roster flag it sets; an explicit flag wins
	apply func(c *config.Config, v string) error
}

var sdsCompatVars = []compatVar{
	{"HOST_TTL", "sds-host-ttl", func(c *config.Config, v string) error {
		d, err := compatSeconds(v)
		c.SDSHostTTL = d
		return err
	}},
	{"CACHE_TTL", "sds-cache-ttl", func(c *config.Config, v string) error {
		d, err := compatSeconds(v)
		c.SDSCacheTTL = d
		return err
	}},
	{"CACHE_TYPE", "sds-cache-type", func(c *config.Config, v string) error {
		if v != "null" && v != "simple" {
			return fmt.Errorf("%q is not supported: use null (no cache) or simple (in-process cache)", v)
		}
		c.SDSCacheType = v
		return nil
	}},
	{"BACKEND_STORAGE", "dev", func(c *config.Config, v string) error {
		switch v {
		case "InMemory":
			c.Dev = true
		case "InFile":
			c.Dev = false
		case "DynamoDB":
			return errors.New("DynamoDB is not supported: roster keeps hosts in its own registry; " +
				"use InFile (durable, in -data-dir) or InMemory (lost at restart)")
		default:
			return fmt.Errorf("%q is not supported (nor are backend plugins): use InFile (durable, in -data-dir) or InMemory (lost at restart)", v)
		}
		return nil
	}},
	{"APPLICATION_ENV", "sds-env", func(c *config.Config, v string) error {
		c.SDSEnv = v
		return nil
	}},
	{"LOG_LEVEL", "log-level", func(c *config.Config, v string) error {
		switch strings.ToUpper(v) {
		case "DEBUG", "NOTSET":
			c.LogLevel = "debug"
		case "INFO":
			c.LogLevel = "info"
		case "WARNING", "WARN":
			c.LogLevel = "warn"
		case "ERROR", "CRITICAL", "FATAL":
			c.LogLevel = "error"
		default:
			return fmt.Errorf("%q is not DEBUG, INFO, WARNING, ERROR or CRITICAL", v)
		}
		return nil
	}},
	{"PORT", "sds-addr", func(c *config.Config, v string) error {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("%q is not a port number", v)
		}
		host := "" // all interfaces, as the original
		if c.SDSAddr != "" {
			host, _, _ = net.SplitHostPort(c.SDSAddr)
		}
		c.SDSAddr = net.JoinHostPort(host, strconv.Itoa(p))
		return nil
	}},
}

// compatSeconds reads a whole number of seconds, as the original's
// settings are written.
func compatSeconds(v string) (time.Duration, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a whole number of seconds", v)
	}
	return time.Duration(n) * time.Second, nil
}

// applySDSCompat reads the original discovery service's environment over
// c: HOST_TTL, CACHE_TTL, CACHE_TYPE, BACKEND_STORAGE, APPLICATION_ENV,
// LOG_LEVEL, DEBUG and PORT (8080 when unset: the SDS API gets its own
// listener on that port, on the host of -sds-addr when that is configured
// and on all interfaces otherwise, as the original). A setting given as a
// flag on the command line wins over its variable, but an invalid value
// is an error either way. DEBUG, when true (1, true, yes or
// on), turns debug logging on unless LOG_LEVEL or -log-level says
// otherwise; it does not serve profiling or tracebacks. It returns what
// it applied, for the log, and validates the result.
func applySDSCompat(c *config.Config, args []string, getenv func(string) string) ([]string, error) {
	explicit := commandLineFlags(args)
	var applied []string
	var errs []error
	for _, v := range sdsCompatVars {
		val := strings.TrimSpace(getenv(v.env))
		if v.env == "PORT" && val == "" {
			val = sdsDefaultPort
		}
		if val == "" {
			continue
		}
		target := c
		if explicit[v.flag] {
			// The flag wins, but a value the original would not take
			// (BACKEND_STORAGE=DynamoDB) is still an error.
			scratch := *c
			target = &scratch
		}
		if err := v.apply(target, val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.env, err))
			continue
		}
		if explicit[v.flag] {
			applied = append(applied, fmt.Sprintf("%s ignored: -%s given", v.env, v.flag))
			continue
		}
		applied = append(applied, v.env+"="+val)
	}
	if d := strings.ToLower(strings.TrimSpace(getenv("DEBUG"))); d == "1" || d == "true" || d == "yes" || d == "on" {
		if !explicit["log-level"] && getenv("LOG_LEVEL") == "" {
			c.LogLevel = "debug"
			applied = append(applied, "DEBUG="+d)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return applied, c.Validate()
}

// commandLineFlags names the agent flags args sets.
func commandLineFlags(args []string) map[string]bool {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config.Flags(fs)
	_ = fs.Parse(args) // Load already reported any error
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}
