package consulapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/rosterhq/roster/internal/registry"
)

// catalogService answers GET /v1/catalog/service/{service}: the service's
// instances flattened with their node, unfiltered by health, in the same
// order and with the same members as /v1/health/service.
func (a *API) catalogService(w http.ResponseWriter, r *http.Request) {
	a.serviceAnswer(w, r, "catalog", false, func(in *registry.Instance) any { return a.toCatalogService(in) })
}

// catalogServices answers GET /v1/catalog/services: every service name
// with the distinct tags of its instances, blocking on the services
// list.
func (a *API) catalogServices(w http.ResponseWriter, r *http.Request) {
	o, idx, all, ok := a.everyInstance(w, r)
	if !ok {
		return
	}
	out := map[string][]string{}
	if a.nodeMatches(&o) {
		for _, in := range all {
			if o.filter != nil {
				ok, err := o.keep(a.toCatalogService(in))
				if err != nil {
					a.writeError(w, err)
					return
				}
				if !ok {
					continue
				}
			}
			tags, seen := out[in.Service]
			if !seen {
				tags = []string{}
			}
			for _, t := range in.Tags {
				if !contains(tags, t) {
					tags = append(tags, t)
				}
			}
			out[in.Service] = tags
		}
	}
	a.writeAnswer(w, &o, idx, out)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// catalogNodes answers GET /v1/catalog/nodes: this node.
func (a *API) catalogNodes(w http.ResponseWriter, r *http.Request) {
	o, err := a.parseQuery(r.URL.Query())
	if err != nil {
		a.writeError(w, err)
		return
	}
	idx, err := a.block(r, &o, registry.WatchServices, a.servicesIndex(r))
	if err != nil {
		a.writeError(w, err)
		return
	}
	out := []*wireNode{}
	if a.nodeMatches(&o) {
		ok, err := o.keep(&a.node)
		if err != nil {
			a.writeError(w, err)
			return
		}
		if ok {
			out = append(out, &a.node)
		}
	}
	a.writeAnswer(w, &o, idx, out)
}

// servicesIndex reads the index of the services list.
func (a *API) servicesIndex(r *http.Request) func() uint64 {
	return func() uint64 {
		idx, _, _ := a.reg.Services(r.Context(), 0, 0)
		return idx
	}
}

// catalogNode answers GET /v1/catalog/node/{node}: this node and its
// services; another node is null, as Consul answers an unknown one.
func (a *API) catalogNode(w http.ResponseWriter, r *http.Request) {
	o, idx, all, ok := a.everyInstance(w, r)
	if !ok {
		return
	}
	if !strings.EqualFold(r.PathValue("node"), a.node.Node) {
		a.writeAnswer(w, &o, idx, nil)
		return
	}
	out := catalogNode{Node: &a.node, Services: make(map[string]*agentService, len(all))}
	for _, in := range all {
		s := a.toAgentService(in)
		ok, err := o.keep(s)
		if err != nil {
			a.writeError(w, err)
			return
		}
		if ok {
			out.Services[in.ID] = s
		}
	}
	a.writeAnswer(w, &o, idx, out)
}

// catalogDatacenters answers GET /v1/catalog/datacenters.
func (a *API) catalogDatacenters(w http.ResponseWriter, r *http.Request) {
	a.setLeaderHeaders(w)
	b, _ := encode([]string{a.node.Datacenter}, r.URL.Query().Has("pretty"))
	writeJSONBody(w, b)
}

// catalogRegistration is the body of PUT /v1/catalog/register.
type catalogRegistration struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	NodeMeta        map[string]string
	Service         *serviceDefinition
	Check           map[string]any
	Checks          []map[string]any
	SkipNodeUpdate  bool
}

// checkNode refuses a catalog write about another node or datacenter:
// roster has one node per agent.
func (a *API) checkNode(node, dc string) error {
	if dc != "" && dc != a.node.Datacenter {
		return &httpError{code: http.StatusInternalServerError, msg: "No path to datacenter"}
	}
	if node == "" {
		return &httpError{code: http.StatusBadRequest, msg: "Missing node name"}
	}
	if !strings.EqualFold(node, a.node.Node) {
		return &httpError{code: http.StatusBadRequest, msg: "Invalid node: roster serves one node per agent, " +
			"and this agent is " + a.node.Node + "; register external services on it"}
	}
	return nil
}

// catalogRegister answers PUT /v1/catalog/register for this node: the
// service is registered as through the agent. Catalog checks (which
// Consul stores and never runs) are not supported.
func (a *API) catalogRegister(w http.ResponseWriter, r *http.Request) {
	var reg catalogRegistration
	if err := decodeBody(r.Body, &reg); err != nil {
		a.writeError(w, err)
		return
	}
	if err := a.checkNode(reg.Node, reg.Datacenter); err != nil {
		a.writeError(w, err)
		return
	}
	if reg.Check != nil || len(reg.Checks) > 0 {
		writeText(w, http.StatusBadRequest, "Invalid check: Checks in catalog registrations are not supported; register services with checks through /v1/agent/service/register")
		return
	}
	if reg.Service != nil {
		if err := a.register(r, reg.Service, false); err != nil {
			a.writeError(w, err)
			return
		}
	}
	writeJSONBody(w, []byte("true\n"))
}

// catalogDeregistration is the body of PUT /v1/catalog/deregister.
type catalogDeregistration struct {
	Node       string
	Datacenter string
	ServiceID  string
	CheckID    string
}

// catalogDeregister answers PUT /v1/catalog/deregister: a service of this
// node. An unknown service is already gone: true.
func (a *API) catalogDeregister(w http.ResponseWriter, r *http.Request) {
	var d catalogDeregistration
	if err := decodeBody(r.Body, &d); err != nil {
		a.writeError(w, err)
		return
	}
	if err := a.checkNode(d.Node, d.Datacenter); err != nil {
		a.writeError(w, err)
		return
	}
	switch {
	case d.ServiceID != "":
		err := a.deregister(r, d.ServiceID)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			a.writeError(w, err)
			return
		}
	case d.CheckID != "":
		writeText(w, http.StatusBadRequest, "Invalid request: removing one check is not supported; re-register the service with replace-existing-checks")
		return
	default:
		writeText(w, http.StatusBadRequest, "Invalid request: roster cannot remove its own node")
		return
	}
	writeJSONBody(w, []byte("true\n"))
}
