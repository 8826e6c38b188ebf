package sds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/rosterhq/roster/internal/registry"
)

// maxFormBytes bounds a form body.
const maxFormBytes = 1 << 20

// readForm parses the request body as a form (URL-encoded or multipart)
// and returns its fields only: like the original, the query string is
// not read, and a body of another type has no fields.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	if ct == "multipart/form-data" {
		err = r.ParseMultipartForm(maxFormBytes)
		if r.MultipartForm != nil {
			defer r.MultipartForm.RemoveAll()
		}
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &requestError{status: http.StatusRequestEntityTooLarge, reason: fmt.Sprintf("form larger than %d bytes", maxFormBytes)}
		}
		return nil, badRequest("form: " + err.Error())
	}
	return r.PostForm, nil
}

// HostID is the instance ID of the host at addr: the address's canonical
// text ("10.0.0.1", "2001:db8::1"). One service has one host per address.
func HostID(addr netip.Addr) string { return addr.Unmap().String() }

// register answers POST /v1/registration/{service}: create the host or
// refresh it. A check-in that changes nothing is a heartbeat.
func (a *API) register(w http.ResponseWriter, r *http.Request, service string) {
	form, err := readForm(w, r)
	if err == nil {
		var ci checkIn
		client := func() (netip.Addr, bool) {
			addr, ok := clientAddr(r, a.cfg.TrustedProxies)
			return addr, ok && contains(a.cfg.AutoIPNets, addr)
		}
		if ci, err = parseCheckIn(form, client); err == nil {
			var result string
			if result, err = a.checkIn(r.Context(), service, ci); err == nil {
				a.metrics.checkIns.WithLabelValues(result).Inc()
				writeBody(w, http.StatusOK, []byte("{}\n"))
				return
			}
		}
	}
	a.metrics.checkIns.WithLabelValues("refused").Inc()
	a.refuse(w, r, err)
}

// checkIn applies one check-in and reports what it did: "heartbeat"
// (nothing changed: the lease is renewed in memory, the log is not
// written), "updated" or "created".
func (a *API) checkIn(ctx context.Context, service string, ci checkIn) (string, error) {
	key := registry.Key{Service: registry.NormalizeName(service), ID: HostID(ci.addr)}
	if !registry.ValidName(key.Service) {
		return "", badRequest(fmt.Sprintf("service: %.80q must be a DNS label: 1-63 letters, digits or '-', not starting or ending with '-'", service))
	}
	old, err := a.reg.Get(key)
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return "", err
	}
	in, err := a.desired(old, key, ci)
	if err != nil {
		return "", err
	}
	if old != nil && unchanged(old, in) {
		err := a.reg.Heartbeat(ctx, key)
		if err == nil {
			return "heartbeat", nil
		}
		if !errors.Is(err, registry.ErrNotFound) && !errors.Is(err, registry.ErrNoTTL) {
			return "", err
		}
		// Removed or changed meanwhile: register it afresh.
	}
	in.Meta[metaCheckIn] = FormatCheckIn(a.now())
	res, err := a.reg.Register(ctx, in)
	if err != nil {
		return "", err
	}
	if res.Created {
		return "created", nil
	}
	return "updated", nil
}

// desired is the instance a check-in asks for: the stored one (other
// APIs' changes kept) with the check-in's fields, its tags merged over
// the stored tags, and a TTL check of HostTTL.
func (a *API) desired(old *registry.Instance, key registry.Key, ci checkIn) (*registry.Instance, error) {
	var in *registry.Instance
	var tags Tags
	if old != nil {
		in = old.Clone()
		tags = merge(storedTags(old), ci.tags)
	} else {
		in = &registry.Instance{Service: key.Service, ID: key.ID}
		tags = ci.tags
	}
	if in.Meta == nil {
		in.Meta = map[string]string{}
	}
	if err := toMeta(in.Meta, tags); err != nil {
		return nil, err
	}
	if _, ok := in.Meta[metaCheckIn]; !ok {
		in.Meta[metaCheckIn] = "" // set when written
	}
	in.Address, in.Port, in.Revision, in.Repo = ci.addr.String(), ci.port, ci.revision, ci.repo
	in.Zone, in.Region = labelOf(tags[TagAZ]), labelOf(tags[TagRegion])
	in.Canary, in.Weight = false, registry.DefaultWeight
	if v, ok := tags[TagCanary]; ok {
		in.Canary, _ = parseCanary(v)
	}
	if v, ok := tags[TagWeight]; ok {
		in.Weight, _ = parseTagWeight(v)
	}
	a.setTTLCheck(in)
	return in, nil
}

// setTTLCheck gives in the TTL check of a host, keeping its status.
func (a *API) setTTLCheck(in *registry.Instance) {
	c := registry.Check{ID: registry.TTLCheckID, Type: registry.CheckTTL,
		TTL: registry.Duration(a.cfg.HostTTL), DeregisterAfter: registry.Duration(a.cfg.HostTTL)}
	for i := range in.Checks {
		if in.Checks[i].Type == registry.CheckTTL {
			c.ID, c.Status, c.Output, c.CriticalSince = in.Checks[i].ID, in.Checks[i].Status, in.Checks[i].Output, in.Checks[i].CriticalSince
			in.Checks[i] = c
			return
		}
	}
	in.Checks = append(in.Checks, c)
}

// unchanged reports whether writing in would change nothing but the
// check-in time: then a heartbeat does.
func unchanged(old, in *registry.Instance) bool {
	oc, nc := old.TTLCheck(), in.TTLCheck()
	return oc != nil && nc != nil && oc.Status == registry.Passing &&
		oc.TTL == nc.TTL && oc.DeregisterAfter == nc.DeregisterAfter &&
		old.Address == in.Address && old.Port == in.Port && old.Revision == in.Revision && old.Repo == in.Repo &&
		old.Zone == in.Zone && old.Region == in.Region && old.Canary == in.Canary && old.Weight == in.Weight &&
		maps.Equal(old.Meta, in.Meta)
}

// storedTags are the tags a check-in merges over: those the host was
// registered with, and its current canary and weight.
func storedTags(in *registry.Instance) Tags {
	if !registeredHere(in) {
		return Tags{}
	}
	t := fromMeta(in.Meta)
	all := tagsOf(in)
	for _, k := range []string{TagCanary, TagWeight} {
		if v, ok := all[k]; ok {
			t[k] = v
		}
	}
	return t
}

// labelOf returns a tag's value for the model's zone or region: a string
// that is a DNS label (lower-cased), else "".
func labelOf(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	s = strings.ToLower(s)
	if !registry.ValidName(s) {
		return ""
	}
	return s
}

// deleteHost answers DELETE /v1/registration/{service}/{ip_address}:
// every instance of the service at that address is deregistered. The
// original's answer for an invalid or unknown host is 400 {}.
func (a *API) deleteHost(w http.ResponseWriter, r *http.Request, service, ipText string) {
	addr, ok := parseAddr(ipText)
	if !ok {
		a.refuse(w, r, emptyBadRequest(fmt.Sprintf("ip_address: %.60q is not an IPv4 or IPv6 address", ipText)))
		return
	}
	ins, err := a.hostsAt(r.Context(), service, addr, false)
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	removed := 0
	for _, in := range ins {
		_, err := a.reg.Deregister(r.Context(), in.Key())
		switch {
		case err == nil:
			removed++
		case errors.Is(err, registry.ErrNotFound): // gone meanwhile
		default:
			a.refuse(w, r, err)
			return
		}
	}
	if removed == 0 {
		a.refuse(w, r, emptyBadRequest("no such host"))
		return
	}
	writeBody(w, http.StatusOK, []byte("{}\n"))
}

// hostsAt returns the service's instances at addr (every one when addr is
// not valid); with live, only those listed in answers (passing).
func (a *API) hostsAt(ctx context.Context, service string, addr netip.Addr, live bool) ([]*registry.Instance, error) {
	res, err := a.reg.Instances(ctx, registry.Query{Service: service}, 0, 0)
	if err != nil {
		return nil, err
	}
	var out []*registry.Instance
	for _, in := range res.Instances {
		if live && in.Health != registry.Passing {
			continue
		}
		if addr.IsValid() {
			if x, err := netip.ParseAddr(in.Address); err != nil || x.Unmap() != addr {
				continue
			}
		}
		out = append(out, in)
	}
	return out, nil
}
