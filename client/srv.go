package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SRVDialer dials hosts matching Hosts through plain DNS SRV records asked
// of the DNS server at Server, so it works with any DNS-SD server (roster's
// DNS interface, Consul's, CoreDNS...): the records are tried in RFC 2782
// order (lowest priority first, weighted random within a priority), each
// target resolved to its addresses through the same server, until a dial
// succeeds. Other hosts are dialled as usual. Answers are kept for
// CacheFor; when the server cannot be reached, the last answer is used.
type SRVDialer struct {
	// Hosts selects the host names resolved through SRV, such as
	// `\.service\.roster\.?$`. Required.
	Hosts *regexp.Regexp
	// Server is the DNS server's host:port. Required.
	Server string
	// Dialer dials (default: a net.Dialer with a 5s timeout).
	Dialer *net.Dialer
	// CacheFor keeps an answer this long (default 5s; negative: never
	// cached).
	CacheFor time.Duration
	// MaxAttempts bounds the addresses tried per dial (default 3).
	MaxAttempts int

	once  sync.Once
	res   *net.Resolver
	mu    sync.Mutex
	cache map[string]srvAnswer
}

type srvAnswer struct {
	records []srvRecord
	at      time.Time
}

// srvRecord is one SRV record with its target's addresses (host:port).
type srvRecord struct {
	priority, weight uint16
	addrs            []string
}

func (d *SRVDialer) init() {
	d.once.Do(func() {
		if d.Dialer == nil {
			d.Dialer = &net.Dialer{Timeout: 5 * time.Second}
		}
		if d.CacheFor == 0 {
			d.CacheFor = 5 * time.Second
		}
		dnsDialer := &net.Dialer{Timeout: 2 * time.Second}
		d.res = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dnsDialer.DialContext(ctx, network, d.Server)
		}}
		d.cache = map[string]srvAnswer{}
	})
}

// DialContext implements the signature of net.Dialer.DialContext.
func (d *SRVDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.init()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if !d.Hosts.MatchString(host) {
		return d.Dialer.DialContext(ctx, network, addr)
	}
	addrs, err := d.Lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	attempts := d.MaxAttempts
	if attempts <= 0 {
		attempts = 3
	}
	var errs []error
	for i, a := range addrs {
		if i >= attempts || ctx.Err() != nil {
			break
		}
		conn, err := d.Dialer.DialContext(ctx, network, a)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("dial %s via SRV: %w", host, errors.Join(errs...))
}

// Lookup returns host's addresses (host:port) in the order to try them:
// its SRV records in a fresh RFC 2782 order (by priority, weighted random
// within one), each target resolved to its addresses.
func (d *SRVDialer) Lookup(ctx context.Context, host string) ([]string, error) {
	d.init()
	d.mu.Lock()
	cached, ok := d.cache[host]
	d.mu.Unlock()
	if ok && d.CacheFor > 0 && time.Since(cached.at) < d.CacheFor {
		return order(cached.records), nil
	}
	records, err := d.lookup(ctx, host)
	if err != nil {
		if ok {
			return order(cached.records), nil // the server blinked: keep the last answer
		}
		return nil, err
	}
	if d.CacheFor > 0 {
		d.mu.Lock()
		d.cache[host] = srvAnswer{records: records, at: time.Now()}
		d.mu.Unlock()
	}
	return order(records), nil
}

func (d *SRVDialer) lookup(ctx context.Context, host string) ([]srvRecord, error) {
	_, srvs, err := d.res.LookupSRV(ctx, "", "", host)
	if err != nil {
		return nil, fmt.Errorf("SRV %s at %s: %w", host, d.Server, err)
	}
	var records []srvRecord
	for _, s := range srvs {
		port := strconv.Itoa(int(s.Port))
		rec := srvRecord{priority: s.Priority, weight: s.Weight}
		if ip := net.ParseIP(strings.TrimSuffix(s.Target, ".")); ip != nil {
			rec.addrs = []string{net.JoinHostPort(ip.String(), port)}
		} else {
			ips, err := d.res.LookupHost(ctx, s.Target)
			if err != nil {
				continue // an unresolvable target: use the others
			}
			for _, ip := range ips {
				rec.addrs = append(rec.addrs, net.JoinHostPort(ip, port))
			}
		}
		records = append(records, rec)
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("SRV %s at %s: no resolvable target", host, d.Server)
	}
	return records, nil
}

// order lists the records' addresses in RFC 2782 order: ascending
// priority; within a priority, repeatedly draw a record at random in
// proportion to its weight (weight 0 records get a small chance).
func order(records []srvRecord) []string {
	rs := slices.Clone(records)
	slices.SortStableFunc(rs, func(a, b srvRecord) int { return int(a.priority) - int(b.priority) })
	var out []string
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && rs[j].priority == rs[i].priority {
			j++
		}
		group := rs[i:j]
		// Zero weights first: they win only a draw of 0 (RFC 2782).
		slices.SortStableFunc(group, func(a, b srvRecord) int { return min(int(a.weight), 1) - min(int(b.weight), 1) })
		for len(group) > 0 {
			var total int
			for _, r := range group {
				total += int(r.weight)
			}
			n, run, k := rand.IntN(total+1), 0, 0
			for ; k < len(group)-1; k++ {
				run += int(group[k].weight)
				if run >= n {
					break
				}
			}
			out = append(out, group[k].addrs...)
			group = append(group[:k:k], group[k+1:]...)
		}
		i = j
	}
	return out
}
