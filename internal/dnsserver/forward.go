package dnsserver

import (
	"context"
	"time"

	"github.com/miekg/dns"
)

// forwarder sends questions for names outside the domains to recursors,
// in order, over the transport the question came on.
type forwarder struct {
	addrs    []string
	udp, tcp *dns.Client
}

func newForwarder(recursors []string, timeout time.Duration) *forwarder {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	f := &forwarder{
		udp: &dns.Client{Net: "udp", Timeout: timeout, UDPSize: dns.MaxMsgSize},
		tcp: &dns.Client{Net: "tcp", Timeout: timeout},
	}
	for _, r := range recursors {
		a, _ := recursorAddr(r) // checked by Validate
		f.addrs = append(f.addrs, a)
	}
	return f
}

// forward returns the first recursor answer that is NOERROR or NXDOMAIN,
// cut to size over UDP (with TC set when records were left out); SERVFAIL
// when every recursor fails.
func (f *forwarder) forward(ctx context.Context, req, resp *dns.Msg, opt *dns.OPT, tcp bool, size int, m *metrics) *dns.Msg {
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
