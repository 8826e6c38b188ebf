package consulapi

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/rosterhq/roster/internal/registry"
)

// agentRegister answers PUT /v1/agent/service/register: 200 with no body.
func (a *API) agentRegister(w http.ResponseWriter, r *http.Request) {
	var def serviceDefinition
	if err := decodeBody(r.Body, &def); err != nil {
		a.writeError(w, err)
		return
	}
	if err := a.register(r, &def, replaceChecks(r.URL.Query())); err != nil {
		a.writeError(w, err)
		return
	}
	a.setLeaderHeaders(w)
	writeOK(w)
}

// register creates or replaces the instance a registration describes. As
// with Consul, an ID is unique on the node: registering an ID that another
// service holds moves it. Without replace, checks of the instance that the
// registration does not name are kept.
func (a *API) register(r *http.Request, def *serviceDefinition, replace bool) error {
	in, paths, err := toInstance(def, a.node.Address)
	if err != nil {
		return err
	}
	prev, err := a.findInstance(r.Context(), in.ID)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		prev = nil
	case err != nil:
		return err
	}
	sameService := prev != nil && prev.Service == registry.NormalizeName(in.Service)
	switch {
	case sameService && !replace:
		mergeChecks(in, prev)
	case prev != nil && !replace:
		keepMaintenance(in, prev)
	}
	res, err := a.reg.Register(r.Context(), in)
	var verr *registry.ValidationError
	if errors.As(err, &verr) {
		return registryFieldError(verr, paths)
	}
	if err != nil {
		return err
	}
	if replace && sameService {
		// The store kept the maintenance checks the definition does not
		// name; replacing the checks removes them, as with Consul.
		if err := a.dropMaintenance(r.Context(), res.Instance); err != nil {
			return err
		}
	}
	a.ids.remember(res.Instance)
	a.ids.rememberChosen(res.Instance)
	if prev != nil && prev.Service != res.Instance.Service {
		if _, err := a.reg.Deregister(r.Context(), prev.Key()); err != nil && !errors.Is(err, registry.ErrNotFound) {
			return fmt.Errorf("remove %s from service %s: %w", prev.ID, prev.Service, err)
		}
	}
	return nil
}

func unknownService(id string) error {
	return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id)}
}

// agentDeregister answers PUT /v1/agent/service/deregister/{id}.
func (a *API) agentDeregister(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.deregister(r, id); err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			err = unknownService(id)
		}
		a.writeError(w, err)
		return
	}
	a.setLeaderHeaders(w)
	writeOK(w)
}

func (a *API) deregister(r *http.Request, id string) error {
	in, err := a.findInstance(r.Context(), id)
	if err != nil {
		return err
	}
	if _, err := a.reg.Deregister(r.Context(), in.Key()); err != nil {
		return err
	}
	a.ids.forget(id)
	return nil
}

// agentServices answers GET /v1/agent/services: every instance, by ID.
func (a *API) agentServices(w http.ResponseWriter, r *http.Request) {
	o, err := a.parseQuery(r.URL.Query())
	if err != nil {
		a.writeError(w, err)
		return
	}
	idx, all, err := a.allInstances(r.Context())
	if err != nil {
		a.writeError(w, err)
		return
	}
	out := make(map[string]*agentService, len(all))
	for _, in := range all {
		s := a.toAgentService(in)
		s.CreateIndex, s.ModifyIndex, s.Datacenter = 0, 0, a.node.Datacenter
		ok, err := o.keep(s)
		if err != nil {
			a.writeError(w, err)
			return
		}
		if ok {
			out[in.ID] = s
		}
	}
	a.writeAnswer(w, &o, idx, out)
}

// agentChecks answers GET /v1/agent/checks: every service check, by
// Consul check ID.
func (a *API) agentChecks(w http.ResponseWriter, r *http.Request) {
	o, err := a.parseQuery(r.URL.Query())
	if err != nil {
		a.writeError(w, err)
		return
	}
	idx, all, err := a.allInstances(r.Context())
	if err != nil {
		a.writeError(w, err)
		return
	}
	out := map[string]healthCheck{}
	var checks []healthCheck
	for _, in := range all {
		checks = a.toHealthChecks(in, checks[:0])
		for _, c := range checks {
			ok, err := o.keep(c)
			if err != nil {
				a.writeError(w, err)
				return
			}
			if ok {
				c.CreateIndex, c.ModifyIndex = 0, 0
				out[c.CheckID] = c
			}
		}
	}
	a.writeAnswer(w, &o, idx, out)
}

// agentService answers GET /v1/agent/service/{id}, blocking on
// ?hash= (X-Consul-ContentHash) rather than on an index.
func (a *API) agentService(w http.ResponseWriter, r *http.Request) {
	o, err := a.parseQuery(r.URL.Query())
	if err != nil {
		a.writeError(w, err)
		return
	}
	id := r.PathValue("id")
	in, err := a.findInstance(r.Context(), id)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			err = &httpError{code: http.StatusNotFound, msg: "unknown service ID: " + id}
		}
		a.writeError(w, err)
		return
	}
	key := in.Key()
	var (
		s    *agentService
		hash string
		gerr error
	)
	read := func() uint64 {
		var cur *registry.Instance
		cur, gerr = a.reg.Get(key)
		if gerr != nil {
			return 2 // gone: a change
		}
		s, hash = a.hashedService(cur)
		if o.hash == "" || hash != o.hash {
			return 2
		}
		return 1
	}
	// Block compares indexes: read returns 2 once the hash differs from
	// the one asked about, 1 while it does not.
	minIndex := uint64(0)
	if o.hash != "" {
		minIndex = 1
	}
	if err := a.reg.Block(r.Context(), registry.WatchService(key.Service), minIndex, o.wait, read); err != nil {
		a.writeError(w, err)
		return
	}
	if gerr != nil {
		if errors.Is(gerr, registry.ErrNotFound) {
			gerr = &httpError{code: http.StatusNotFound, msg: "unknown service ID: " + id}
		}
		a.writeError(w, gerr)
		return
	}
	b, err := encode(s, o.pretty)
	if err != nil {
		a.writeError(w, err)
		return
	}
	w.Header().Set("X-Consul-ContentHash", hash)
	a.setLeaderHeaders(w)
	writeJSONBody(w, b)
}

// hashedService is an instance as agent/service shows it, with the hash
// of its content.
func (a *API) hashedService(in *registry.Instance) (*agentService, string) {
	s := a.toAgentService(in)
	s.CreateIndex, s.ModifyIndex, s.Datacenter = 0, 0, a.node.Datacenter
	b, _ := json.Marshal(s)
	h := fnv.New64a()
	_, _ = h.Write(b)
	s.ContentHash = hex.EncodeToString(h.Sum(nil))
	return s, s.ContentHash
}

// checkUpdater answers PUT /v1/agent/check/{pass,warn,fail,update}/{id}:
// a TTL check's report, which renews its lease as a heartbeat does and is
// written to the log only when the status or output changes.
func (a *API) checkUpdater(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		status, output := registry.Passing, r.URL.Query().Get("note")
		switch kind {
		case "warn":
			status = registry.Warning
		case "fail":
			status = registry.Critical
		case "update":
			var u struct {
				Status string
				Output string
			}
			if err := decodeBody(r.Body, &u); err != nil {
				a.writeError(w, err)
				return
			}
			status, output = registry.Health(strings.ToLower(u.Status)), u.Output
			if !status.Valid() {
				writeText(w, http.StatusBadRequest, "Invalid check status: '"+u.Status+"'")
				return
			}
		}
		unknown := &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("Unknown check ID %q. Ensure that the check ID is passed, not the check name.", id)}
		in, checkID, err := a.findCheck(r.Context(), id)
		if err == nil {
			err = a.reg.UpdateTTL(r.Context(), in.Key(), checkID, status, output)
		}
		switch {
		case errors.Is(err, registry.ErrNotFound):
			a.writeError(w, unknown)
		case errors.Is(err, registry.ErrNoTTL):
			writeText(w, http.StatusInternalServerError, "CheckID "+strconv.Quote(id)+" does not have associated TTL")
		case err != nil:
			a.writeError(w, err)
		default:
			a.setLeaderHeaders(w)
			writeOK(w)
		}
	}
}

// agentSelf answers GET /v1/agent/self. Every top-level value is an
// object: the Go client decodes it as map[string]map[string]any.
func (a *API) agentSelf(w http.ResponseWriter, r *http.Request) {
	n := &a.node
	out := map[string]any{
		"Config": map[string]any{
			"Datacenter": n.Datacenter, "PrimaryDatacenter": n.Datacenter, "NodeName": n.Node, "NodeID": n.ID,
			"Server": true, "Version": CompatVersion, "Revision": "", "Product": "roster",
		},
		"DebugConfig": map[string]any{"Datacenter": n.Datacenter, "NodeName": n.Node, "NodeID": n.ID, "AdvertiseAddrLAN": n.Address},
		"Member":      a.member(false),
		"Meta":        n.Meta,
		"Stats":       map[string]any{"consul": map[string]string{"server": "true", "leader": strconv.FormatBool(a.cluster.IsLeader())}},
	}
	b, err := encode(out, r.URL.Query().Has("pretty"))
	if err != nil {
		a.writeError(w, err)
		return
	}
	a.setLeaderHeaders(w)
	writeJSONBody(w, b)
}

// agentMembers answers GET /v1/agent/members: this agent.
func (a *API) agentMembers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	_, wan := q["wan"]
	b, err := encode([]member{a.member(wan && q.Get("wan") != "0")}, q.Has("pretty"))
	if err != nil {
		a.writeError(w, err)
		return
	}
	a.setLeaderHeaders(w)
	writeJSONBody(w, b)
}

// member is this agent as a gossip member (alive: Status 1). Port is the
// HTTP API's: roster has no gossip port.
func (a *API) member(wan bool) member {
	n := &a.node
	name := n.Node
	if wan {
		name += "." + n.Datacenter
	}
	return member{
		Name: name, Addr: n.Address, Port: a.httpPort(), Status: 1,
		Tags:        map[string]string{"role": "consul", "dc": n.Datacenter, "id": n.ID, "build": CompatVersion, "segment": ""},
		ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2, DelegateMin: 2, DelegateMax: 5, DelegateCur: 4,
	}
}

// statusLeader answers GET /v1/status/leader: the leader's address as a
// JSON string, "" when no leader is known. This agent, when it leads, is
// its node address and HTTP port.
func (a *API) statusLeader(w http.ResponseWriter, r *http.Request) {
	b, _ := json.Marshal(a.leaderAddr())
	a.setLeaderHeaders(w)
	writeJSONBody(w, append(b, '\n'))
}

func (a *API) leaderAddr() string {
	if _, clustered := a.voters(); !clustered && a.cluster.IsLeader() {
		return a.selfAddr()
	}
	addr, _ := a.cluster.Leader()
	return addr
}

// voters returns the raft addresses of the log's voters when this agent
// is one of several servers (Consul reports raft addresses there); a
// single agent's log has no address worth reporting.
func (a *API) voters() ([]string, bool) {
	vl, ok := a.cluster.(interface{ VoterAddrs() ([]string, error) })
	if !ok {
		return nil, false
	}
	addrs, err := vl.VoterAddrs()
	if err != nil || len(addrs) < 2 {
		return nil, false
	}
	return addrs, true
}

func (a *API) selfAddr() string {
	return net.JoinHostPort(a.node.Address, strconv.Itoa(a.httpPort()))
}

// statusPeers answers GET /v1/status/peers: the voters of the log, by
// raft address in a cluster; a single agent is a one-voter cluster, so
// its peer is the leader.
func (a *API) statusPeers(w http.ResponseWriter, r *http.Request) {
	peers, clustered := a.voters()
	if !clustered {
		peers = []string{}
		if l := a.leaderAddr(); l != "" {
			peers = append(peers, l)
		}
	}
	b, _ := json.Marshal(peers)
	a.setLeaderHeaders(w)
	writeJSONBody(w, append(b, '\n'))
}
