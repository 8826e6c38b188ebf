package sds

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/rosterhq/roster/internal/registry"
)

// setWeights answers POST /v1/loadbalancing/{service}[/{ip_address}]:
// set load_balancing_weight (1-100) on one host or on every host of the
// service. Only live hosts (those answers list) are changed: an expired
// host is gone, as it would be from the original at its next read. The
// one-host form answers 404 when there is no such live host; the
// all-hosts form answers 204 even for a service without hosts.
//
// A weight is a registration through the log; like any registration it
// also renews the host's lease.
func (a *API) setWeights(w http.ResponseWriter, r *http.Request, service, ipText string, one bool) {
	form, err := readForm(w, r)
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	text := form.Get("load_balancing_weight")
	if text == "" {
		a.refuse(w, r, badRequest(textWeightMissing))
		return
	}
	weight, ok := parseWeight(text)
	if !ok {
		a.refuse(w, r, badRequest(textWeightInvalid))
		return
	}
	var addr netip.Addr
	if one {
		if addr, ok = parseAddr(ipText); !ok {
			a.refuse(w, r, &requestError{status: http.StatusNotFound, reason: textHostNotFound})
			return
		}
	}
	ins, err := a.hostsAt(r.Context(), service, addr, true)
	if err != nil {
		a.refuse(w, r, err)
		return
	}
	if one && len(ins) == 0 {
		a.refuse(w, r, &requestError{status: http.StatusNotFound, reason: textHostNotFound})
		return
	}
	for _, in := range ins {
		if err := a.setWeight(r, in, weight); err != nil {
			a.refuse(w, r, err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// setWeight writes in with the weight, unless it has it already; the
// check-in time is left as it was.
func (a *API) setWeight(r *http.Request, in *registry.Instance, weight int) error {
	tags := storedTags(in)
	if in.Weight == weight && (!registeredHere(in) || string(tags[TagWeight]) == strconv.Itoa(weight)) {
		return nil
	}
	c := in.Clone()
	c.Weight = weight
	if registeredHere(c) {
		tags[TagWeight] = json.RawMessage(strconv.Itoa(weight))
		if err := toMeta(c.Meta, tags); err != nil {
			return err
		}
	}
	if _, err := a.reg.Register(r.Context(), c); err != nil {
		return err
	}
	a.metrics.weightSets.Inc()
	return nil
}
