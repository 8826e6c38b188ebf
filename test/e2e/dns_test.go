package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rosterhq/roster/internal/testutil"
)

// dnsAsk sends one question to the agent's DNS interface over network.
func dnsAsk(t *testing.T, a *testutil.Agent, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	if a.DNSAddr == "" {
		t.Fatal("the agent logged no DNS address")
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, _, err := c.ExchangeContext(ctx, m, a.DNSAddr)
	if err != nil {
		t.Fatalf("dns %s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return r
}

// rdata lists the answer records' data (after the header), sorted.
func rdata(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	slices.Sort(out)
	return out
}

// TestDNSE2E registers over HTTP and reads the registry back over DNS,
// UDP and TCP, including that changes show in DNS answers at once.
func TestDNSE2E(t *testing.T) {
	bound(t)
	a := startAgent(t, testutil.AgentOptions{Dev: true})

	start := time.Now()
	register(t, a, "web", "web-1", map[string]any{"address": "10.0.0.1", "port": 8080, "tags": []string{"v2"}, "weight": 10})
	acked := time.Since(start)
	var answer []string
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		answer = rdata(dnsAsk(t, a, "udp", "web.service.roster.", dns.TypeA))
		return slices.Equal(answer, []string{"10.0.0.1"}), fmt.Sprintf("A answer %q", answer)
	})
	t.Logf("registration acknowledged after %v, visible in DNS after %v", acked, time.Since(start))

	register(t, a, "web", "web-2", map[string]any{"address": "10.0.0.2", "port": 8081})
	tests := []struct {
		network, name string
		qtype         uint16
		want          []string
	}{
		{"udp", "web.service.roster.", dns.TypeA, []string{"10.0.0.1", "10.0.0.2"}},
		{"tcp", "web.service.roster.", dns.TypeSRV, []string{"0 1 8081 0a000002.addr.roster.", "0 10 8080 0a000001.addr.roster."}},
		{"udp", "v2.web.service.roster.", dns.TypeA, []string{"10.0.0.1"}},
		{"tcp", "_web._v2.service.consul.", dns.TypeSRV, []string{"0 10 8080 0a000001.addr.consul."}},
		{"udp", "_web._tcp.roster.", dns.TypePTR, []string{"web-1._web._tcp.roster.", "web-2._web._tcp.roster."}},
		{"udp", "_services._dns-sd._udp.roster.", dns.TypePTR, []string{"_web._tcp.roster."}},
		{"udp", "0a000002.addr.roster.", dns.TypeA, []string{"10.0.0.2"}},
		{"udp", "_v2._sub._web._tcp.roster.", dns.TypePTR, []string{"web-1._web._tcp.roster."}},
	}
	for _, tc := range tests {
		if got := rdata(dnsAsk(t, a, tc.network, tc.name, tc.qtype)); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s %s = %q, want %q", tc.network, tc.name, dns.TypeToString[tc.qtype], got, tc.want)
		}
	}
	// Empty non-terminals: NODATA while names exist below them.
	for name, rcode := range map[string]int{"_v2.roster.": dns.RcodeSuccess, "_v9.roster.": dns.RcodeNameError} {
		if r := dnsAsk(t, a, "udp", name, dns.TypeSRV); r.Rcode != rcode || len(r.Answer) != 0 || len(r.Ns) != 1 {
			t.Errorf("%s: %s with %d answers and %d authority records, want %s, none and the SOA",
				name, dns.RcodeToString[r.Rcode], len(r.Answer), len(r.Ns), dns.RcodeToString[rcode])
		}
	}

	// A removal shows at once too; the last one makes the name vanish.
	deregister(t, a, "web", "web-1")
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		answer = rdata(dnsAsk(t, a, "tcp", "web.service.roster.", dns.TypeA))
		return slices.Equal(answer, []string{"10.0.0.2"}), fmt.Sprintf("A answer %q", answer)
	})
	deregister(t, a, "web", "web-2")
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		r := dnsAsk(t, a, "udp", "web.service.roster.", dns.TypeA)
		return r.Rcode == dns.RcodeNameError, fmt.Sprintf("rcode %s", dns.RcodeToString[r.Rcode])
	})
	if r := dnsAsk(t, a, "udp", "example.com.", dns.TypeA); r.Rcode != dns.RcodeRefused {
		t.Errorf("a name outside the domains: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}

	if n := testutil.Metric(t, a.URL, `roster_dns_queries_total{rcode="NOERROR",type="A"}`); n < 1 {
		t.Errorf("roster_dns_queries_total for A/NOERROR = %v, want at least 1", n)
	}
}

// TestDNSOff: -dns-addr off starts the agent without DNS.
func TestDNSOff(t *testing.T) {
	bound(t)
	a := startAgent(t, testutil.AgentOptions{Dev: true, Args: []string{"-dns-addr", "off"}})
	if a.DNSAddr != "" {
		t.Fatalf("DNS listening on %s with -dns-addr off", a.DNSAddr)
	}
	testutil.DoJSON(t, "GET", a.URL+"/readyz", nil, http.StatusOK, nil)
}

// TestDNSDig asks the agent with the dig command for the main name forms.
func TestDNSDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig is not on PATH (Debian package dnsutils)")
	}
	ctx := bound(t)
	a := startAgent(t, testutil.AgentOptions{Dev: true})
	register(t, a, "web", "web-1", map[string]any{"address": "10.0.0.1", "port": 8080, "tags": []string{"v2"}, "meta": map[string]string{"version": "2"}})
	register(t, a, "web", "web-2", map[string]any{"address": "10.0.0.2", "port": 8081})
	host, port, _ := strings.Cut(a.DNSAddr, ":")

	tests := []struct {
		args []string
		want []string // dig +short lines, sorted
	}{
		{[]string{"web.service.roster", "A"}, []string{"10.0.0.1", "10.0.0.2"}},
		{[]string{"+tcp", "web.service.roster", "A"}, []string{"10.0.0.1", "10.0.0.2"}},
		{[]string{"web.service.roster", "SRV"}, []string{"0 1 8080 0a000001.addr.roster.", "0 1 8081 0a000002.addr.roster."}},
		{[]string{"v2.web.service.roster", "A"}, []string{"10.0.0.1"}},
		{[]string{"_web._tcp.service.consul", "SRV"}, []string{"0 1 8080 0a000001.addr.consul.", "0 1 8081 0a000002.addr.consul."}},
		{[]string{"_web._tcp.roster", "PTR"}, []string{"web-1._web._tcp.roster.", "web-2._web._tcp.roster."}},
		{[]string{"web-1._web._tcp.roster", "TXT"}, []string{`"version=2" "v2"`}},
		{[]string{"_services._dns-sd._udp.roster", "PTR"}, []string{"_web._tcp.roster."}},
		{[]string{"-x", "10.0.0.1"}, []string{"web.service.roster."}},
	}
	for _, tc := range tests {
		args := append([]string{"@" + host, "-p", port, "+short", "+time=5", "+tries=1"}, tc.args...)
		out, err := exec.CommandContext(ctx, dig, args...).CombinedOutput()
		if err != nil {
			t.Errorf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		got := strings.Split(strings.TrimSpace(string(out)), "\n")
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("dig %s:\n%s\nwant %q", strings.Join(args, " "), out, tc.want)
		}
	}

	// The full answer: NXDOMAIN with the SOA for an unknown service, and
	// the status line dig prints.
	out, err := exec.CommandContext(ctx, dig, "@"+host, "-p", port, "+time=5", "+tries=1", "api.service.roster", "A").CombinedOutput()
	if err != nil {
		t.Fatalf("dig: %v\n%s", err, out)
	}
	if s := string(out); !strings.Contains(s, "status: NXDOMAIN") || !strings.Contains(s, "IN\tSOA\tns.roster. hostmaster.roster.") {
		t.Errorf("dig api.service.roster:\n%s\nwant NXDOMAIN with the SOA", s)
	}
}

// TestDNSForwardPolicy: with -dns-recursors, other names are forwarded
// for loopback clients that ask for recursion, and REFUSED to sources
// outside -dns-recursor-allow.
func TestDNSForwardPolicy(t *testing.T) {
	bound(t)
	up := fakeRecursor(t)
	a := startAgent(t, testutil.AgentOptions{Dev: true, Args: []string{"-dns-recursors", up}})
	if r := dnsAsk(t, a, "udp", "example.com.", dns.TypeA); r.Rcode != dns.RcodeSuccess || !slices.Equal(rdata(r), []string{"192.0.2.7"}) {
		t.Errorf("forwarded from loopback: %v", r)
	}
	m := new(dns.Msg)
	m.SetQuestion("example.com.", dns.TypeA)
	m.RecursionDesired = false
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	if r, _, err := c.ExchangeContext(t.Context(), m, a.DNSAddr); err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("without RD: %v %v, want REFUSED", r, err)
	}

	b := startAgent(t, testutil.AgentOptions{Dev: true, Args: []string{"-dns-recursors", up, "-dns-recursor-allow", "192.0.2.0/24"}})
	if r := dnsAsk(t, b, "udp", "example.com.", dns.TypeA); r.Rcode != dns.RcodeRefused || r.RecursionAvailable {
		t.Errorf("from a source outside -dns-recursor-allow: %v, want REFUSED without RA", r)
	}
}

// fakeRecursor serves, on loopback UDP, 192.0.2.7 for every A question.
func fakeRecursor(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	s := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(req)
			rr, _ := dns.NewRR(req.Question[0].Name + " 60 IN A 192.0.2.7")
			m.Answer = []dns.RR{rr}
			_ = w.WriteMsg(m)
		})}
	go func() { _ = s.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = s.Shutdown() })
	return pc.LocalAddr().String()
}
