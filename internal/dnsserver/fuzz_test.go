package dnsserver

import (
	"bufio"
	"context"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// seedNames reads testdata/names.txt.
func seedNames(f *testing.F) []string {
	f.Helper()
	file, err := os.Open("testdata/names.txt")
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	var out []string
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// FuzzParseName: any name parses without panicking, and an instance label
// survives escaping back.
func FuzzParseName(f *testing.F) {
	for _, n := range seedNames(f) {
		f.Add(n)
	}
	domains := []string{"roster.", "consul."}
	f.Fuzz(func(t *testing.T, qname string) {
		n, ok := parseName(qname, domains)
		if !ok {
			_, _ = parseReverse(asciiLower(qname))
			return
		}
		if !contains(domains, n.domain) {
			t.Fatalf("domain %q", n.domain)
		}
		if n.kind == kindInstance {
			if got := unescape(escapeLabel(n.instance)); got != n.instance {
				t.Fatalf("label %q escaped and read back is %q", n.instance, got)
			}
		}
		if (n.kind == kindService || n.kind == kindSRVName) && !validLabel(n.service) {
			t.Fatalf("service %q accepted", n.service)
		}
		if n.kind == kindZone && !validLabel(n.zone) {
			t.Fatalf("zone %q accepted", n.zone)
		}
		if n.kind == kindTag && n.tag == "" {
			t.Fatal("empty tag accepted")
		}
		if n.tagAlt != "" && n.kind != kindInvalid && (n.kind != kindSubtype || n.tagAlt != "_"+n.tag) {
			t.Fatalf("tag %q with alternative %q (kind %d)", n.tag, n.tagAlt, n.kind)
		}
	})
}

// FuzzQuery feeds packets to the handler the way the server does (only
// those miekg/dns can unpack reach it): it must not panic, and every
// answer must pack within the size limit of its transport.
func FuzzQuery(f *testing.F) {
	for _, n := range seedNames(f) {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypePTR, dns.TypeANY, dns.TypeSOA, dns.TypeNS} {
			m := new(dns.Msg)
			m.SetQuestion(n, qt)
			if qt == dns.TypeSRV {
				m.SetEdns0(1232, false)
			}
			if b, err := m.Pack(); err == nil {
				f.Add(b)
			}
		}
	}
	h := newHandler(f, fixture(f))
	big := newHandler(f, bigService(f, 300))
	f.Fuzz(func(t *testing.T, packet []byte) {
		req := new(dns.Msg)
		if req.Unpack(packet) != nil {
			return
		}
		for _, hh := range []*Handler{h, big} {
			for _, from := range []net.Addr{udpClient, tcpClient} {
				tcp := isTCP(from)
				resp := hh.answer(context.Background(), req, from)
				if resp == nil {
					continue
				}
				b, err := resp.Pack()
				if err != nil {
					t.Fatalf("answer does not pack: %v\n%v", err, resp)
				}
				limit := dns.MaxMsgSize
				if !tcp {
					limit = dns.MinMsgSize
					if opt := req.IsEdns0(); opt != nil {
						limit = max(limit, min(int(opt.UDPSize()), DefaultMaxUDPSize))
					}
				}
				if len(b) > limit {
					t.Fatalf("answer of %d bytes over %d (tcp %v)", len(b), limit, tcp)
				}
			}
		}
	})
}
