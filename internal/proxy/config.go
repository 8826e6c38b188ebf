package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/client"
)

// Config configures a Proxy. Start from DefaultConfig.
type Config struct {
	// Resolver finds the healthy instances of every service (required).
	// The proxy follows registry changes through it; closing it is the
	// caller's business, after the proxy's.
	Resolver *client.Resolver
	// Routes map hosts and path prefixes to services; see Route.
	Routes []Route
	// DefaultHosts routes a request no route matches by its host: "NAME"
	// and "NAME.DOMAIN" (for each of Domains) go to service NAME.
	DefaultHosts bool
	Domains      []string
	// Balancer and HashHeader are the policy and key header of requests
	// routed by DefaultHosts (see Route).
	Balancer   string
	HashHeader string
	// Zone is the preferred zone of every route that names none (empty:
	// the resolver's).
	Zone string

	// MaxAttempts bounds the tries of one idempotent request (GET, HEAD,
	// OPTIONS, TRACE, PUT, DELETE, with no body or a body of at most
	// MaxRetryBody bytes and a known length), each on another instance,
	// after a connection error or a 502, 503 or 504. Other requests (POST
	// and PATCH always) are tried once.
	MaxAttempts  int
	MaxRetryBody int64
	// MaxPending bounds the requests of one route (or one default-host
	// service) that wait for an instance's response headers; past it the
	// proxy answers 503 at once. 0 means no limit.
	MaxPending int
	// MaxConnsPerUpstream bounds the connections to one instance (dialing,
	// active and idle); requests past it wait for one (and count as
	// pending). 0 means no limit. MaxIdleConnsPerUpstream is the pool of
	// kept-alive connections per instance.
	MaxConnsPerUpstream     int
	MaxIdleConnsPerUpstream int
	// DialTimeout bounds connecting to an instance; ResponseHeaderTimeout
	// waiting for its response headers once the request is written (0:
	// no limit); IdleConnTimeout closes pooled connections unused that
	// long.
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	IdleConnTimeout       time.Duration
	// IdleServiceTimeout closes the target of a default-host service no
	// request used for that long; MaxDefaultServices bounds how many are
	// followed at once (requests for more answer 503).
	IdleServiceTimeout time.Duration
	MaxDefaultServices int
	// SweepInterval is how often idle services and the metrics of
	// instances gone from the registry are swept.
	SweepInterval time.Duration

	// FlushInterval is the longest an answer of known length waits in the
	// proxy's buffer before it is flushed to the client; -1 flushes every
	// write. Answers of unknown length and server-sent events are flushed
	// on every write whatever it says.
	FlushInterval time.Duration

	// AccessLog logs every request at info level on Logger.
	AccessLog bool
	// Logger receives the proxy's log lines; nil discards them.
	Logger *slog.Logger
	// Metrics registers the proxy's metrics; nil: none.
	Metrics prometheus.Registerer
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		DefaultHosts:            true,
		Domains:                 []string{"service.roster"},
		MaxAttempts:             3,
		MaxRetryBody:            64 << 10,
		MaxPending:              1024,
		MaxIdleConnsPerUpstream: 256,
		DialTimeout:             5 * time.Second,
		IdleConnTimeout:         90 * time.Second,
		IdleServiceTimeout:      10 * time.Minute,
		MaxDefaultServices:      1024,
		SweepInterval:           30 * time.Second,
		FlushInterval:           50 * time.Millisecond,
	}
}

// Validate names the first bad setting.
func (c *Config) Validate() error {
	if c.Resolver == nil {
		return errors.New("proxy: Resolver is required")
	}
	var errs []error
	for i := range c.Routes {
		if err := c.Routes[i].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("routes[%d]: %w", i, err))
		}
	}
	if _, err := balancer(c.Balancer); err != nil {
		errs = append(errs, err)
	}
	for _, d := range c.Domains {
		if d = strings.Trim(d, "."); d == "" || strings.ContainsAny(d, "*/: ") {
			errs = append(errs, fmt.Errorf("domain %q is not a domain name", d))
		}
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, errors.New("max attempts: at least 1"))
	}
	if c.MaxRetryBody < 0 || c.MaxPending < 0 || c.MaxConnsPerUpstream < 0 || c.MaxIdleConnsPerUpstream < 0 ||
		c.MaxDefaultServices < 0 {
		errs = append(errs, errors.New("limits: must not be negative"))
	}
	if c.DialTimeout <= 0 || c.IdleConnTimeout <= 0 || c.IdleServiceTimeout <= 0 || c.SweepInterval <= 0 {
		errs = append(errs, errors.New("dial, idle and sweep timeouts: must be positive"))
	}
	if c.FlushInterval == 0 || c.FlushInterval < -1 {
		errs = append(errs, errors.New("flush interval: positive, or -1 to flush every write"))
	}
	if c.ResponseHeaderTimeout < 0 {
		errs = append(errs, errors.New("response header timeout: must not be negative"))
	}
	return errors.Join(errs...)
}
