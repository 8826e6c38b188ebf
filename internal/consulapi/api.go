// Package consulapi serves the service-discovery part of Consul's HTTP API
// (/v1/agent, /v1/health, /v1/catalog, /v1/status) on the agent's HTTP
// listener, so that Consul clients and tools (the Go api package,
// python-consul, Prometheus's consul_sd_configs, ...) work against roster
// unchanged.
//
// It is a thin adapter over registry.Service: it owns Consul's wire types,
// decodes Consul's lenient request bodies, translates both ways and maps
// errors to Consul's status codes and texts. Filtering by health and tags
// and blocking live in registry. The only state it keeps is a memo of
// which service an instance ID belongs to (Consul names instances by ID
// alone), always checked against the registry, and encoded answers per
// index.
//
// The agent is one Consul node: its name, address and datacenter come
// from the configuration. Parts of Consul's API that roster does not
// implement (KV, sessions, ACLs, Connect, prepared queries, ...) answer
// 501 with a plain-text reason, never a success.
package consulapi

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/answers"
)

// CompatVersion is the Consul version whose HTTP API shapes this package
// follows; agent/self reports it as Config.Version.
const CompatVersion = "1.21.0"

// Cluster is what the status endpoints and the X-Consul-KnownLeader and
// X-Consul-LastContact headers read of the replicated log
// (*raftlog.Node). Called from request goroutines.
type Cluster interface {
	IsLeader() bool
	// Leader returns the leader's address and ID, empty when unknown.
	Leader() (addr, id string)
	// LastContact is when this node last heard from the leader.
	LastContact() time.Time
}

// Config configures the API.
type Config struct {
	Registry Registry
	// Cluster reports leadership; nil means this agent always leads.
	Cluster Cluster
	// NodeName is the Consul node name of this agent.
	NodeName string
	// NodeID is the agent's stable ID; the node's ID is a UUID derived
	// from it (or it, when it is a UUID).
	NodeID string
	// HTTPAddr is the host:port the API is served on.
	HTTPAddr string
	// Address is the node's address; empty means the host of HTTPAddr,
	// or when that is unspecified (0.0.0.0, ::) a private address of
	// this host.
	Address string
	// Datacenter is the node's datacenter (default dc1).
	Datacenter string
	// GETWrites accepts GET as well as PUT on the agent endpoints that
	// python-consul 0.7 calls with GET (deregister, check pass/warn/fail).
	GETWrites bool
	Logger    *slog.Logger
	// Metrics registers the API's metrics; nil registers none.
	Metrics prometheus.Registerer
}

// API serves the Consul-compatible HTTP API.
type API struct {
	reg       Registry
	cluster   Cluster
	log       *slog.Logger
	node      wireNode
	httpAddr  string
	getWrites bool
	ids       *idMemo
	cache     *answers.Cache
	metrics   *metrics
	mux       *http.ServeMux
	patterns  []mounted // what MountOn mounts
}

// New returns the API; mount it with MountOn.
func New(cfg Config) *API {
	if cfg.Datacenter == "" {
		cfg.Datacenter = "dc1"
	}
	a := &API{
		reg: cfg.Registry, cluster: cfg.Cluster, log: cfg.Logger, httpAddr: cfg.HTTPAddr, getWrites: cfg.GETWrites,
		ids: newIDMemo(), cache: answers.New(0, 0), metrics: newMetrics(cfg.Metrics), mux: http.NewServeMux(),
	}
	if a.cluster == nil {
		a.cluster = soloCluster{}
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "consulapi")
	addr := cfg.Address
	if addr == "" {
		addr = nodeAddress(cfg.HTTPAddr)
	}
	a.node = wireNode{
		ID: nodeUUID(cfg.NodeID), Node: cfg.NodeName, Address: addr, Datacenter: cfg.Datacenter,
		TaggedAddresses: taggedAddresses(addr), Meta: map[string]string{"consul-network-segment": ""},
		CreateIndex: 1, ModifyIndex: 1,
	}
	a.routes()
	return a
}

// Mounter is where the API mounts: the native API's mux (httpapi.API).
type Mounter interface {
	Mount(pattern string, h http.Handler)
}

// MountOn mounts the API's paths on m: its routes, and Consul's prefixes
// (/v1/agent/, /v1/health/, /v1/catalog/, /v1/status/, /v1/kv/, ...),
// none of which the native API uses.
func (a *API) MountOn(m Mounter) {
	for _, p := range a.patterns {
		m.Mount(p.pattern, p.h)
	}
}

// ServeHTTP serves the API's paths.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

type soloCluster struct{}

func (soloCluster) IsLeader() bool           { return true }
func (soloCluster) Leader() (string, string) { return "", "self" }
func (soloCluster) LastContact() time.Time   { return time.Now() }

// nodeUUID returns id when it is a UUID, else a UUID derived from it.
func nodeUUID(id string) string {
	if isUUID(id) {
		return id
	}
	sum := sha256.Sum256([]byte("roster-node:" + id))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// nodeAddress is the host of the listen address or, for an unspecified
// one, the first private unicast address of this host (loopback failing
// that), as Consul picks its bind address.
func nodeAddress(listen string) string {
	host, _, err := net.SplitHostPort(listen)
	if err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			return host
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.IsPrivate() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// taggedAddresses are the node's addresses by name, as Consul tags them.
func taggedAddresses(addr string) map[string]string {
	family := "ipv4"
	if ip := net.ParseIP(addr); ip != nil && ip.To4() == nil {
		family = "ipv6"
	}
	return map[string]string{"lan": addr, "lan_" + family: addr, "wan": addr, "wan_" + family: addr}
}

// httpPort is the port of the API's listen address, 0 when unknown.
func (a *API) httpPort() int {
	_, p, err := net.SplitHostPort(a.httpAddr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
