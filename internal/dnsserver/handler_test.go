package dnsserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/rosterhq/roster/internal/registry"
)

// TestNames asks every name form and record type over UDP and TCP with a
// real client and compares the sections as zone-file lines.
func TestNames(t *testing.T) {
	reg := fixture(t)
	addr := serve(t, newHandler(t, reg))
	const (
		webA1 = "0a000001.addr.roster. 0 IN A 10.0.0.1"
		webA2 = "0a000002.addr.roster. 0 IN A 10.0.0.2"
		webA3 = "0a000003.addr.roster. 0 IN A 10.0.0.3"
		web6  = "20010db8000000000000000000000001.addr.roster. 0 IN AAAA 2001:db8::1"
	)
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		extra  []string // nil: not checked
		soa    bool     // SOA in the authority section
	}{
		{name: "service A", qname: "web.service.roster.", qtype: dns.TypeA, answer: []string{
			"web.service.roster. 0 IN A 10.0.0.1", "web.service.roster. 0 IN A 10.0.0.2", "web.service.roster. 0 IN A 10.0.0.3"}},
		{name: "service AAAA", qname: "web.service.roster.", qtype: dns.TypeAAAA, answer: []string{
			"web.service.roster. 0 IN AAAA 2001:db8::1"}},
		{name: "service SRV", qname: "web.service.roster.", qtype: dns.TypeSRV, answer: []string{
			"web.service.roster. 0 IN SRV 0 10 8080 0a000001.addr.roster.",
			"web.service.roster. 0 IN SRV 0 5 8080 0a000002.addr.roster.",
			"web.service.roster. 0 IN SRV 1 1 8081 0a000003.addr.roster.",
			"web.service.roster. 0 IN SRV 0 1 8080 20010db8000000000000000000000001.addr.roster."},
			extra: []string{webA1, webA2, webA3, web6}},
		{name: "service TXT", qname: "web.service.roster.", qtype: dns.TypeTXT, answer: []string{
			`web.service.roster. 0 IN TXT "version=v2" "v2" "primary"`, `web.service.roster. 0 IN TXT "v1"`,
			`web.service.roster. 0 IN TXT ""`, `web.service.roster. 0 IN TXT ""`}},
		{name: "tag", qname: "v2.web.service.roster.", qtype: dns.TypeA, answer: []string{"v2.web.service.roster. 0 IN A 10.0.0.1"}},
		{name: "tag and name in upper case", qname: "V2.WEB.Service.ROSTER.", qtype: dns.TypeA, answer: []string{"V2.WEB.Service.ROSTER. 0 IN A 10.0.0.1"}},
		{name: "unknown tag", qname: "v9.web.service.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "rfc2782 tag", qname: "_web._v1.service.roster.", qtype: dns.TypeSRV, answer: []string{
			"_web._v1.service.roster. 0 IN SRV 0 5 8080 0a000002.addr.roster."}, extra: []string{webA2}},
		{name: "rfc2782 _tcp is any tag", qname: "_web._tcp.service.roster.", qtype: dns.TypeA, answer: []string{
			"_web._tcp.service.roster. 0 IN A 10.0.0.1", "_web._tcp.service.roster. 0 IN A 10.0.0.2", "_web._tcp.service.roster. 0 IN A 10.0.0.3"}},
		{name: "zone", qname: "web.service.eu-1b.roster.", qtype: dns.TypeA, answer: []string{
			"web.service.eu-1b.roster. 0 IN A 10.0.0.2", "web.service.eu-1b.roster. 0 IN A 10.0.0.3"}},
		{name: "tag and zone", qname: "v1.web.service.eu-1b.roster.", qtype: dns.TypeA, answer: []string{"v1.web.service.eu-1b.roster. 0 IN A 10.0.0.2"}},
		{name: "empty zone", qname: "web.service.us-1.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "alt domain", qname: "_web._v1.service.consul.", qtype: dns.TypeSRV, answer: []string{
			"_web._v1.service.consul. 0 IN SRV 0 5 8080 0a000002.addr.consul."}, extra: []string{"0a000002.addr.consul. 0 IN A 10.0.0.2"}},
		{name: "srv without service label", qname: "_web._v2.roster.", qtype: dns.TypeSRV, answer: []string{
			"_web._v2.roster. 0 IN SRV 0 10 8080 0a000001.addr.roster."}, extra: []string{webA1}},
		{name: "dns-sd service types", qname: "_services._dns-sd._udp.roster.", qtype: dns.TypePTR, answer: []string{
			"_services._dns-sd._udp.roster. 0 IN PTR _web._tcp.roster.", "_services._dns-sd._udp.roster. 0 IN PTR _ext._tcp.roster.",
			"_services._dns-sd._udp.roster. 0 IN PTR _printer._tcp.roster."}},
		{name: "dns-sd browse", qname: "_web._tcp.roster.", qtype: dns.TypePTR, answer: []string{
			"_web._tcp.roster. 0 IN PTR web-1._web._tcp.roster.", "_web._tcp.roster. 0 IN PTR web-2._web._tcp.roster.",
			"_web._tcp.roster. 0 IN PTR web-3._web._tcp.roster.", "_web._tcp.roster. 0 IN PTR web-6._web._tcp.roster."},
			extra: []string{
				"web-1._web._tcp.roster. 0 IN SRV 0 10 8080 0a000001.addr.roster.", `web-1._web._tcp.roster. 0 IN TXT "version=v2" "v2" "primary"`, webA1,
				"web-2._web._tcp.roster. 0 IN SRV 0 5 8080 0a000002.addr.roster.", `web-2._web._tcp.roster. 0 IN TXT "v1"`, webA2,
				"web-3._web._tcp.roster. 0 IN SRV 1 1 8081 0a000003.addr.roster.", `web-3._web._tcp.roster. 0 IN TXT ""`, webA3,
				"web-6._web._tcp.roster. 0 IN SRV 0 1 8080 20010db8000000000000000000000001.addr.roster.", `web-6._web._tcp.roster. 0 IN TXT ""`, web6,
			}},
		{name: "dns-sd subtype", qname: "v2._sub._web._tcp.roster.", qtype: dns.TypePTR, answer: []string{
			"v2._sub._web._tcp.roster. 0 IN PTR web-1._web._tcp.roster."}},
		// RFC 6763 §7.1 subtype labels are conventionally _SUB.
		{name: "dns-sd subtype with underscore", qname: "_v2._sub._web._tcp.roster.", qtype: dns.TypePTR, answer: []string{
			"_v2._sub._web._tcp.roster. 0 IN PTR web-1._web._tcp.roster."}},
		{name: "dns-sd subtype with underscore, unknown", qname: "_v9._sub._web._tcp.roster.", qtype: dns.TypePTR, rcode: dns.RcodeNameError, soa: true},
		{name: "dns-sd instance SRV", qname: "web-1._web._tcp.roster.", qtype: dns.TypeSRV, answer: []string{
			"web-1._web._tcp.roster. 0 IN SRV 0 10 8080 0a000001.addr.roster."}, extra: []string{webA1}},
		{name: "dns-sd instance TXT", qname: "web-2._web._tcp.roster.", qtype: dns.TypeTXT, answer: []string{`web-2._web._tcp.roster. 0 IN TXT "v1"`}},
		{name: "dns-sd instance label with a dot, TXT escaping and a pair too long", qname: `node\.1._printer._tcp.roster.`, qtype: dns.TypeTXT,
			answer: []string{`node\.1._printer._tcp.roster. 0 IN TXT "path=c:\\queue"`}},
		{name: "dns-sd browse escapes", qname: "_printer._tcp.roster.", qtype: dns.TypePTR, answer: []string{`_printer._tcp.roster. 0 IN PTR node\.1._printer._tcp.roster.`}},
		{name: "dns-sd critical instance", qname: "web-4._web._tcp.roster.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, soa: true},
		{name: "dns-sd instance A is NODATA", qname: "web-1._web._tcp.roster.", qtype: dns.TypeA, soa: true},
		{name: "addr A", qname: "0a000001.addr.roster.", qtype: dns.TypeA, answer: []string{webA1}},
		{name: "addr AAAA", qname: "20010db8000000000000000000000001.addr.roster.", qtype: dns.TypeAAAA, answer: []string{web6}},
		{name: "addr other family", qname: "0a000001.addr.roster.", qtype: dns.TypeAAAA, soa: true},
		{name: "addr bad hex", qname: "0a0000zz.addr.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "host name address is a CNAME", qname: "ext.service.roster.", qtype: dns.TypeA, answer: []string{"ext.service.roster. 0 IN CNAME db.example.com."}},
		{name: "host name SRV target", qname: "ext.service.roster.", qtype: dns.TypeSRV, answer: []string{"ext.service.roster. 0 IN SRV 0 1 5432 db.example.com."}, extra: []string{}},
		{name: "unknown service", qname: "api.service.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "only critical instances", qname: "down.service.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "no records of the type", qname: "web.service.roster.", qtype: dns.TypeMX, soa: true},
		{name: "unknown name in the domain", qname: "what.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		// Names above roster's names exist (empty non-terminals, RFC 8020):
		// NXDOMAIN there would deny every name below, and resolvers that
		// minimise question names (RFC 9156) ask them first.
		{name: "service label alone is NODATA", qname: "service.roster.", qtype: dns.TypeA, soa: true},
		{name: "addr label alone is NODATA", qname: "addr.roster.", qtype: dns.TypeA, soa: true},
		{name: "_tcp alone is NODATA", qname: "_tcp.roster.", qtype: dns.TypeA, soa: true},
		{name: "_udp alone is NODATA", qname: "_udp.roster.", qtype: dns.TypeA, soa: true},
		{name: "_dns-sd._udp is NODATA", qname: "_dns-sd._udp.roster.", qtype: dns.TypeA, soa: true},
		{name: "_tcp.service is NODATA", qname: "_TCP.service.roster.", qtype: dns.TypeA, soa: true},
		// Names above roster's names that exist while the registry has
		// names below them: NODATA then, NXDOMAIN otherwise.
		{name: "zone with instances is NODATA", qname: "eu-1b.roster.", qtype: dns.TypeA, soa: true},
		{name: "zone without instances", qname: "us-1.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "zone with critical instances only", qname: "us-2.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "service.ZONE is NODATA", qname: "service.EU-1A.roster.", qtype: dns.TypeSRV, soa: true},
		{name: "service.ZONE without instances", qname: "service.us-1.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "_tcp.service.ZONE is NODATA", qname: "_tcp.service.eu-1a.roster.", qtype: dns.TypeA, soa: true},
		{name: "_tcp.service.ZONE without instances", qname: "_tcp.service.us-1.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "_TAG.service is NODATA", qname: "_V1.service.roster.", qtype: dns.TypeA, soa: true},
		{name: "_TAG.service of an unknown tag", qname: "_v9.service.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "_TAG.service of a critical instance's tag", qname: "_legacy.service.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "_TAG.service.ZONE is NODATA", qname: "_v1.service.eu-1b.roster.", qtype: dns.TypeA, soa: true},
		{name: "_TAG.service.ZONE of a tag in another zone", qname: "_v2.service.eu-1b.roster.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "_TAG is NODATA", qname: "_primary.roster.", qtype: dns.TypeSRV, soa: true},
		{name: "_TAG of an unknown tag", qname: "_v9.roster.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, soa: true},
		{name: "_sub of a service with tags is NODATA", qname: "_sub._web._tcp.roster.", qtype: dns.TypePTR, soa: true},
		{name: "_sub of a service without tags", qname: "_sub._printer._tcp.roster.", qtype: dns.TypePTR, rcode: dns.RcodeNameError, soa: true},
		{name: "dotted tag", qname: "blue.green.ext.service.roster.", qtype: dns.TypeSRV, answer: []string{
			"blue.green.ext.service.roster. 0 IN SRV 0 1 5432 db.example.com."}},
		{name: "last label of a dotted tag is NODATA", qname: "green.ext.service.roster.", qtype: dns.TypeSRV, soa: true},
		{name: "a tag that is no dotted tag's end", qname: "blue.ext.service.roster.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, soa: true},
		{name: "apex SOA", qname: "roster.", qtype: dns.TypeSOA, answer: []string{
			// The serial is the registry's last index.
			fmt.Sprintf("roster. 0 IN SOA ns.roster. hostmaster.roster. %d 3600 600 86400 0", reg.LastIndex())}},
		{name: "apex NS", qname: "roster.", qtype: dns.TypeNS, answer: []string{"roster. 0 IN NS ns.roster."}},
		{name: "ANY is minimal", qname: "web.service.roster.", qtype: dns.TypeANY, answer: []string{`web.service.roster. 0 IN HINFO "RFC8482" ""`}},
		{name: "ANY of an unknown service", qname: "api.service.roster.", qtype: dns.TypeANY, rcode: dns.RcodeNameError, soa: true},
		{name: "reverse of a registered address", qname: "1.0.0.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"1.0.0.10.in-addr.arpa. 0 IN PTR web.service.roster."}},
		{name: "reverse IPv6", qname: "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", qtype: dns.TypePTR,
			answer: []string{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 0 IN PTR web.service.roster."}},
		{name: "reverse of another address", qname: "9.9.9.10.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeRefused},
		{name: "outside the domains", qname: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
	}
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					r := exchange(t, network, addr, question(tc.qname, tc.qtype))
					if r.Rcode != tc.rcode {
						t.Fatalf("rcode %s, want %s\n%v", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode], r)
					}
					if r.Truncated {
						t.Errorf("TC set:\n%v", r)
					}
					if tc.rcode != dns.RcodeRefused && !r.Authoritative {
						t.Errorf("AA not set")
					}
					if got, want := lines(r.Answer), zone(t, tc.answer...); !slices.Equal(got, want) {
						t.Errorf("answer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
					if tc.extra != nil {
						if got, want := lines(r.Extra), zone(t, tc.extra...); !slices.Equal(got, want) {
							t.Errorf("additional:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
						}
					}
					hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
					if hasSOA != tc.soa || (!tc.soa && len(r.Ns) > 0) {
						t.Errorf("authority %v, want SOA: %v", r.Ns, tc.soa)
					}
				})
			}
		})
	}
}

// TestCNAMEOnlyWithoutAddresses: a name never has a CNAME beside other
// data (RFC 1034 §3.6.2; a resolver that cached the CNAME would follow it
// for every type), so a service with IP addresses and a host name answers
// address records or NODATA, and only a service of host names alone
// answers the CNAME.
func TestCNAMEOnlyWithoutAddresses(t *testing.T) {
	reg := newRegistry()
	register(t, reg,
		inst{Instance: registry.Instance{Service: "mixed", ID: "ip", Address: "10.0.0.1", Port: 80}},
		inst{Instance: registry.Instance{Service: "mixed", ID: "host", Address: "db.example.com", Port: 80}},
		inst{Instance: registry.Instance{Service: "hosts", ID: "host", Address: "db.example.com", Port: 80}},
	)
	h := newHandler(t, reg)
	tests := []struct {
		qname  string
		qtype  uint16
		answer []string
	}{
		{"mixed.service.roster.", dns.TypeA, []string{"mixed.service.roster. 0 IN A 10.0.0.1"}},
		{"mixed.service.roster.", dns.TypeAAAA, nil},
		{"hosts.service.roster.", dns.TypeA, []string{"hosts.service.roster. 0 IN CNAME db.example.com."}},
		{"hosts.service.roster.", dns.TypeAAAA, []string{"hosts.service.roster. 0 IN CNAME db.example.com."}},
	}
	for _, tc := range tests {
		for range 20 { // the answer must not depend on the shuffle
			r := h.answer(t.Context(), question(tc.qname, tc.qtype), udpClient)
			if got, want := lines(r.Answer), zone(t, tc.answer...); r.Rcode != dns.RcodeSuccess || !slices.Equal(got, want) {
				t.Fatalf("%s %s: %s %q, want NOERROR %q", tc.qname, dns.TypeToString[tc.qtype], dns.RcodeToString[r.Rcode], got, want)
			}
		}
	}
}
