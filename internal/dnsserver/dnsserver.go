// Package dnsserver is roster's DNS interface: a miekg/dns handler that
// answers A, AAAA, SRV, TXT and PTR questions straight from the local
// registry state (registry.Service reads; never the log), and the UDP and
// TCP listeners that serve it.
//
// Names, under every configured domain (default roster. and consul.):
//
//	NAME.service.DOMAIN            A/AAAA/SRV/TXT of healthy instances
//	TAG.NAME.service.DOMAIN        the same, filtered by tag
//	_NAME._TAG.service.DOMAIN      RFC 2782 form; _tcp means any tag
//	NAME.service.ZONE.DOMAIN       instances in that zone (any form above)
//	_NAME._TAG.DOMAIN              SRV (RFC 2782 owner name); PTR for _tcp
//	_services._dns-sd._udp.DOMAIN  PTR: service types (RFC 6763 §9)
//	_NAME._tcp.DOMAIN              PTR: instance names (RFC 6763 §4)
//	SUB._sub._NAME._tcp.DOMAIN     PTR: instances with tag SUB (§7.1;
//	                               _SUB works as well)
//	INSTANCE._NAME._tcp.DOMAIN     SRV and TXT of one instance (§5, §6)
//	HEX.addr.DOMAIN                A/AAAA decoded from the name: SRV targets
//
// Names above these exist while names below them do (RFC 8020): NODATA,
// not NXDOMAIN. Names outside the domains are forwarded to recursors, if
// any, for allowed sources only.
//
// It owns no registry state: the only state it keeps is indexes rebuilt
// from the registry (reverse lookups; zones and tags for the names above),
// and per-source rate limiters and TCP connection counts. It does not
// cache answers, so a registry change shows in the next answer.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/registry"
)

// Registry is what the handler reads: registry.Service satisfies it. Every
// method is called from request goroutines, concurrently, without
// blocking (minIndex 0).
type Registry interface {
	Instances(ctx context.Context, q registry.Query, minIndex uint64, wait time.Duration) (registry.Result, error)
	Services(ctx context.Context, minIndex uint64, wait time.Duration) (uint64, []registry.ServiceSummary, error)
	LastIndex() uint64
}

var _ Registry = (*registry.Service)(nil)

// Size limits.
const (
	// DefaultMaxUDPSize is the largest UDP answer sent, whatever EDNS0
	// buffer size a client advertises: a bound on amplification.
	DefaultMaxUDPSize = 4096
	// maxTCPSize is the DNS message limit over TCP.
	maxTCPSize = dns.MaxMsgSize
	// DefaultMaxForwards is the default bound on questions being
	// forwarded to recursors at once.
	DefaultMaxForwards = 256
)

// DefaultRecursorAllow are the sources whose questions are forwarded
// unless told otherwise: loopback only, so an agent is never an open
// resolver by default.
func DefaultRecursorAllow() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// Config configures the handler.
type Config struct {
	// Registry is read for every answer. Required.
	Registry Registry
	// Domains answered, each a domain name such as "roster." (a trailing
	// dot is added). The first is the primary: reverse (PTR) answers name
	// services under it. At least one.
	Domains []string
	// TTL of positive answers. Zero (the default) makes every lookup
	// reach the agent, so registry changes show at once.
	TTL time.Duration
	// NegativeTTL is the SOA minimum and the SOA record's TTL in negative
	// answers (RFC 2308): how long resolvers may cache "no such name".
	NegativeTTL time.Duration
	// OnlyPassing answers with passing instances only; by default warning
	// instances are served too.
	OnlyPassing bool
	// MaxAnswers caps the answer records of one response (after the
	// shuffle). Zero means as many as fit in the message.
	MaxAnswers int
	// MaxUDPSize caps UDP answers whatever the client's EDNS0 buffer size
	// (default DefaultMaxUDPSize; at least 512).
	MaxUDPSize int
	// Recursors ("host:port"; port 53 when absent) receive questions for
	// names outside Domains, tried in order. Empty: such questions are
	// REFUSED.
	Recursors []string
	// RecursorTimeout bounds each try of a recursor (default 2s).
	RecursorTimeout time.Duration
	// RecursorAllow are the source networks whose questions are
	// forwarded (default DefaultRecursorAllow: loopback). Questions for
	// other names from elsewhere, and questions without RD (recursion
	// desired), are REFUSED. Required when Recursors is set.
	RecursorAllow []netip.Prefix
	// MaxForwards bounds the questions being forwarded at once (default
	// DefaultMaxForwards); over it a question gets SERVFAIL at once, so a
	// dead recursor cannot pile up waiting requests.
	MaxForwards int
	// RateLimit is the queries per second allowed from one source address
	// (IPv6 sources grouped by /64), with bursts of the same size. Zero
	// disables it. Over the limit UDP queries are dropped and TCP queries
	// REFUSED.
	RateLimit float64
	// NSAddrs are the addresses of ns.DOMAIN, the name server named in
	// SOA and NS answers; empty leaves that name without addresses.
	NSAddrs []net.IP
	// LastContact reports how long ago this agent last heard from its
	// cluster's leader: 0 on the leader, negative when it never has. nil
	// (a single agent) is never stale. It is called for every question
	// about the registry, from request goroutines, concurrently, and must
	// not block.
	LastContact func() time.Duration
	// MaxStale: while LastContact is longer than this, or negative,
	// questions answered from the registry get SERVFAIL instead of a
	// possibly stale answer. Zero (the default, as Consul's max_stale) is
	// no limit.
	MaxStale time.Duration
	// Logger; nil discards. Metrics registers the DNS metrics; nil skips.
	Logger  *slog.Logger
	Metrics prometheus.Registerer
}

// DefaultConfig returns the defaults, without a Registry.
func DefaultConfig() Config {
	return Config{
		Domains:         []string{"roster.", "consul."},
		MaxUDPSize:      DefaultMaxUDPSize,
		RecursorTimeout: 2 * time.Second,
		RecursorAllow:   DefaultRecursorAllow(),
		MaxForwards:     DefaultMaxForwards,
	}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if c.Registry == nil {
		return errors.New("dnsserver: Registry is required")
	}
	if len(c.Domains) == 0 {
		return errors.New("dns domain: at least one is required")
	}
	for _, d := range c.Domains {
		if err := ValidateDomain(d); err != nil {
			return fmt.Errorf("dns domain: %w", err)
		}
	}
	if c.TTL < 0 || c.TTL > 24*time.Hour*365 {
		return errors.New("dns ttl: must be between 0 and one year")
	}
	if c.NegativeTTL < 0 || c.NegativeTTL > 24*time.Hour*365 {
		return errors.New("dns negative ttl: must be between 0 and one year")
	}
	if c.MaxAnswers < 0 {
		return errors.New("dns max answers: must not be negative")
	}
	if c.MaxUDPSize != 0 && (c.MaxUDPSize < dns.MinMsgSize || c.MaxUDPSize > dns.MaxMsgSize) {
		return fmt.Errorf("dns max udp size: must be between %d and %d", dns.MinMsgSize, dns.MaxMsgSize)
	}
	if c.RateLimit < 0 {
		return errors.New("dns rate limit: must not be negative")
	}
	for _, r := range c.Recursors {
		if _, err := recursorAddr(r); err != nil {
			return fmt.Errorf("dns recursors: %w", err)
		}
	}
	if len(c.Recursors) > 0 && len(c.RecursorAllow) == 0 {
		return errors.New("dns recursor allow: empty while recursors are set (nothing would be forwarded; 0.0.0.0/0 and ::/0 allow everyone)")
	}
	for _, p := range c.RecursorAllow {
		if !p.IsValid() {
			return fmt.Errorf("dns recursor allow: %v is not a prefix", p)
		}
	}
	if c.MaxForwards < 0 {
		return errors.New("dns max forwards: must not be negative")
	}
	if c.MaxStale < 0 {
		return errors.New("dns max stale: must not be negative")
	}
	return nil
}

// ValidateDomain checks that d is a domain name roster can answer for.
func ValidateDomain(d string) error {
	if d == "" || d == "." {
		return errors.New("empty domain")
	}
	if _, ok := dns.IsDomainName(d); !ok || strings.ContainsAny(d, `\ `) {
		return fmt.Errorf("%q is not a domain name", d)
	}
	return nil
}

// recursorAddr returns r as host:port, adding port 53 when absent.
func recursorAddr(r string) (string, error) {
	if host, port, err := net.SplitHostPort(r); err == nil {
		if p, err := strconv.Atoi(port); host == "" || err != nil || p < 1 || p > 65535 {
			return "", fmt.Errorf("%q: want host:port", r)
		}
		return r, nil
	}
	h := strings.Trim(r, "[]")
	if net.ParseIP(h) != nil {
		return net.JoinHostPort(h, "53"), nil
	}
	if _, ok := dns.IsDomainName(r); ok && r != "" && !strings.ContainsAny(r, ":[] \\") {
		return net.JoinHostPort(r, "53"), nil
	}
	return "", fmt.Errorf("%q: want host or host:port", r)
}
