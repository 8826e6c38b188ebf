package consulapi

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/rosterhq/roster/internal/registry"
)

// Consul's wire shapes, as its HTTP API answers them. Field names are
// Consul's, and the Go names equal the JSON names so that ?filter
// expressions (go-bexpr selectors such as Service.Meta.version) name the
// same fields as with Consul.

// wireNode is a catalog node: this agent.
type wireNode struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

// weights are a service's DNS SRV weights by health.
type weights struct {
	Passing int
	Warning int
}

// serviceAddress is one of a service's tagged addresses.
type serviceAddress struct {
	Address string
	Port    int
}

// agentService is a service instance (Consul's AgentService/NodeService).
type agentService struct {
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	TaggedAddresses   map[string]serviceAddress `json:",omitempty"`
	Weights           weights
	EnableTagOverride bool
	// ContentHash is set by GET /v1/agent/service/{id} only.
	ContentHash string `json:",omitempty" bexpr:"-"`
	// Datacenter is set by the agent endpoints only.
	Datacenter  string `json:",omitempty" bexpr:"-"`
	CreateIndex uint64 `json:",omitempty" bexpr:"-"`
	ModifyIndex uint64 `json:",omitempty" bexpr:"-"`
}

// checkDefinitionOut is how a check runs (HealthCheck.Definition); unset
// fields are left out, as Consul does.
type checkDefinitionOut struct {
	HTTP                           string `json:",omitempty"`
	TCP                            string `json:",omitempty"`
	GRPC                           string `json:",omitempty"`
	Interval                       string `json:",omitempty"`
	Timeout                        string `json:",omitempty"`
	TTL                            string `json:",omitempty"`
	DeregisterCriticalServiceAfter string `json:",omitempty"`
}

// healthCheck is one check (Consul's HealthCheck, also AgentCheck).
type healthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Interval    string
	Timeout     string
	ExposedPort int
	Definition  checkDefinitionOut `bexpr:"-"`
	CreateIndex uint64             `bexpr:"-"`
	ModifyIndex uint64             `bexpr:"-"`
}

// serviceEntry is one answer of /v1/health/service.
type serviceEntry struct {
	Node    *wireNode
	Service *agentService
	Checks  []healthCheck
}

// catalogService is one answer of /v1/catalog/service: node and service
// flattened.
type catalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceKind              string
	ServiceID                string
	ServiceName              string
	ServiceTags              []string
	ServiceAddress           string
	ServiceTaggedAddresses   map[string]serviceAddress `json:",omitempty"`
	ServiceWeights           weights
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceEnableTagOverride bool
	CreateIndex              uint64 `bexpr:"-"`
	ModifyIndex              uint64 `bexpr:"-"`
}

// catalogNode is the answer of /v1/catalog/node/{node}.
type catalogNode struct {
	Node     *wireNode
	Services map[string]*agentService
}

// member is one gossip member (/v1/agent/members, agent/self's Member).
type member struct {
	Name        string
	Addr        string
	Port        int
	Tags        map[string]string
	Status      int
	ProtocolMin int
	ProtocolMax int
	ProtocolCur int
	DelegateMin int
	DelegateMax int
	DelegateCur int
}

// serfHealthID is the node-level check every Consul node carries; here it
// is this agent's own liveness, passing while it answers.
const serfHealthID = "serfHealth"

// nodeCheck is this agent's node-level check.
func (a *API) nodeCheck() healthCheck {
	return healthCheck{
		Node: a.node.Node, CheckID: serfHealthID, Name: "Serf Health Status", Status: string(registry.Passing),
		Output: "Agent alive and reachable", ServiceTags: []string{}, CreateIndex: 1, ModifyIndex: 1,
	}
}

// toAgentService translates an instance.
func (a *API) toAgentService(in *registry.Instance) *agentService {
	return &agentService{
		ID:          in.ID,
		Service:     in.Service,
		Tags:        nonNilTags(in.Tags),
		Meta:        nonNilMeta(in.Meta),
		Port:        in.Port,
		Address:     in.Address,
		Weights:     weights{Passing: in.Weight, Warning: 1},
		CreateIndex: in.CreateIndex,
		ModifyIndex: in.ModifyIndex,
	}
}

// toHealthChecks translates an instance's checks.
func (a *API) toHealthChecks(in *registry.Instance, dst []healthCheck) []healthCheck {
	tags := nonNilTags(in.Tags)
	for i := range in.Checks {
		c := &in.Checks[i]
		hc := healthCheck{
			Node: a.node.Node, CheckID: consulCheckID(in, c), Name: c.Name, Status: string(c.Status),
			Output: c.Output, ServiceID: in.ID, ServiceName: in.Service, ServiceTags: tags, Type: string(c.Type),
			CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex,
		}
		if hc.Name == "" {
			hc.Name = "Service '" + in.Service + "' check"
		}
		if c.Type == registry.CheckMaintenance {
			// Consul keeps the reason for maintenance in Notes.
			hc.Notes, hc.Output = c.Output, ""
		}
		def := &hc.Definition
		def.DeregisterCriticalServiceAfter = duration(c.DeregisterAfter).String()
		switch c.Type {
		case registry.CheckTTL:
			def.TTL = duration(c.TTL).String()
		case registry.CheckHTTP:
			def.HTTP = c.Target
		case registry.CheckTCP:
			def.TCP = c.Target
		case registry.CheckGRPC:
			def.GRPC = c.Target
		}
		if c.Type != registry.CheckTTL {
			hc.Interval, hc.Timeout = duration(c.Interval).String(), duration(c.Timeout).String()
			def.Interval, def.Timeout = hc.Interval, hc.Timeout
		}
		dst = append(dst, hc)
	}
	return dst
}

// toServiceEntry is an instance as /v1/health/service answers it: the
// node, the service and the node's and the service's checks.
func (a *API) toServiceEntry(in *registry.Instance) serviceEntry {
	checks := make([]healthCheck, 0, 1+len(in.Checks))
	checks = append(checks, a.nodeCheck())
	return serviceEntry{Node: &a.node, Service: a.toAgentService(in), Checks: a.toHealthChecks(in, checks)}
}

// toCatalogService is an instance as /v1/catalog/service answers it.
func (a *API) toCatalogService(in *registry.Instance) catalogService {
	n := &a.node
	return catalogService{
		ID: n.ID, Node: n.Node, Address: n.Address, Datacenter: n.Datacenter,
		TaggedAddresses: n.TaggedAddresses, NodeMeta: n.Meta,
		ServiceID: in.ID, ServiceName: in.Service, ServiceTags: nonNilTags(in.Tags), ServiceAddress: in.Address,
		ServiceWeights: weights{Passing: in.Weight, Warning: 1}, ServiceMeta: nonNilMeta(in.Meta), ServicePort: in.Port,
		CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex,
	}
}

// Check IDs. Consul names a check uniquely per agent, roster per
// instance. The mapping, in both directions:
//
//   - a check registered through this API keeps its Consul CheckID as its
//     registry ID: Consul's defaults "service:<service id>" (a single
//     Check) and "service:<service id>:<n>" (Checks[n-1]), or the CheckID
//     the client chose;
//   - a registry ID that holds a ':' is shown as it is;
//   - one without (the native API's "ttl", "http-0", or a chosen CheckID
//     such as "web-ttl") is shown as "service:<instance id>:<check id>",
//     which keeps it unique on the node. A chosen one is also found as
//     chosen ("web-ttl") while exactly one instance has a check of that ID.
//
// findCheck resolves these forms back to the instance and its check.
func consulCheckID(in *registry.Instance, c *registry.Check) string {
	if strings.Contains(c.ID, ":") {
		return c.ID
	}
	return "service:" + in.ID + ":" + c.ID
}

// checkOf returns the instance's check that Consul calls id, or nil.
func checkOf(in *registry.Instance, id string) *registry.Check {
	for i := range in.Checks {
		if consulCheckID(in, &in.Checks[i]) == id {
			return &in.Checks[i]
		}
	}
	return nil
}

// defaultCheckID is the Consul ID of check n (from 1) of a service when
// the registration names none; single is a lone Check.
func defaultCheckID(serviceID string, n int, single bool) string {
	if single {
		return "service:" + serviceID
	}
	return "service:" + serviceID + ":" + strconv.Itoa(n)
}

func nonNilTags(t []string) []string {
	if t == nil {
		return []string{}
	}
	return t
}

func nonNilMeta(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// encode marshals an answer with a trailing newline, indented for ?pretty.
func encode(v any, pretty bool) ([]byte, error) {
	var b []byte
	var err error
	if pretty {
		b, err = json.MarshalIndent(v, "", "    ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
