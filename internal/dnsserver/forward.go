package dnsserver

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// forwarder sends questions for names outside the domains to recursors,
// in order, over the transport the question came on. It forwards only
// for allowed sources, only questions that ask for recursion, and at
// most cap(slots) at once.
type forwarder struct {
	addrs    []string
	udp, tcp *dns.Client
	allow    []netip.Prefix
	// slots holds one token per question being forwarded.
	slots chan struct{}
}

func newForwarder(cfg *Config) *forwarder {
	timeout := cfg.RecursorTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	n := cfg.MaxForwards
	if n <= 0 {
		n = DefaultMaxForwards
	}
	f := &forwarder{
		udp:   &dns.Client{Net: "udp", Timeout: timeout, UDPSize: dns.MaxMsgSize},
		tcp:   &dns.Client{Net: "tcp", Timeout: timeout},
		allow: cfg.RecursorAllow,
		slots: make(chan struct{}, n),
	}
	for _, r := range cfg.Recursors {
		a, _ := recursorAddr(r) // checked by Validate
		f.addrs = append(f.addrs, a)
	}
	return f
}

// allowed reports whether questions from remote may be forwarded.
func (f *forwarder) allowed(remote net.Addr) bool {
	var ip net.IP
	switch a := remote.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	default:
		return false
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	addr = addr.Unmap()
	for _, p := range f.allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Reasons a question for another name is not forwarded (the label of
// roster_dns_forward_denied_total).
const (
	deniedSource = "source" // REFUSED: the source is not in RecursorAllow
	deniedNoRD   = "no_rd"  // REFUSED: the question does not ask for recursion
	deniedBusy   = "busy"   // SERVFAIL: MaxForwards questions are being forwarded
)

// forward answers req, a question for a name outside the domains from
// remote: REFUSED unless remote is allowed and req has RD set; else the
// first recursor answer that is NOERROR or NXDOMAIN, cut to size over UDP
// (with TC set when records were left out); SERVFAIL when every
// recursor fails or too many questions are being forwarded already.
func (f *forwarder) forward(ctx context.Context, req, resp *dns.Msg, opt *dns.OPT, remote net.Addr, size int, m *metrics) *dns.Msg {
	switch {
	case !f.allowed(remote):
		m.forwardDenied[deniedSource].Inc()
		return reject(resp, dns.RcodeRefused, opt)
	case !req.RecursionDesired:
		m.forwardDenied[deniedNoRD].Inc()
		return reject(resp, dns.RcodeRefused, opt)
	}
	select {
	case f.slots <- struct{}{}:
	default:
		m.forwardDenied[deniedBusy].Inc()
		return reject(resp, dns.RcodeServerFailure, opt)
	}
	m.forwardInFlight.Inc()
	defer func() {
		m.forwardInFlight.Dec()
		<-f.slots
	}()
	tcp := isTCP(remote)
	c := f.udp
	if tcp {
		c = f.tcp
	}
	for _, addr := range f.addrs {
		r, _, err := c.ExchangeContext(ctx, req, addr)
		if err != nil || r == nil || (r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError) {
			m.forwarded.WithLabelValues("error").Inc()
			continue
		}
		m.forwarded.WithLabelValues("ok").Inc()
		r.Id = req.Id
		r.RecursionAvailable = true
		r.Compress = true
		if !tcp {
			r.Truncate(size)
			r.Compress = true
		}
		return r
	}
	return reject(resp, dns.RcodeServerFailure, opt)
}
