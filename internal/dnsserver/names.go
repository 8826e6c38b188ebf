package dnsserver

import (
	"encoding/hex"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// kind is the shape of a question name under one of the domains.
type kind int

const (
	kindInvalid  kind = iota // under the domain, but no name roster knows
	kindApex                 // DOMAIN itself
	kindNS                   // ns.DOMAIN: the name server named in SOA/NS
	kindService              // NAME.service, TAG.NAME.service, _NAME._TAG.service (+ .ZONE)
	kindSRVName              // _NAME._TAG.DOMAIN: RFC 2782 owner; DNS-SD browsing for _tcp
	kindTypes                // _services._dns-sd._udp.DOMAIN
	kindSubtype              // SUB._sub._NAME._tcp.DOMAIN
	kindInstance             // INSTANCE._NAME._tcp.DOMAIN
	kindAddr                 // HEX.addr.DOMAIN
	// kindEmpty: a fixed name with roster's names below it and no data of
	// its own (service, addr, _tcp, _udp, _dns-sd._udp, _tcp.service). It
	// exists (NODATA, not NXDOMAIN: RFC 8020), so resolvers that minimise
	// question names (RFC 9156) go on to the name below.
	kindEmpty
	// kindZone: ZONE, service.ZONE and _tcp.service.ZONE; and kindTag:
	// _TAG, _TAG.service and _TAG.service.ZONE. Empty non-terminals
	// that exist while names below them do: while a healthy instance is
	// in the zone, or has the tag (in the zone).
	kindZone
	kindTag
)

// name is a parsed question name.
type name struct {
	kind    kind
	domain  string // the domain matched, lower case, fully qualified
	service string // lower case
	tag     string // as asked (tags match case-insensitively); "" = any
	// tagAlt is a second tag that matches too: for the subtype label
	// _SUB, tag is SUB and tagAlt _SUB.
	tagAlt string
	zone   string // lower case; "" = any
	// instance is the instance label of kindInstance, unescaped, in the
	// case it was asked.
	instance string
	addr     netip.Addr // kindAddr
}

// Fixed labels.
const (
	labelService = "service"
	labelAddr    = "addr"
	labelNS      = "ns"
	labelTCP     = "_tcp"
	labelUDP     = "_udp"
	labelSub     = "_sub"
)

// matchDomain returns the domain of domains (lower case, fully qualified)
// that qname (lower case) is in, the longest when one domain is inside
// another, and the part of qname before it without its trailing dot (""
// at the apex). ok is false outside every domain.
func matchDomain(lname string, domains []string) (domain, rest string, ok bool) {
	for _, d := range domains {
		if ok && len(d) <= len(domain) {
			continue
		}
		if lname == d {
			domain, rest, ok = d, "", true
			continue
		}
		if len(lname) > len(d) && strings.HasSuffix(lname, d) && lname[len(lname)-len(d)-1] == '.' {
			r := lname[:len(lname)-len(d)-1]
			// A dot that ends the part before the domain must not be
			// escaped: "a\.roster." is one label, not under roster.
			if !escapedAt(r, len(r)) {
				domain, rest, ok = d, r, true
			}
		}
	}
	return domain, rest, ok
}

// asciiLower lower-cases A-Z only, so the result has the length of s
// (DNS compares names case-insensitively in ASCII alone).
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// escapedAt reports whether the character at s[i] (or the end, i ==
// len(s)) follows an odd number of backslashes.
func escapedAt(s string, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// parseName reads qname, which must be under one of domains (lower case,
// fully qualified). ok is false when qname is outside every domain; a name
// inside one that roster does not know has kind kindInvalid.
func parseName(qname string, domains []string) (n name, ok bool) {
	lname := asciiLower(qname)
	domain, rest, ok := matchDomain(lname, domains)
	if !ok {
		return name{}, false
	}
	n.domain = domain
	if rest == "" {
		n.kind = kindApex
		return n, true
	}
	labels := dns.SplitDomainName(rest)
	// The same labels in the case asked, for instance names.
	orig := dns.SplitDomainName(qname[:len(rest)])
	if len(labels) == 0 || len(orig) != len(labels) {
		return n, true
	}
	parseLabels(&n, labels, orig)
	return n, true
}

func parseLabels(n *name, labels, orig []string) {
	last := len(labels) - 1
	switch {
	case len(labels) == 1 && labels[0] == labelNS:
		n.kind = kindNS
	case len(labels) == 1 && (labels[0] == labelService || labels[0] == labelAddr || labels[0] == labelTCP || labels[0] == labelUDP),
		len(labels) == 2 && labels[0] == "_dns-sd" && labels[1] == labelUDP,
		len(labels) == 2 && labels[0] == labelTCP && labels[1] == labelService:
		n.kind = kindEmpty
	case labels[last] == labelService:
		parseService(n, labels[:last])
	case len(labels) >= 2 && labels[last-1] == labelService:
		if validLabel(labels[last]) {
			n.zone = labels[last]
			parseService(n, labels[:last-1])
		}
	case len(labels) == 1:
		if tag, ok := underscored(labels[0]); ok {
			n.kind, n.tag = kindTag, unescape(tag)
		} else if validLabel(labels[0]) {
			n.kind, n.zone = kindZone, labels[0]
		}
	case len(labels) == 2 && labels[1] == labelAddr:
		parseAddr(n, labels[0])
	case len(labels) == 3 && labels[0] == "_services" && labels[1] == "_dns-sd" && labels[2] == labelUDP:
		n.kind = kindTypes
	case len(labels) == 2:
		if svc, ok := underscored(labels[0]); ok {
			if tag, ok := underscored(labels[1]); ok {
				n.kind, n.service = kindSRVName, svc
				if labels[1] != labelTCP {
					n.tag = unescape(tag)
				}
			}
		}
	case len(labels) == 3 && labels[2] == labelTCP:
		if svc, ok := underscored(labels[1]); ok {
			n.kind, n.service, n.instance = kindInstance, svc, unescape(orig[0])
		}
	case len(labels) == 4 && labels[1] == labelSub && labels[3] == labelTCP:
		if svc, ok := underscored(labels[2]); ok {
			n.kind, n.service, n.tag = kindSubtype, svc, unescape(orig[0])
			// Subtype labels are conventionally _SUB (RFC 6763 §7.1):
			// _SUB selects tag SUB, and a tag spelled _SUB as well.
			if sub, ok := underscored(n.tag); ok {
				n.tag, n.tagAlt = sub, n.tag
			}
		}
	}
	if n.kind == kindService || n.kind == kindSRVName || n.kind == kindInstance || n.kind == kindSubtype {
		if !validLabel(n.service) || (n.kind == kindInstance && n.instance == "") || (n.kind == kindSubtype && n.tag == "") {
			n.kind = kindInvalid
		}
	}
}

// parseService reads the labels before "service": NAME, TAG.NAME (more
// leading labels are joined with dots into one tag) or _NAME._TAG; or,
// with none or one of _TAG, an empty non-terminal: service.ZONE,
// _tcp.service.ZONE, _TAG.service[.ZONE].
func parseService(n *name, p []string) {
	switch len(p) {
	case 0:
		if n.zone != "" {
			n.kind = kindZone
		}
		return
	case 1:
		if tag, ok := underscored(p[0]); ok {
			n.kind = kindTag
			if p[0] == labelTCP {
				n.kind = kindZone // _tcp.service.D itself is kindEmpty
			} else {
				n.tag = unescape(tag)
			}
			return
		}
		n.service = p[0]
	default:
		svc, ok1 := underscored(p[0])
		tag, ok2 := underscored(p[1])
		if len(p) == 2 && ok1 && ok2 {
			n.service = svc
			if p[1] != labelTCP {
				n.tag = unescape(tag)
			}
		} else {
			n.service = p[len(p)-1]
			n.tag = unescape(strings.Join(p[:len(p)-1], "."))
		}
	}
	n.kind = kindService
}

// parseAddr decodes HEX.addr: 8 hex digits are an IPv4 address, 32 an
// IPv6 address.
func parseAddr(n *name, h string) {
	if len(h) != 8 && len(h) != 32 {
		return
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return
	}
	addr, ok := netip.AddrFromSlice(b)
	if !ok {
		return
	}
	n.kind, n.addr = kindAddr, addr
}

// underscored returns l without its leading underscore.
func underscored(l string) (string, bool) {
	if len(l) < 2 || l[0] != '_' {
		return "", false
	}
	return l[1:], true
}

// validLabel reports whether l could be a service or zone name: 1–63 of
// a-z, 0-9 and '-' (lower case; the registry's rule).
func validLabel(l string) bool {
	if l == "" || len(l) > 63 {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// unescape turns a label in presentation form (\. and \DDD escapes) into
// its bytes.
func unescape(l string) string {
	if !strings.Contains(l, `\`) {
		return l
	}
	var b strings.Builder
	for i := 0; i < len(l); i++ {
		c := l[i]
		if c != '\\' || i+1 >= len(l) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(l) && isDigit(l[i+1]) && isDigit(l[i+2]) && isDigit(l[i+3]) {
			v := int(l[i+1]-'0')*100 + int(l[i+2]-'0')*10 + int(l[i+3]-'0')
			if v <= 255 {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(l[i+1])
		i++
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// escapeLabel writes raw bytes as one label in presentation form, the way
// miekg/dns prints names it unpacked.
func escapeLabel(raw string) string {
	clean := true
	for i := 0; i < len(raw); i++ {
		if labelSpecial(raw[i]) {
			clean = false
			break
		}
	}
	if clean {
		return raw
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c < ' ' || c > '~':
			b.WriteByte('\\')
			b.WriteByte('0' + c/100)
			b.WriteByte('0' + c/10%10)
			b.WriteByte('0' + c%10)
		case labelSpecial(c):
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func labelSpecial(c byte) bool {
	switch c {
	case '.', ' ', '\'', '@', ';', '(', ')', '"', '\\':
		return true
	}
	return c < ' ' || c > '~'
}

// parseReverse reads an in-addr.arpa. or ip6.arpa. name (lower case).
func parseReverse(lname string) (netip.Addr, bool) {
	switch {
	case strings.HasSuffix(lname, ".in-addr.arpa."):
		parts := strings.Split(strings.TrimSuffix(lname, ".in-addr.arpa."), ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, p := range parts {
			if p == "" || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
				return netip.Addr{}, false
			}
			v := 0
			for j := 0; j < len(p); j++ {
				if !isDigit(p[j]) {
					return netip.Addr{}, false
				}
				v = v*10 + int(p[j]-'0')
			}
			if v > 255 {
				return netip.Addr{}, false
			}
			b[3-i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	case strings.HasSuffix(lname, ".ip6.arpa."):
		nibbles := strings.TrimSuffix(lname, ".ip6.arpa.")
		if len(nibbles) != 63 {
			return netip.Addr{}, false
		}
		var h [32]byte
		for i := 0; i < 32; i++ {
			c := nibbles[i*2]
			if (i < 31 && nibbles[i*2+1] != '.') || !isHex(c) {
				return netip.Addr{}, false
			}
			h[31-i] = c
		}
		var b [16]byte
		if _, err := hex.Decode(b[:], h[:]); err != nil {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

func isHex(c byte) bool { return isDigit(c) || (c >= 'a' && c <= 'f') }
