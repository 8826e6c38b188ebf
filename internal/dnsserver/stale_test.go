package dnsserver

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestMaxStale: with MaxStale, an agent that has not heard from a leader
// for longer answers registry questions SERVFAIL; the leader (0), a
// recent contact, no limit and a single agent (no LastContact) answer as
// always, and names outside the registry are unaffected.
func TestMaxStale(t *testing.T) {
	const maxStale = 5 * time.Second
	tests := []struct {
		name        string
		lastContact func() time.Duration // nil: a single agent
		maxStale    time.Duration
		stale       bool
	}{
		{"single agent", nil, maxStale, false},
		{"leader", func() time.Duration { return 0 }, maxStale, false},
		{"recent contact", func() time.Duration { return time.Second }, maxStale, false},
		{"at the limit", func() time.Duration { return maxStale }, maxStale, false},
		{"past the limit", func() time.Duration { return maxStale + time.Millisecond }, maxStale, true},
		{"never in contact", func() time.Duration { return -1 }, maxStale, true},
		{"no limit", func() time.Duration { return time.Hour }, 0, false},
		{"no limit, never in contact", func() time.Duration { return -1 }, 0, false},
	}
	questions := []struct {
		name  string
		qname string
		qtype uint16
		// fresh is the rcode when not stale; a stale agent answers
		// SERVFAIL if fromRegistry, else the same.
		fresh        int
		fromRegistry bool
	}{
		{"service", "web.service.roster.", dns.TypeA, dns.RcodeSuccess, true},
		{"unknown service", "nope.service.roster.", dns.TypeSRV, dns.RcodeNameError, true},
		{"dns-sd", "_services._dns-sd._udp.roster.", dns.TypePTR, dns.RcodeSuccess, true},
		{"apex", "roster.", dns.TypeSOA, dns.RcodeSuccess, true},
		{"reverse of a registered address", "1.0.0.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, true},
		{"reverse of another address", "9.9.9.10.in-addr.arpa.", dns.TypePTR, dns.RcodeRefused, false},
		{"outside the domains", "example.com.", dns.TypeA, dns.RcodeRefused, false},
	}
	reg := fixture(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandler(t, reg, func(c *Config) { c.LastContact, c.MaxStale = tc.lastContact, tc.maxStale })
			refused := 0
			for _, q := range questions {
				want := q.fresh
				if tc.stale && q.fromRegistry {
					want = dns.RcodeServerFailure
					refused++
				}
				r := h.answer(t.Context(), question(q.qname, q.qtype), udpClient)
				if r.Rcode != want {
					t.Errorf("%s %s: rcode %s, want %s", q.name, q.qname, dns.RcodeToString[r.Rcode], dns.RcodeToString[want])
				}
				if r.Rcode == dns.RcodeServerFailure && (len(r.Answer) > 0 || r.Authoritative) {
					t.Errorf("%s: SERVFAIL with answers or AA: %v", q.name, r)
				}
			}
			if n := counter(t, h.m.stale); n != float64(refused) {
				t.Errorf("stale_refused_total = %v, want %d", n, refused)
			}
		})
	}
}
