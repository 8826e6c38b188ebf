package dnsserver

import "testing"

// TestParseNameNestedDomains: when one domain is inside another, a name
// belongs to the longest one that contains it, whatever their order.
func TestParseNameNestedDomains(t *testing.T) {
	for _, domains := range [][]string{{"roster.", "svc.roster."}, {"svc.roster.", "roster."}} {
		tests := []struct {
			qname, domain, service, zone string
		}{
			{"web.service.svc.roster.", "svc.roster.", "web", ""},
			{"web.service.eu-1.svc.roster.", "svc.roster.", "web", "eu-1"},
			{"web.service.roster.", "roster.", "web", ""},
			{"web.service.eu-1.roster.", "roster.", "web", "eu-1"},
		}
		for _, tc := range tests {
			n, ok := parseName(tc.qname, domains)
			if !ok || n.kind != kindService || n.domain != tc.domain || n.service != tc.service || n.zone != tc.zone {
				t.Errorf("domains %q: %s parsed as domain %q service %q zone %q (kind %d, ok %v); want %q %q %q",
					domains, tc.qname, n.domain, n.service, n.zone, n.kind, ok, tc.domain, tc.service, tc.zone)
			}
		}
	}
}
