package dnsserver

import (
	"context"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/rosterhq/roster/internal/registry"
)

// entry is one answer record and the additional records that go with it
// (an SRV's target address; a DNS-SD PTR's SRV, TXT and address).
type entry struct {
	rr    dns.RR
	extra []dns.RR
}

// result is what a question resolves to. No answers with RcodeSuccess is
// NODATA; err means SERVFAIL.
type result struct {
	rcode   int
	answers []entry
	err     error
}

var (
	nxdomain = result{rcode: dns.RcodeNameError}
	nodata   = result{rcode: dns.RcodeSuccess}
)

// resolve answers question q about the parsed name n.
func (h *Handler) resolve(ctx context.Context, n name, q dns.Question) result {
	switch n.kind {
	case kindApex:
		return h.apex(n, q)
	case kindNS:
		return h.nsAddresses(q)
	case kindAddr:
		return h.addrName(n, q)
	case kindEmpty:
		return nodata
	case kindZone, kindTag:
		ok, err := h.ents.exists(ctx, h, n)
		switch {
		case err != nil:
			return result{err: err}
		case ok:
			return nodata
		}
		return nxdomain
	case kindTypes:
		return h.serviceTypes(ctx, n, q)
	case kindService, kindSRVName, kindSubtype, kindInstance:
		return h.serviceName(ctx, n, q)
	}
	return nxdomain
}

func (h *Handler) apex(n name, q dns.Question) result {
	switch q.Qtype {
	case dns.TypeSOA, dns.TypeANY:
		return answers(entry{rr: h.soa(n.domain)})
	case dns.TypeNS:
		ns := labelNS + "." + n.domain
		e := entry{rr: &dns.NS{Hdr: h.hdr(q.Name, dns.TypeNS), Ns: ns}}
		for _, ip := range h.nsAddrs {
			e.extra = append(e.extra, h.addrRecord(ns, ip))
		}
		return answers(e)
	}
	return nodata
}

func (h *Handler) nsAddresses(q dns.Question) result {
	var out []entry
	for _, ip := range h.nsAddrs {
		if rr := h.addrRecord(q.Name, ip); rr.Header().Rrtype == q.Qtype {
			out = append(out, entry{rr: rr})
		}
	}
	return result{answers: out}
}

func (h *Handler) addrName(n name, q dns.Question) result {
	if q.Qtype == dns.TypeANY {
		return answers(h.minimalAny(q.Name))
	}
	rr := h.addrRecord(q.Name, n.addr.AsSlice())
	if rr.Header().Rrtype != q.Qtype {
		return nodata
	}
	return answers(entry{rr: rr})
}

// serviceTypes lists one _NAME._tcp PTR per service with healthy
// instances (RFC 6763 §9).
func (h *Handler) serviceTypes(ctx context.Context, n name, q dns.Question) result {
	switch q.Qtype {
	case dns.TypeANY:
		return answers(h.minimalAny(q.Name))
	case dns.TypePTR:
	default:
		return nodata
	}
	_, services, err := h.reg.Services(ctx, 0, 0)
	if err != nil {
		return result{err: err}
	}
	var out []entry
	for _, s := range services {
		healthy := s.Passing
		if h.health != registry.PassingOnly {
			healthy += s.Warning
		}
		if healthy == 0 || len(s.Name) > 62 {
			continue
		}
		out = append(out, entry{rr: &dns.PTR{Hdr: h.hdr(q.Name, dns.TypePTR), Ptr: "_" + s.Name + "." + labelTCP + "." + n.domain}})
	}
	return result{answers: out}
}

// serviceName answers every name that selects instances: it exists while
// at least one healthy instance matches.
func (h *Handler) serviceName(ctx context.Context, n name, q dns.Question) result {
	targets, err := h.instances(ctx, n)
	if err != nil {
		return result{err: err}
	}
	if n.kind == kindInstance {
		found := findInstance(targets, n.instance)
		if len(found) == 0 && strings.EqualFold(n.instance, labelSub) && anyTagged(targets) {
			// _sub._NAME._tcp: the subtypes are below it (RFC 8020).
			return nodata
		}
		targets = found
	}
	if len(targets) == 0 {
		return h.missing(ctx, n)
	}
	if q.Qtype == dns.TypeANY {
		return answers(h.minimalAny(q.Name))
	}
	order(targets)
	limit := h.answerLimit()
	switch {
	case n.kind == kindService && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA):
		return result{answers: h.addressAnswers(q, targets, limit)}
	case n.kind == kindService && q.Qtype == dns.TypeTXT, n.kind == kindInstance && q.Qtype == dns.TypeTXT:
		return result{answers: h.txtAnswers(q.Name, targets, limit)}
	case q.Qtype == dns.TypeSRV && n.kind != kindSubtype:
		return result{answers: h.srvAnswers(q.Name, n.domain, targets, limit)}
	case q.Qtype == dns.TypePTR && (n.kind == kindSubtype || (n.kind == kindSRVName && n.tag == "")):
		return result{answers: h.browseAnswers(q.Name, n, targets, limit)}
	}
	return nodata
}

// missing answers a name that selects no healthy instance: NXDOMAIN,
// unless it is an empty non-terminal of a dotted tag: b.NAME.service.D
// exists when a.b.NAME.service.D does, for tag "a.b".
func (h *Handler) missing(ctx context.Context, n name) result {
	if n.kind != kindService || n.tag == "" {
		return nxdomain
	}
	all := n
	all.tag, all.tagAlt = "", ""
	targets, err := h.instances(ctx, all)
	if err != nil {
		return result{err: err}
	}
	suffix := "." + n.tag
	for _, t := range targets {
		for _, tag := range t.in.Tags {
			if len(tag) > len(suffix) && strings.EqualFold(tag[len(tag)-len(suffix):], suffix) {
				return nodata
			}
		}
	}
	return nxdomain
}

// anyTagged reports whether one of ts has a tag.
func anyTagged(ts []target) bool {
	for _, t := range ts {
		if len(t.in.Tags) > 0 {
			return true
		}
	}
	return false
}

func answers(e ...entry) result { return result{answers: e} }

// minimalAny is the RFC 8482 answer to ANY: one synthesized HINFO.
func (h *Handler) minimalAny(qname string) entry {
	return entry{rr: &dns.HINFO{Hdr: h.hdr(qname, dns.TypeHINFO), Cpu: "RFC8482"}}
}

// minRecordLen is the smallest answer record roster makes, compressed: a
// TXT record with one empty string (2-byte owner pointer, 10 bytes of
// type, class, TTL and length, 1 byte of data).
const minRecordLen = 13

// answerLimit is the most answer records worth building: MaxAnswers, and
// never more than the largest message could hold, plus one so that fit
// sees when records are left out and sets TC.
func (h *Handler) answerLimit() int {
	limit := maxTCPSize/minRecordLen + 1
	if h.maxAnswers > 0 {
		limit = min(limit, h.maxAnswers)
	}
	return limit
}

// target is an instance with its address parsed.
type target struct {
	in   *registry.Instance
	ip   netip.Addr // valid when the address is an IP
	host string     // fully qualified, when the address is a host name
}

// instances reads the healthy instances n selects.
func (h *Handler) instances(ctx context.Context, n name) ([]target, error) {
	res, err := h.reg.Instances(ctx, registry.Query{Service: n.service, Health: h.health, Zone: n.zone}, 0, 0)
	if err != nil {
		return nil, err
	}
	out := make([]target, 0, len(res.Instances))
	for _, in := range res.Instances {
		// DNS names are case-insensitive and resolvers may scramble the
		// case they ask with, so tags match without regard to case.
		if n.tag != "" && !hasTagFold(in, n.tag) && (n.tagAlt == "" || !hasTagFold(in, n.tagAlt)) {
			continue
		}
		if t, ok := targetOf(in); ok {
			out = append(out, t)
		}
	}
	return out, nil
}

// targetOf parses in's address: false when it is neither an IP address
// nor a host name, and in has no place in answers.
func targetOf(in *registry.Instance) (target, bool) {
	t := target{in: in}
	if ip, err := netip.ParseAddr(in.Address); err == nil {
		t.ip = ip.Unmap().WithZone("")
	} else if _, ok := dns.IsDomainName(in.Address); ok && in.Address != "" && !strings.ContainsAny(in.Address, "\\ ") {
		t.host = lowerFqdn(in.Address)
	} else {
		return target{}, false
	}
	return t, true
}

func hasTagFold(in *registry.Instance, tag string) bool {
	for _, t := range in.Tags {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// findInstance returns the target whose DNS-SD instance label is label:
// the exact label first, else one equal but for case.
func findInstance(ts []target, label string) []target {
	var fold []target
	for i := range ts {
		l := instanceLabel(ts[i].in.ID)
		if l == label {
			return ts[i : i+1]
		}
		if fold == nil && strings.EqualFold(l, label) {
			fold = ts[i : i+1]
		}
	}
	return fold
}

// addressAnswers are the distinct addresses of the asked family; when no
// instance has an IP address but some have host names, one CNAME to a
// host name. A name with a CNAME may have no other data (RFC 1034
// §3.6.2), so a service that has IP addresses of the other family only
// gets no answer (NODATA), never a CNAME.
func (h *Handler) addressAnswers(q dns.Question, ts []target, limit int) []entry {
	var out []entry
	seen := make(map[netip.Addr]struct{}, min(len(ts), limit))
	for _, t := range ts {
		if len(out) >= limit {
			break
		}
		if !t.ip.IsValid() || t.ip.Is4() != (q.Qtype == dns.TypeA) {
			continue
		}
		if _, dup := seen[t.ip]; dup {
			continue
		}
		seen[t.ip] = struct{}{}
		out = append(out, entry{rr: h.addrRecord(q.Name, t.ip.AsSlice())})
	}
	if len(out) > 0 {
		return out
	}
	for _, t := range ts {
		if t.ip.IsValid() {
			return nil
		}
	}
	for _, t := range ts {
		if t.host != "" {
			return []entry{{rr: &dns.CNAME{Hdr: h.hdr(q.Name, dns.TypeCNAME), Target: t.host}}}
		}
	}
	return nil
}

// addrRecord is an A or AAAA record for ip.
func (h *Handler) addrRecord(owner string, ip net.IP) dns.RR {
	if v4 := ip.To4(); v4 != nil {
		return &dns.A{Hdr: h.hdr(owner, dns.TypeA), A: v4}
	}
	return &dns.AAAA{Hdr: h.hdr(owner, dns.TypeAAAA), AAAA: ip}
}

// targetName is the SRV target of t: HEX.addr.DOMAIN for an IP, which
// resolves to it on its own and comes with its address record; the host
// name itself otherwise.
func (h *Handler) targetName(t target, domain string) (string, dns.RR) {
	if !t.ip.IsValid() {
		return t.host, nil
	}
	b := t.ip.AsSlice()
	name := hex.EncodeToString(b) + "." + labelAddr + "." + domain
	return name, h.addrRecord(name, b)
}

func (h *Handler) srvRecord(owner, domain string, t target) (dns.RR, dns.RR) {
	name, addr := h.targetName(t, domain)
	return &dns.SRV{
		Hdr:      h.hdr(owner, dns.TypeSRV),
		Priority: uint16(t.in.Priority),
		Weight:   uint16(t.in.Weight),
		Port:     uint16(t.in.Port),
		Target:   name,
	}, addr
}

func (h *Handler) srvAnswers(owner, domain string, ts []target, limit int) []entry {
	out := make([]entry, 0, min(len(ts), limit))
	for _, t := range ts[:min(len(ts), limit)] {
		srv, addr := h.srvRecord(owner, domain, t)
		e := entry{rr: srv}
		if addr != nil {
			e.extra = []dns.RR{addr}
		}
		out = append(out, e)
	}
	return out
}

func (h *Handler) txtAnswers(owner string, ts []target, limit int) []entry {
	out := make([]entry, 0, min(len(ts), limit))
	for _, t := range ts[:min(len(ts), limit)] {
		out = append(out, entry{rr: &dns.TXT{Hdr: h.hdr(owner, dns.TypeTXT), Txt: txtStrings(t.in)}})
	}
	return out
}

// browseAnswers are DNS-SD PTRs to instance names, each with the
// instance's SRV, TXT and address as additional records (RFC 6763 §12.1).
func (h *Handler) browseAnswers(owner string, n name, ts []target, limit int) []entry {
	if len(n.service) > 62 {
		return nil
	}
	suffix := "._" + n.service + "." + labelTCP + "." + n.domain
	out := make([]entry, 0, min(len(ts), limit))
	for _, t := range ts[:min(len(ts), limit)] {
		inst := escapeLabel(instanceLabel(t.in.ID)) + suffix
		srv, addr := h.srvRecord(inst, n.domain, t)
		e := entry{
			rr:    &dns.PTR{Hdr: h.hdr(owner, dns.TypePTR), Ptr: inst},
			extra: []dns.RR{srv, &dns.TXT{Hdr: h.hdr(inst, dns.TypeTXT), Txt: txtStrings(t.in)}},
		}
		if addr != nil {
			e.extra = append(e.extra, addr)
		}
		out = append(out, e)
	}
	return out
}
