package dnsserver

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
	"github.com/rosterhq/roster/internal/testutil"
)

// rawUDP sends b to addr and returns the reply, or nil when none came
// within wait.
func rawUDP(t *testing.T, addr string, b []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func pack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadQueries: hostile and odd packets get FORMERR, NOTIMP, REFUSED,
// BADVERS or nothing, and the server keeps answering.
func TestBadQueries(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHandler(t, fixture(t), func(c *Config) { c.Metrics = reg })
	addr := serve(t, h)

	good := question("web.service.roster.", dns.TypeA)
	twoQuestions := question("web.service.roster.", dns.TypeA)
	twoQuestions.Question = append(twoQuestions.Question, dns.Question{Name: "web.service.roster.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	update := question("web.service.roster.", dns.TypeA)
	update.Opcode = dns.OpcodeUpdate
	notify := question("roster.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	response := question("web.service.roster.", dns.TypeA)
	response.Response = true
	chaos := question("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	badVers := withEDNS(question("web.service.roster.", dns.TypeA), 1232)
	badVers.IsEdns0().SetVersion(1)
	header := pack(t, good)[:12]
	twoOPT := withEDNS(question("web.service.roster.", dns.TypeA), 1232)
	twoOPT.Extra = append(twoOPT.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 512}})

	tests := []struct {
		name   string
		packet []byte
		rcode  int // -1: no answer expected
	}{
		// A header that parses is answered: its bits say opcode 13.
		{"garbage", []byte("this is not a DNS message at all"), dns.RcodeNotImplemented},
		{"garbage with the response bit", append([]byte{0, 1, 0x80, 0}, []byte("more bytes that mean nothing")...), -1},
		{"short", []byte{1, 2, 3}, -1},
		{"header only, one question promised", header, dns.RcodeFormatError},
		{"two questions", pack(t, twoQuestions), dns.RcodeFormatError},
		{"update", pack(t, update), dns.RcodeNotImplemented},
		{"notify", pack(t, notify), dns.RcodeNotImplemented},
		{"a response", pack(t, response), -1},
		{"chaos class", pack(t, chaos), dns.RcodeRefused},
		{"axfr", pack(t, question("roster.", dns.TypeAXFR)), dns.RcodeNotImplemented},
		{"EDNS version 1", pack(t, badVers), dns.RcodeBadVers},
		{"two OPT records", pack(t, twoOPT), dns.RcodeFormatError}, // RFC 6891 §6.1.1
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wait := 2 * time.Second
			if tc.rcode < 0 {
				wait = 200 * time.Millisecond // proving a silence: short
			}
			b := rawUDP(t, addr, tc.packet, wait)
			if tc.rcode < 0 {
				if b != nil {
					t.Fatalf("got an answer of %d bytes, want none", len(b))
				}
				return
			}
			if b == nil {
				t.Fatal("no answer")
			}
			r := new(dns.Msg)
			if err := r.Unpack(b); err != nil {
				t.Fatalf("unpack answer: %v", err)
			}
			if r.Rcode != tc.rcode || len(r.Answer) != 0 {
				t.Errorf("rcode %s with %d answers, want %s and none", dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tc.rcode])
			}
		})
	}
	if r := exchange(t, "udp", addr, good); r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		t.Fatalf("after the bad packets: %v", r)
	}
	if n := counter(t, h.m.malformed); n < 3 {
		t.Errorf("roster_dns_malformed_total = %v, want at least 3", n)
	}
}

// counter reads a counter's value.
func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// counterReaches polls c until it reaches want or 5 s pass, and returns
// its last value.
func counterReaches(t *testing.T, c prometheus.Counter, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := counter(t, c)
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// TestChangesShowAtOnce: no caching between the registry and answers.
func TestChangesShowAtOnce(t *testing.T) {
	reg := newRegistry()
	h := newHandler(t, reg)
	ask := func() *dns.Msg { return h.answer(t.Context(), question("new.service.roster.", dns.TypeA), udpClient) }
	if r := ask(); r.Rcode != dns.RcodeNameError {
		t.Fatalf("before registering: %s", dns.RcodeToString[r.Rcode])
	}
	register(t, reg, inst{Instance: registry.Instance{Service: "new", ID: "n-1", Address: "10.9.9.9", Port: 1}})
	if r := ask(); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.9.9.9" {
		t.Fatalf("after registering: %v", r)
	}
	if _, err := reg.SetCheckStatus(t.Context(), registry.Key{Service: "new", ID: "n-1"}, registry.TTLCheckID, registry.Critical, ""); err == nil {
		t.Fatal("set the status of a check the instance does not have")
	}
	if _, err := reg.Deregister(t.Context(), registry.Key{Service: "new", ID: "n-1"}); err != nil {
		t.Fatal(err)
	}
	if r := ask(); r.Rcode != dns.RcodeNameError {
		t.Fatalf("after deregistering: %s", dns.RcodeToString[r.Rcode])
	}

	// Empty non-terminals that depend on the registry follow it too.
	rcode := func(name string) string {
		return dns.RcodeToString[h.answer(t.Context(), question(name, dns.TypeA), udpClient).Rcode]
	}
	ents := []string{"z9.roster.", "service.z9.roster.", "_t9.roster.", "_t9.service.z9.roster."}
	for _, name := range ents {
		if rc := rcode(name); rc != "NXDOMAIN" {
			t.Fatalf("%s before registering: %s", name, rc)
		}
	}
	register(t, reg, inst{Instance: registry.Instance{Service: "new", ID: "n-2", Address: "10.9.9.9", Port: 1, Zone: "z9", Tags: []string{"t9"}}})
	for _, name := range ents {
		if rc := rcode(name); rc != "NOERROR" {
			t.Errorf("%s after registering: %s", name, rc)
		}
	}
	if _, err := reg.Deregister(t.Context(), registry.Key{Service: "new", ID: "n-2"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range ents {
		if rc := rcode(name); rc != "NXDOMAIN" {
			t.Errorf("%s after deregistering: %s", name, rc)
		}
	}
}

func TestOnlyPassingAndTTLs(t *testing.T) {
	h := newHandler(t, fixture(t), func(c *Config) {
		c.OnlyPassing, c.TTL, c.NegativeTTL = true, 30*time.Second, 5*time.Second
	})
	r := h.answer(t.Context(), question("web.service.roster.", dns.TypeA), udpClient)
	got := lines(r.Answer)
	want := zone(t, "web.service.roster. 30 IN A 10.0.0.1", "web.service.roster. 30 IN A 10.0.0.2")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("only passing:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r = h.answer(t.Context(), question("api.service.roster.", dns.TypeA), udpClient)
	soa, ok := r.Ns[0].(*dns.SOA)
	if !ok || soa.Minttl != 5 || soa.Hdr.Ttl != 5 {
		t.Errorf("negative answer authority %v, want an SOA with TTL and minimum 5", r.Ns)
	}
}

// TestNotReady: while the registry restores, answers are SERVFAIL, never
// an empty NXDOMAIN.
func TestNotReady(t *testing.T) {
	st := store.New()
	reg := registry.New(registry.Config{State: st, Log: testutil.NewMemLog(st), Ready: func() bool { return false }})
	h := newHandler(t, reg)
	for _, name := range []string{"web.service.roster.", "_services._dns-sd._udp.roster."} {
		r := h.answer(t.Context(), question(name, dns.TypePTR), udpClient)
		if name == "web.service.roster." {
			r = h.answer(t.Context(), question(name, dns.TypeA), udpClient)
		}
		if r.Rcode != dns.RcodeServerFailure {
			t.Errorf("%s: %s, want SERVFAIL", name, dns.RcodeToString[r.Rcode])
		}
	}
}

// TestRateLimit: over the limit, TCP queries are REFUSED and UDP ones
// dropped. The limit (a burst of one, refilled after 100 s) does not
// depend on how fast the test runs.
func TestRateLimit(t *testing.T) {
	h := newHandler(t, fixture(t), func(c *Config) { c.RateLimit = 0.01 })
	addr := serve(t, h)
	refused := 0
	for range 10 {
		r := exchange(t, "tcp", addr, withEDNS(question("web.service.roster.", dns.TypeA), 1232))
		if r.Rcode == dns.RcodeRefused {
			refused++
			if r.IsEdns0() == nil {
				t.Error("REFUSED answer to an EDNS query without OPT")
			}
		}
	}
	if refused != 9 {
		t.Errorf("%d of 10 TCP queries refused with a burst of one, want 9", refused)
	}
	c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
	if _, _, err := c.Exchange(question("web.service.roster.", dns.TypeA), addr); err == nil {
		t.Error("a UDP query over the limit was answered")
	}
	if n := counter(t, h.m.rateLimited); n != 10 {
		t.Errorf("roster_dns_rate_limited_total = %v, want 10", n)
	}
}

// TestForward: names outside the domains go to the recursors; the first
// failing one is skipped.
func TestForward(t *testing.T) {
	upstream := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		rr, _ := dns.NewRR(req.Question[0].Name + " 60 IN A 192.0.2.7")
		m.Answer = []dns.RR{rr}
		_ = w.WriteMsg(m)
	})
	failing := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		_ = w.WriteMsg(m)
	})
	up := serveFunc(t, upstream)
	bad := serveFunc(t, failing)
	addr := serve(t, newHandler(t, fixture(t), func(c *Config) { c.Recursors = []string{bad, up} }))
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, network, addr, question("example.com.", dns.TypeA))
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !r.RecursionAvailable || r.Authoritative {
			t.Errorf("%s forwarded: %v", network, r)
		}
		// Roster's own names are still answered by roster.
		if r := exchange(t, network, addr, question("web.service.roster.", dns.TypeA)); len(r.Answer) != 3 || !r.Authoritative {
			t.Errorf("%s own name: %v", network, r)
		}
	}
}

// serveFunc runs a plain miekg/dns server (UDP and TCP) for h.
func serveFunc(t *testing.T, h dns.Handler) string {
	t.Helper()
	pcs, ln, err := bind("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	pc := pcs[0]
	u := &dns.Server{PacketConn: pc, Handler: h}
	c := &dns.Server{Listener: ln, Handler: h}
	started := make(chan struct{}, 2)
	u.NotifyStartedFunc = func() { started <- struct{}{} }
	c.NotifyStartedFunc = func() { started <- struct{}{} }
	go func() { _ = u.ActivateAndServe() }()
	go func() { _ = c.ActivateAndServe() }()
	<-started
	<-started
	t.Cleanup(func() { _ = u.Shutdown(); _ = c.Shutdown() })
	return pc.LocalAddr().String()
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHandler(t, fixture(t), func(c *Config) { c.Metrics = reg })
	addr := serve(t, h)
	exchange(t, "udp", addr, question("web.service.roster.", dns.TypeSRV))
	exchange(t, "tcp", addr, question("api.service.roster.", dns.TypeA))
	// The handler counts a query after writing its answer (the latency
	// includes the write), so the client may read the answer first.
	if n := counterReaches(t, h.m.queries.WithLabelValues("SRV", "NOERROR"), 1); n != 1 {
		t.Errorf("SRV NOERROR queries = %v, want 1", n)
	}
	if n := counterReaches(t, h.m.queries.WithLabelValues("A", "NXDOMAIN"), 1); n != 1 {
		t.Errorf("A NXDOMAIN queries = %v, want 1", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "roster_dns_request_duration_seconds" && len(mf.GetMetric()) != 2 {
			t.Errorf("latency series: %d, want udp and tcp", len(mf.GetMetric()))
		}
	}
}

func TestConfigValidate(t *testing.T) {
	reg := newRegistry()
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no registry", func(c *Config) { c.Registry = nil }, "Registry"},
		{"no domain", func(c *Config) { c.Domains = nil }, "domain"},
		{"bad domain", func(c *Config) { c.Domains = []string{"a..b"} }, "domain"},
		{"root domain", func(c *Config) { c.Domains = []string{"."} }, "domain"},
		{"negative ttl", func(c *Config) { c.TTL = -time.Second }, "ttl"},
		{"negative max answers", func(c *Config) { c.MaxAnswers = -1 }, "max answers"},
		{"small udp size", func(c *Config) { c.MaxUDPSize = 100 }, "udp size"},
		{"bad recursor", func(c *Config) { c.Recursors = []string{"a:b:c:"} }, "recursors"},
		{"bad recursor port", func(c *Config) { c.Recursors = []string{"10.0.0.1:x"} }, "recursors"},
		{"recursor without port", func(c *Config) { c.Recursors = []string{"10.0.0.1", "resolver.example", "[::1]:53"} }, ""},
		{"negative rate", func(c *Config) { c.RateLimit = -1 }, "rate"},
		{"recursors allowed to no one", func(c *Config) { c.Recursors, c.RecursorAllow = []string{"10.0.0.1"}, nil }, "recursor allow"},
		{"open resolver on purpose", func(c *Config) {
			c.Recursors = []string{"10.0.0.1"}
			c.RecursorAllow = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		}, ""},
		{"negative max forwards", func(c *Config) { c.MaxForwards = -1 }, "max forwards"},
		{"negative max stale", func(c *Config) { c.MaxStale = -time.Second }, "max stale"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Registry = reg
			tc.mod(&c)
			err := c.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRunStops: Run returns once its context ends, and Close frees a
// server that never ran.
func TestRunStops(t *testing.T) {
	h := newHandler(t, fixture(t))
	s, err := Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	exchange(t, "tcp", s.Addr(), question("web.service.roster.", dns.TypeA))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	// Run released the address: it binds again.
	s2, err := Listen(s.Addr(), h)
	if err != nil {
		t.Fatalf("bind %s after Run returned: %v", s.Addr(), err)
	}
	// Binding an address in use fails.
	if s3, err := Listen(s2.Addr(), h); err == nil {
		s3.Close()
		t.Error("bound one address twice")
	}
	// Close frees the address of a server that never ran.
	if err := s2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	s4, err := Listen(s2.Addr(), h)
	if err != nil {
		t.Fatalf("bind %s after Close: %v", s2.Addr(), err)
	}
	if err := s4.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
