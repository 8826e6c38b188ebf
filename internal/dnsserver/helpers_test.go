package dnsserver

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/testutil"
)

// udpClient and tcpClient stand for a client on the loopback address,
// for tests that call Handler.answer directly.
var (
	udpClient net.Addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
	tcpClient net.Addr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}
)

// newRegistry is a registry over an in-memory store.
func newRegistry() *registry.Service {
	reg, _ := testutil.NewRegistry()
	return reg
}

// inst is an instance to register, with the health to give it.
type inst struct {
	registry.Instance
	health registry.Health
}

func register(t testing.TB, reg *registry.Service, ins ...inst) {
	t.Helper()
	ctx := context.Background()
	for _, in := range ins {
		i := in.Instance
		if in.health != "" && in.health != registry.Passing {
			i.Checks = []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Hour)}}
		}
		res, err := reg.Register(ctx, &i)
		if err != nil {
			t.Fatalf("register %s/%s: %v", i.Service, i.ID, err)
		}
		if in.health != "" && in.health != registry.Passing {
			if _, err := reg.SetCheckStatus(ctx, res.Instance.Key(), registry.TTLCheckID, in.health, "test"); err != nil {
				t.Fatalf("set health of %s/%s: %v", i.Service, i.ID, err)
			}
		}
	}
}

// fixture is the registry most tests answer from.
func fixture(t testing.TB) *registry.Service {
	t.Helper()
	reg := newRegistry()
	register(t, reg,
		inst{Instance: registry.Instance{Service: "web", ID: "web-1", Address: "10.0.0.1", Port: 8080, Weight: 10, Tags: []string{"v2", "primary"}, Meta: map[string]string{"version": "v2"}, Zone: "eu-1a"}},
		inst{Instance: registry.Instance{Service: "web", ID: "web-2", Address: "10.0.0.2", Port: 8080, Weight: 5, Tags: []string{"v1"}, Zone: "eu-1b"}},
		inst{Instance: registry.Instance{Service: "web", ID: "web-3", Address: "10.0.0.3", Port: 8081, Priority: 1, Zone: "eu-1b"}, health: registry.Warning},
		inst{Instance: registry.Instance{Service: "web", ID: "web-4", Address: "10.0.0.4", Port: 8080}, health: registry.Critical},
		inst{Instance: registry.Instance{Service: "web", ID: "web-6", Address: "2001:db8::1", Port: 8080}},
		inst{Instance: registry.Instance{Service: "ext", ID: "db", Address: "db.example.com", Port: 5432, Tags: []string{"blue.green"}}},
		inst{Instance: registry.Instance{Service: "printer", ID: "node.1", Address: "10.0.1.1", Port: 631, Meta: map[string]string{"path": `c:\queue`, "long": strings.Repeat("x", 300)}}},
		inst{Instance: registry.Instance{Service: "down", ID: "d-1", Address: "10.0.2.1", Port: 80, Tags: []string{"legacy"}, Zone: "us-2"}, health: registry.Critical},
	)
	return reg
}

// newHandler builds a handler over reg with cfg's changes.
func newHandler(t testing.TB, reg Registry, mods ...func(*Config)) *Handler {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Registry = reg
	cfg.Metrics = prometheus.NewRegistry()
	for _, m := range mods {
		m(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// serve runs h on 127.0.0.1:0 (UDP and TCP) until the test ends and
// returns the address.
func serve(t testing.TB, h *Handler) string {
	t.Helper()
	s, err := Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s.Addr()
}

// exchange asks addr over network ("udp" or "tcp") and fails the test on
// a transport error.
func exchange(t testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: dns.MaxMsgSize}
	ctx := testutil.Context(t, 10*time.Second)
	r, _, err := c.ExchangeContext(ctx, m, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], err)
	}
	return r
}

func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// zone normalises zone-file lines to miekg/dns's presentation, sorted.
func zone(t testing.TB, lines ...string) []string {
	t.Helper()
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("bad expectation %q: %v", l, err)
		}
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

// lines prints records as sorted presentation lines, without OPT.
func lines(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}
