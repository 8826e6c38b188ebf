package sds

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// checkIn is one registration form, parsed and checked.
type checkIn struct {
	addr     netip.Addr
	port     int
	revision string
	repo     string
	tags     Tags
}

// parseCheckIn reads a registration form (ip or auto_ip, port, revision,
// service_repo_name, tags). client returns the address auto_ip stands for
// and whether the request may use it (see clientAddr). The checks run in
// the original's order, so that a form with several faults gets the
// answer it got there: a port that is not a number, then tags that are
// not JSON, then the fields the original refused with an empty body,
// then what roster checks beyond it.
func parseCheckIn(form url.Values, client func() (netip.Addr, bool)) (checkIn, error) {
	var ci checkIn
	portText := strings.TrimSpace(form.Get("port"))
	if portText != "" {
		p, err := strconv.Atoi(portText)
		if err != nil {
			return ci, badRequest(fmt.Sprintf("port: %.40q is not an integer", form.Get("port")))
		}
		ci.port = p
	}
	tagsText := form.Get("tags")
	if tagsText == "" {
		tagsText = "{}"
	}
	tags, err := parseTags(tagsText)
	if err != nil {
		return ci, err
	}

	ipText := form.Get("ip")
	switch {
	case ipText != "":
		a, ok := parseAddr(ipText)
		if !ok {
			return ci, emptyBadRequest(fmt.Sprintf("ip: %.60q is not an IPv4 or IPv6 address", ipText))
		}
		ci.addr = a
	case form.Get("auto_ip") != "":
		a, ok := client()
		if !ok {
			return ci, emptyBadRequest("auto_ip: the client's address is not in an allowed network")
		}
		ci.addr = a
	default:
		return ci, emptyBadRequest("ip: required unless auto_ip is set")
	}
	switch {
	case portText == "":
		return ci, emptyBadRequest("port: required")
	case ci.port < 1:
		return ci, emptyBadRequest("port: must be positive")
	}
	ci.revision = form.Get("revision")
	if ci.revision == "" {
		return ci, emptyBadRequest("revision: required")
	}
	missing, err := normalizeTags(tags)
	if len(missing) > 0 {
		return ci, emptyBadRequest("tags: missing " + strings.Join(missing, ", "))
	}
	if err != nil {
		return ci, err
	}
	if ci.port > 65535 {
		return ci, badRequest("port: must be between 1 and 65535")
	}
	ci.tags = tags
	ci.repo = form.Get("service_repo_name")
	return ci, nil
}

// parseAddr reads an IPv4 or IPv6 address without a zone. An IPv4 address
// written as IPv4-mapped IPv6 is the IPv4 address: one host, one identity.
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
