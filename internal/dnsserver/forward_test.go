package dnsserver

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// answering is a recursor that answers every A question with 192.0.2.7.
var answering = dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	rr, _ := dns.NewRR(req.Question[0].Name + " 60 IN A 192.0.2.7")
	m.Answer = []dns.RR{rr}
	_ = w.WriteMsg(m)
})

// TestForwardPolicy: other names are forwarded only for sources in
// RecursorAllow (loopback by default) and only with RD set; the rest are
// REFUSED, and RA is set only for sources that may recurse.
func TestForwardPolicy(t *testing.T) {
	up := serveFunc(t, answering)
	udp := func(ip string) net.Addr { return &net.UDPAddr{IP: net.ParseIP(ip), Port: 1000} }
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 1000} }
	lan := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	tests := []struct {
		name  string
		allow []netip.Prefix // nil: the default
		from  net.Addr
		noRD  bool
		rcode int
	}{
		{name: "loopback", from: udp("127.0.0.1"), rcode: dns.RcodeSuccess},
		{name: "loopback over TCP", from: tcp("127.0.0.2"), rcode: dns.RcodeSuccess},
		{name: "IPv6 loopback", from: udp("::1"), rcode: dns.RcodeSuccess},
		{name: "IPv4-mapped loopback", from: udp("::ffff:127.0.0.1"), rcode: dns.RcodeSuccess},
		{name: "loopback without RD", from: udp("127.0.0.1"), noRD: true, rcode: dns.RcodeRefused},
		{name: "another host", from: udp("192.0.2.1"), rcode: dns.RcodeRefused},
		{name: "another IPv6 host", from: tcp("2001:db8::1"), rcode: dns.RcodeRefused},
		{name: "allowed network", allow: lan, from: udp("192.0.2.1"), rcode: dns.RcodeSuccess},
		{name: "allowed network without RD", allow: lan, from: udp("192.0.2.1"), noRD: true, rcode: dns.RcodeRefused},
		{name: "outside the allowed network", allow: lan, from: udp("127.0.0.1"), rcode: dns.RcodeRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandler(t, fixture(t), func(c *Config) {
				c.Recursors = []string{up}
				if tc.allow != nil {
					c.RecursorAllow = tc.allow
				}
			})
			q := question("example.com.", dns.TypeA)
			q.RecursionDesired = !tc.noRD
			r := h.answer(t.Context(), q, tc.from)
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s\n%v", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode], r)
			}
			forwarded := tc.rcode == dns.RcodeSuccess
			if forwarded != (len(r.Answer) == 1) {
				t.Errorf("%d answers, forwarded %v", len(r.Answer), forwarded)
			}
			if r.RecursionAvailable != (forwarded || tc.noRD) {
				t.Errorf("RA %v for a source that may recurse: %v", r.RecursionAvailable, forwarded || tc.noRD)
			}
			// roster's own names are answered to everyone.
			own := h.answer(t.Context(), question("web.service.roster.", dns.TypeA), tc.from)
			if own.Rcode != dns.RcodeSuccess || len(own.Answer) != 3 || !own.Authoritative {
				t.Errorf("own name: %v", own)
			}
			denied := counter(t, h.m.forwardDenied[deniedSource]) + counter(t, h.m.forwardDenied[deniedNoRD])
			if want := map[bool]float64{true: 0, false: 1}[forwarded]; denied != want {
				t.Errorf("roster_dns_forward_denied_total = %v, want %v", denied, want)
			}
		})
	}
	if got := DefaultConfig().RecursorAllow; len(got) != 2 || got[0].String() != "127.0.0.0/8" || got[1].String() != "::1/128" {
		t.Errorf("default RecursorAllow %v, want loopback", got)
	}
}

// TestForwardBound: at most MaxForwards questions are forwarded at once;
// past that a question gets SERVFAIL at once instead of waiting on a
// recursor that does not answer.
func TestForwardBound(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	arrived := make(chan struct{}, 16)
	stuck := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		arrived <- struct{}{}
		<-release
		answering(w, req)
	})
	up := serveFunc(t, stuck)
	t.Cleanup(unblock) // before serveFunc's cleanup, which waits for handlers

	reg := prometheus.NewRegistry()
	h := newHandler(t, fixture(t), func(c *Config) {
		c.Recursors, c.MaxForwards, c.RecursorTimeout, c.Metrics = []string{up}, 2, 20*time.Second, reg
	})
	ask := func() <-chan *dns.Msg {
		c := make(chan *dns.Msg, 1)
		go func() { c <- h.answer(context.Background(), question("example.com.", dns.TypeA), udpClient) }()
		return c
	}
	first, second := ask(), ask()
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the recursor did not get two questions")
		}
	}
	if n := gauge(t, h.m.forwardInFlight); n != 2 {
		t.Errorf("roster_dns_forward_in_flight = %v, want 2", n)
	}
	select {
	case r := <-ask():
		if r.Rcode != dns.RcodeServerFailure {
			t.Errorf("third question: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
		}
	case <-time.After(3 * time.Second):
		unblock()
		t.Fatal("a third question waited with two forwards in flight")
	}
	if n := counter(t, h.m.forwardDenied[deniedBusy]); n != 1 {
		t.Errorf("roster_dns_forward_denied_total{reason=busy} = %v, want 1", n)
	}
	unblock()
	for _, c := range []<-chan *dns.Msg{first, second} {
		if r := <-c; r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Errorf("a forward in flight: %v", r)
		}
	}
	// The slots are free again.
	if r := <-ask(); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("after the forwards ended: %v", r)
	}
	if n := gauge(t, h.m.forwardInFlight); n != 0 {
		t.Errorf("roster_dns_forward_in_flight = %v, want 0", n)
	}
}

// gauge reads a gauge's value.
func gauge(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
