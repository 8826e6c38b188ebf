package dnsserver

import (
	"slices"
	"sort"

	"github.com/miekg/dns"
)

// fit fills resp's answer and additional sections from entries within
// size bytes. When everything fits, everything goes. Otherwise it keeps
// the most answers that fit, in order, and sets TC, so a client retries
// over TCP rather than take a partial set for the whole; then it adds
// the kept answers' additional records while they fit (leaving out
// additional data needs no TC, RFC 2181 §9). opt, when not nil, is always
// kept.
func fit(resp *dns.Msg, entries []entry, size int, opt *dns.OPT) {
	resp.Answer = make([]dns.RR, len(entries))
	for i, e := range entries {
		resp.Answer[i] = e.rr
	}
	extra := extras(entries)
	resp.Extra = withOpt(extra, opt)
	// The uncompressed length bounds the compressed one and is cheaper
	// to compute.
	resp.Compress = false
	l := resp.Len()
	resp.Compress = true
	if l <= size || resp.Len() <= size {
		return
	}
	resp.Extra = withOpt(nil, opt)
	all := resp.Answer
	if resp.Len() > size {
		// The largest n whose first n answers fit.
		n := sort.Search(len(all)+1, func(n int) bool {
			resp.Answer = all[:n]
			return resp.Len() > size
		}) - 1
		resp.Answer = all[:max(n, 0)]
		resp.Truncated = true
		extra = extras(entries[:len(resp.Answer)])
	}
	k := sort.Search(len(extra)+1, func(k int) bool {
		resp.Extra = withOpt(extra[:k], opt)
		return resp.Len() > size
	}) - 1
	resp.Extra = withOpt(extra[:max(k, 0)], opt)
}

// extras collects the entries' additional records, each once. Every
// additional record roster makes is the only one of its type at its name
// (one instance's SRV or TXT) or is an address record, so name, type and
// address are the identity.
func extras(entries []entry) []dns.RR {
	type key struct {
		name string
		typ  uint16
		addr string
	}
	n := 0
	for _, e := range entries {
		n += len(e.extra)
	}
	if n == 0 {
		return nil
	}
	out := make([]dns.RR, 0, n)
	keys := make([]key, 0, n)
	var seen map[key]struct{} // past a few records; a scan before
	for _, e := range entries {
		for _, rr := range e.extra {
			k := key{name: rr.Header().Name, typ: rr.Header().Rrtype}
			switch a := rr.(type) {
			case *dns.A:
				k.addr = string(a.A)
			case *dns.AAAA:
				k.addr = string(a.AAAA)
			}
			if seen == nil && len(keys) >= 16 {
				seen = make(map[key]struct{}, n)
				for _, k := range keys {
					seen[k] = struct{}{}
				}
			}
			if seen != nil {
				if _, dup := seen[k]; dup {
					continue
				}
				seen[k] = struct{}{}
			} else if slices.Contains(keys, k) {
				continue
			}
			keys = append(keys, k)
			out = append(out, rr)
		}
	}
	return out
}

func withOpt(rrs []dns.RR, opt *dns.OPT) []dns.RR {
	if opt == nil {
		return rrs
	}
	out := make([]dns.RR, len(rrs), len(rrs)+1)
	copy(out, rrs)
	return append(out, opt)
}
