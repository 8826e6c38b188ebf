package sds

import (
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr returns the address of the client that sent r, for auto_ip.
//
// The socket peer is the client unless it is one of the trusted proxies.
// Then X-Forwarded-For is read from its right end, the hop the trusted
// proxy added: entries that are themselves trusted proxies are skipped,
// and the first other entry is the client. Entries to its left were
// written by the client and are never used, so a client cannot choose its
// address by sending the header itself. An entry that is not an address
// stops the walk: the client is unknown.
func clientAddr(r *http.Request, trusted []netip.Prefix) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	peer := ap.Addr().Unmap().WithZone("")
	if !contains(trusted, peer) {
		return peer, true
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	if len(hops) == 0 {
		return peer, true
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseAddr(strings.TrimSpace(hops[i]))
		if !ok {
			return netip.Addr{}, false
		}
		if i == 0 || !contains(trusted, a) {
			return a, true
		}
	}
	return netip.Addr{}, false // not reached
}

func contains(nets []netip.Prefix, a netip.Addr) bool {
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
