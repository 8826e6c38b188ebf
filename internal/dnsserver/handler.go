package dnsserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/rosterhq/roster/internal/registry"
)

// Handler answers DNS questions from the registry. It implements
// dns.Handler; ServeDNS is called by the miekg/dns servers from one
// goroutine per UDP packet or TCP connection, concurrently. It keeps no
// answers: each one is built from the registry's current state.
type Handler struct {
	reg        Registry
	domains    []string // lower case, fully qualified; the first is primary
	ttl        uint32
	negTTL     uint32
	health     registry.HealthFilter
	maxAnswers int
	maxUDP     int
	nsAddrs    []net.IP
	stale      func() bool // nil: never
	fwd        *forwarder
	limit      *limiter
	rev        reverseIndex
	ents       entIndex
	log        *slog.Logger
	m          *metrics
}

var _ dns.Handler = (*Handler)(nil)

// New validates cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Handler{
		reg:        cfg.Registry,
		ttl:        seconds(cfg.TTL),
		negTTL:     seconds(cfg.NegativeTTL),
		health:     registry.NotCritical,
		maxAnswers: cfg.MaxAnswers,
		maxUDP:     cfg.MaxUDPSize,
		nsAddrs:    cfg.NSAddrs,
		log:        cfg.Logger,
		m:          newMetrics(cfg.Metrics),
	}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h.log = h.log.With("component", "dnsserver")
	if cfg.OnlyPassing {
		h.health = registry.PassingOnly
	}
	if h.maxUDP == 0 {
		h.maxUDP = DefaultMaxUDPSize
	}
	for _, d := range cfg.Domains {
		d = dns.Fqdn(asciiLower(d))
		if !contains(h.domains, d) {
			h.domains = append(h.domains, d)
		}
	}
	if len(cfg.Recursors) > 0 {
		h.fwd = newForwarder(&cfg)
	}
	if cfg.RateLimit > 0 {
		h.limit = newLimiter(cfg.RateLimit)
	}
	if cfg.MaxStale > 0 && cfg.LastContact != nil {
		lastContact, maxStale := cfg.LastContact, cfg.MaxStale
		h.stale = func() bool {
			d := lastContact()
			return d < 0 || d > maxStale
		}
	}
	return h, nil
}

// isStale reports whether the registry's state is too stale to answer
// from (Config.MaxStale); it counts each refusal.
func (h *Handler) isStale() bool {
	if h.stale == nil || !h.stale() {
		return false
	}
	h.m.stale.Inc()
	return true
}

func seconds(d time.Duration) uint32 { return uint32(d / time.Second) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ServeDNS answers one question.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	tcp := isTCP(w.RemoteAddr())
	if h.limit != nil && !h.limit.allow(w.RemoteAddr()) {
		h.m.rateLimited.Inc()
		if !tcp {
			h.m.observe(req, dropped, tcp, start)
			return
		}
		resp := new(dns.Msg)
		resp.SetRcode(req, dns.RcodeRefused)
		if req.IsEdns0() != nil {
			resp.SetEdns0(uint16(h.maxUDP), false)
		}
		h.write(w, req, resp, tcp, start)
		return
	}
	// Registry reads never block here; forwarding bounds itself.
	resp := h.answer(context.Background(), req, w.RemoteAddr())
	if resp == nil {
		h.m.observe(req, dropped, tcp, start)
		return
	}
	h.write(w, req, resp, tcp, start)
}

func (h *Handler) write(w dns.ResponseWriter, req, resp *dns.Msg, tcp bool, start time.Time) {
	if err := w.WriteMsg(resp); err != nil {
		h.log.Debug("write answer", "remote", w.RemoteAddr().String(), "err", err)
		if tcp {
			// Part of the message may have gone: the stream is unusable,
			// and a client that stopped reading must not keep the
			// connection for its remaining queries.
			_ = w.Close()
		}
	}
	if resp.Truncated {
		h.m.truncated[tcpIndex(tcp)].Inc()
	}
	h.m.observe(req, resp.Rcode, tcp, start)
}

func isTCP(a net.Addr) bool {
	_, ok := a.(*net.TCPAddr)
	return ok
}

// answer builds the response to req from remote: nil means send nothing.
// remote's transport selects the size limit (64 KB over TCP; the EDNS0
// size, at most maxUDP, or 512 bytes over UDP); its address, whether
// other names are forwarded.
func (h *Handler) answer(ctx context.Context, req *dns.Msg, remote net.Addr) *dns.Msg {
	if req.Response {
		return nil
	}
	tcp := isTCP(remote)
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Compress = true
	if optCount(req) > 1 {
		// RFC 6891 §6.1.1; which OPT would count is unknowable, so the
		// answer has none.
		return reject(resp, dns.RcodeFormatError, nil)
	}
	resp.RecursionAvailable = h.fwd != nil && h.fwd.allowed(remote)
	size := dns.MinMsgSize
	var opt *dns.OPT
	if ropt := req.IsEdns0(); ropt != nil {
		opt = &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.SetUDPSize(uint16(h.maxUDP))
		if ropt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers
			resp.Extra = []dns.RR{opt}
			return resp
		}
		size = min(max(int(ropt.UDPSize()), dns.MinMsgSize), h.maxUDP)
	}
	if tcp {
		size = maxTCPSize
	}
	if rcode := checkQuery(req); rcode != dns.RcodeSuccess {
		return reject(resp, rcode, opt)
	}
	q := req.Question[0]
	n, inDomain := parseName(q.Name, h.domains)
	if !inDomain {
		return h.outside(ctx, req, resp, opt, remote, size)
	}
	if h.isStale() {
		return reject(resp, dns.RcodeServerFailure, opt)
	}
	resp.Authoritative = true
	res := h.resolve(ctx, n, q)
	if res.err != nil {
		if !errors.Is(res.err, registry.ErrNotReady) {
			h.log.Warn("registry read", "err", res.err)
		}
		return reject(resp, dns.RcodeServerFailure, opt)
	}
	resp.Rcode = res.rcode
	if len(res.answers) == 0 {
		resp.Ns = []dns.RR{h.soa(n.domain)}
		if opt != nil {
			resp.Extra = []dns.RR{opt}
		}
		return resp
	}
	fit(resp, res.answers, size, opt)
	return resp
}

// checkQuery returns the rcode refusing req, or RcodeSuccess.
func checkQuery(req *dns.Msg) int {
	if req.Opcode != dns.OpcodeQuery {
		return dns.RcodeNotImplemented
	}
	if len(req.Question) != 1 || len(req.Answer) > 0 || len(req.Ns) > 0 {
		return dns.RcodeFormatError
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return dns.RcodeRefused
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return dns.RcodeNotImplemented
	case dns.TypeOPT, dns.TypeNone:
		return dns.RcodeFormatError
	}
	return dns.RcodeSuccess
}

// optCount is the number of OPT records in req.
func optCount(req *dns.Msg) int {
	n := 0
	for _, rr := range req.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	return n
}

func reject(resp *dns.Msg, rcode int, opt *dns.OPT) *dns.Msg {
	resp.Rcode = rcode
	resp.Authoritative = false
	resp.Answer, resp.Ns, resp.Extra = nil, nil, nil
	if opt != nil {
		resp.Extra = []dns.RR{opt}
	}
	return resp
}

// outside answers a name under none of the domains: a reverse name of a
// registered address, else the recursors' answer (see forward), else
// REFUSED.
func (h *Handler) outside(ctx context.Context, req, resp *dns.Msg, opt *dns.OPT, remote net.Addr, size int) *dns.Msg {
	q := req.Question[0]
	if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY {
		if addr, ok := parseReverse(asciiLower(q.Name)); ok {
			services, err := h.rev.lookup(ctx, h.reg, addr)
			if err != nil {
				return reject(resp, dns.RcodeServerFailure, opt)
			}
			if len(services) > 0 {
				if h.isStale() {
					return reject(resp, dns.RcodeServerFailure, opt)
				}
				resp.Authoritative = true
				entries := make([]entry, 0, len(services))
				for _, s := range services {
					entries = append(entries, entry{rr: &dns.PTR{Hdr: h.hdr(q.Name, dns.TypePTR), Ptr: s + "." + labelService + "." + h.domains[0]}})
				}
				fit(resp, entries, size, opt)
				return resp
			}
		}
	}
	if h.fwd != nil {
		return h.fwd.forward(ctx, req, resp, opt, remote, size, h.m)
	}
	return reject(resp, dns.RcodeRefused, opt)
}

// hdr is the header of a positive answer record.
func (h *Handler) hdr(name string, typ uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: h.ttl}
}

// soa is the domain's SOA record: its TTL and minimum are the negative
// TTL; the serial is the registry's last index (truncated to 32 bits).
func (h *Handler) soa(domain string) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: h.negTTL},
		Ns:      labelNS + "." + domain,
		Mbox:    "hostmaster." + domain,
		Serial:  uint32(h.reg.LastIndex()),
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  h.negTTL,
	}
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "OTHER"
}

// lowerFqdn is a name's lower-case, fully qualified form.
func lowerFqdn(s string) string { return dns.Fqdn(strings.ToLower(s)) }
