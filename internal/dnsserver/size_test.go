package dnsserver

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"

	"github.com/rosterhq/roster/internal/registry"
)

// bigService registers n instances of service "big" at distinct addresses.
func bigService(t testing.TB, n int) *registry.Service {
	t.Helper()
	reg := newRegistry()
	ins := make([]inst, n)
	for i := range ins {
		ins[i] = inst{Instance: registry.Instance{Service: "big", ID: fmt.Sprintf("big-%05d", i),
			Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), Port: 8000 + i%1000}}
	}
	register(t, reg, ins...)
	return reg
}

func withEDNS(m *dns.Msg, size uint16) *dns.Msg {
	m.SetEdns0(size, false)
	return m
}

// TestSize checks that answers honour the UDP size (512 without EDNS0,
// the client's EDNS0 size up to the maximum), set TC exactly when answer
// records were left out, and return the full set over TCP.
func TestSize(t *testing.T) {
	addr := serve(t, newHandler(t, bigService(t, 100)))
	tests := []struct {
		name    string
		network string
		msg     *dns.Msg
		limit   int  // the packed answer's size bound
		tc      bool // TC expected
		all     bool // all 100 answers expected
		extra   bool // every SRV's address expected in the additional section
	}{
		{name: "udp A without EDNS", network: "udp", msg: question("big.service.roster.", dns.TypeA), limit: 512, tc: true},
		{name: "udp SRV without EDNS", network: "udp", msg: question("big.service.roster.", dns.TypeSRV), limit: 512, tc: true},
		{name: "udp A with EDNS 4096", network: "udp", msg: withEDNS(question("big.service.roster.", dns.TypeA), 4096), limit: 4096, all: true},
		{name: "udp SRV with EDNS 1232", network: "udp", msg: withEDNS(question("big.service.roster.", dns.TypeSRV), 1232), limit: 1232, tc: true},
		{name: "udp A with EDNS below 512 means 512", network: "udp", msg: withEDNS(question("big.service.roster.", dns.TypeA), 100), limit: 512, tc: true},
		{name: "udp SRV with EDNS above the maximum", network: "udp", msg: withEDNS(question("big.service.roster.", dns.TypeSRV), 65000), limit: DefaultMaxUDPSize, all: true},
		{name: "tcp A", network: "tcp", msg: question("big.service.roster.", dns.TypeA), limit: dns.MaxMsgSize, all: true},
		{name: "tcp SRV", network: "tcp", msg: question("big.service.roster.", dns.TypeSRV), limit: dns.MaxMsgSize, all: true, extra: true},
		// The PTRs fit but not all their SRV/TXT/A: no TC for additional data.
		{name: "udp DNS-SD browse with EDNS 4096", network: "udp", msg: withEDNS(question("_big._tcp.roster.", dns.TypePTR), 4096), limit: 4096, all: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := exchange(t, tc.network, addr, tc.msg)
			r.Compress = true // as sent
			b, err := r.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > tc.limit {
				t.Errorf("answer of %d bytes, above %d", len(b), tc.limit)
			}
			if r.Rcode != dns.RcodeSuccess || r.Truncated != tc.tc {
				t.Errorf("rcode %s TC %v, want NOERROR TC %v", dns.RcodeToString[r.Rcode], r.Truncated, tc.tc)
			}
			if got := len(r.Answer); (got == 100) != tc.all || got == 0 {
				t.Errorf("%d answers, want all 100: %v (and never none)", got, tc.all)
			}
			if (tc.msg.IsEdns0() != nil) != (r.IsEdns0() != nil) {
				t.Errorf("OPT in answer %v, in question %v", r.IsEdns0() != nil, tc.msg.IsEdns0() != nil)
			}
			// Additional records belong to kept answers only.
			targets := map[string]bool{}
			for _, rr := range r.Answer {
				if srv, ok := rr.(*dns.SRV); ok {
					targets[srv.Target] = true
				}
			}
			n := 0
			for _, rr := range r.Extra {
				if a, ok := rr.(*dns.A); ok {
					n++
					if !targets[a.Hdr.Name] && tc.msg.Question[0].Qtype == dns.TypeSRV {
						t.Errorf("additional %v for an SRV that was left out", a)
					}
				}
			}
			if tc.extra && n != len(targets) {
				t.Errorf("%d additional addresses for %d SRV targets", n, len(targets))
			}
		})
	}
}

// TestMaxUDPSize: the server's UDP maximum wins over a larger EDNS0 size.
func TestMaxUDPSize(t *testing.T) {
	addr := serve(t, newHandler(t, bigService(t, 100), func(c *Config) { c.MaxUDPSize = 1232 }))
	r := exchange(t, "udp", addr, withEDNS(question("big.service.roster.", dns.TypeSRV), 4096))
	r.Compress = true
	b, err := r.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 1232 || !r.Truncated {
		t.Errorf("%d bytes, TC %v; want at most 1232 with TC", len(b), r.Truncated)
	}
	if opt := r.IsEdns0(); opt == nil || opt.UDPSize() != 1232 {
		t.Errorf("OPT %v, want the server's size 1232 advertised", opt)
	}
}

// TestHugeService: a service far beyond one message still answers within
// 64 KB over TCP, with TC set, and a bounded, valid answer over UDP.
func TestHugeService(t *testing.T) {
	addr := serve(t, newHandler(t, bigService(t, 5000)))
	for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
		r := exchange(t, "tcp", addr, question("big.service.roster.", qtype))
		if !r.Truncated || len(r.Answer) < 500 {
			t.Errorf("tcp %s: TC %v with %d answers, want TC and hundreds of answers", dns.TypeToString[qtype], r.Truncated, len(r.Answer))
		}
		r = exchange(t, "udp", addr, withEDNS(question("big.service.roster.", qtype), 4096))
		if !r.Truncated || len(r.Answer) == 0 {
			t.Errorf("udp %s: TC %v with %d answers", dns.TypeToString[qtype], r.Truncated, len(r.Answer))
		}
	}
	// Empty TXT records are 13 bytes: all 5000 fit in 64 KB. Whatever the
	// record size, an answer is whole or has TC set.
	r := exchange(t, "tcp", addr, question("big.service.roster.", dns.TypeTXT))
	if len(r.Answer) != 5000 && !r.Truncated {
		t.Errorf("tcp TXT: %d of 5000 answers without TC", len(r.Answer))
	}
}

// TestMaxAnswers: a configured cap is a choice, not a truncation.
func TestMaxAnswers(t *testing.T) {
	addr := serve(t, newHandler(t, bigService(t, 20), func(c *Config) { c.MaxAnswers = 3 }))
	for _, network := range []string{"udp", "tcp"} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV, dns.TypeTXT} {
			r := exchange(t, network, addr, question("big.service.roster.", qtype))
			if len(r.Answer) != 3 || r.Truncated {
				t.Errorf("%s %s: %d answers TC %v, want 3 without TC", network, dns.TypeToString[qtype], len(r.Answer), r.Truncated)
			}
		}
	}
}

// TestShuffle: the order of answers changes between queries.
func TestShuffle(t *testing.T) {
	addr := serve(t, newHandler(t, bigService(t, 10)))
	first := map[string]bool{}
	for range 50 {
		r := exchange(t, "udp", addr, question("big.service.roster.", dns.TypeA))
		first[r.Answer[0].String()] = true
	}
	if len(first) < 3 {
		t.Errorf("only %d distinct first answers in 50 queries over 10 instances", len(first))
	}
}

// TestPriorityFirst: lower priority comes first, and weight biases the
// order within a priority.
func TestPriorityFirst(t *testing.T) {
	reg := newRegistry()
	register(t, reg,
		inst{Instance: registry.Instance{Service: "p", ID: "backup", Address: "10.0.0.9", Port: 1, Priority: 5, Weight: 100}},
		inst{Instance: registry.Instance{Service: "p", ID: "heavy", Address: "10.0.0.1", Port: 1, Weight: 100}},
		inst{Instance: registry.Instance{Service: "p", ID: "light", Address: "10.0.0.2", Port: 1, Weight: 1}},
	)
	h := newHandler(t, reg)
	heavy := 0
	const n = 400
	for range n {
		r := h.answer(t.Context(), question("p.service.roster.", dns.TypeA), udpClient)
		if len(r.Answer) != 3 {
			t.Fatalf("%d answers", len(r.Answer))
		}
		if last := r.Answer[2].(*dns.A).A.String(); last != "10.0.0.9" {
			t.Fatalf("last answer %s, want the priority-5 backup", last)
		}
		if r.Answer[0].(*dns.A).A.String() == "10.0.0.1" {
			heavy++
		}
	}
	// heavy comes first with probability 100/101.
	if heavy < n*9/10 {
		t.Errorf("the weight-100 instance came first %d times in %d, want nearly always", heavy, n)
	}
}
