package consulapi

import (
	"net/http"
	"slices"
	"strings"
)

// unsupportedPrefixes are parts of Consul's API roster does not serve;
// they answer 501 rather than anything a client could take for success.
var unsupportedPrefixes = []string{
	"/v1/kv/", "/v1/session/", "/v1/acl/", "/v1/connect/", "/v1/query", "/v1/query/", "/v1/event/",
	"/v1/txn", "/v1/coordinate/", "/v1/operator/", "/v1/config", "/v1/config/", "/v1/snapshot",
	"/v1/internal/", "/v1/peering/", "/v1/peerings", "/v1/discovery-chain/", "/v1/namespace/",
	"/v1/namespaces", "/v1/partition/", "/v1/partitions", "/v1/exported-services",
	"/v1/imported-services", "/v1/lock/", "/v1/semaphore/",
}

func (a *API) routes() {
	get := []string{http.MethodGet}
	put := []string{http.MethodPut}
	// python-consul 0.7 sends GET for these writes.
	pyWrite := put
	if a.getWrites {
		pyWrite = []string{http.MethodPut, http.MethodGet}
	}
	a.route("/v1/agent/service/register", put, a.agentRegister)
	a.route("/v1/agent/service/deregister/{id}", pyWrite, noBrowserGET(a.agentDeregister))
	a.route("/v1/agent/service/maintenance/{id}", put, a.agentMaintenance)
	a.route("/v1/agent/service/{id}", get, a.agentService)
	a.route("/v1/agent/services", get, a.agentServices)
	a.route("/v1/agent/checks", get, a.agentChecks)
	a.route("/v1/agent/check/pass/{id}", pyWrite, noBrowserGET(a.checkUpdater("pass")))
	a.route("/v1/agent/check/warn/{id}", pyWrite, noBrowserGET(a.checkUpdater("warn")))
	a.route("/v1/agent/check/fail/{id}", pyWrite, noBrowserGET(a.checkUpdater("fail")))
	a.route("/v1/agent/check/update/{id}", put, a.checkUpdater("update"))
	a.route("/v1/agent/self", get, a.agentSelf)
	a.route("/v1/agent/members", get, a.agentMembers)

	a.route("/v1/health/service/{service}", get, a.healthService)
	a.route("/v1/health/checks/{service}", get, a.healthChecks)
	a.route("/v1/health/state/{state}", get, a.healthState)
	a.route("/v1/health/node/{node}", get, a.healthNode)

	a.route("/v1/catalog/services", get, a.catalogServices)
	a.route("/v1/catalog/service/{service}", get, a.catalogService)
	a.route("/v1/catalog/nodes", get, a.catalogNodes)
	a.route("/v1/catalog/node/{node}", get, a.catalogNode)
	a.route("/v1/catalog/datacenters", get, a.catalogDatacenters)
	a.route("/v1/catalog/register", put, a.catalogRegister)
	a.route("/v1/catalog/deregister", put, a.catalogDeregister)

	a.route("/v1/status/leader", get, a.statusLeader)
	a.route("/v1/status/peers", get, a.statusPeers)

	for _, p := range []string{"/v1/health/service/{$}", "/v1/health/checks/{$}", "/v1/catalog/service/{$}"} {
		a.route(p, get, func(w http.ResponseWriter, r *http.Request) {
			writeText(w, http.StatusBadRequest, "Missing service name")
		})
	}
	for _, p := range append(unsupportedPrefixes, "/v1/agent/", "/v1/health/", "/v1/catalog/", "/v1/status/") {
		a.handle(p, a.metrics.instrument("unsupported", http.HandlerFunc(a.unsupported)))
	}
}

// handle adds a pattern to the API's own mux and to the list MountOn
// mounts, so that a mounted API costs one routing step, not two.
func (a *API) handle(pattern string, h http.Handler) {
	a.mux.Handle(pattern, h)
	a.patterns = append(a.patterns, mounted{pattern, h})
}

type mounted struct {
	pattern string
	h       http.Handler
}

// route mounts h at pattern for methods, with metrics; other methods get
// Consul's 405.
func (a *API) route(pattern string, methods []string, h http.HandlerFunc) {
	// HEAD is a GET without the body, for reads only: a GET that writes
	// (python-consul 0.7's) must not be reachable by HEAD.
	if slices.Equal(methods, []string{http.MethodGet}) {
		methods = []string{http.MethodGet, http.MethodHead}
	}
	allow := strings.Join(methods, ", ")
	a.handle(pattern, a.metrics.instrument(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(methods, r.Method) {
			w.Header().Set("Allow", allow)
			writeText(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed")
			return
		}
		h(w, r)
	})))
}

func (a *API) unsupported(w http.ResponseWriter, r *http.Request) {
	writeText(w, http.StatusNotImplemented, "roster does not implement "+r.URL.Path+
		" of the Consul API: only service discovery (/v1/agent services and checks, /v1/health, /v1/catalog, /v1/status) is served")
}

// noBrowserGET refuses a write sent as GET by a web browser: a page on
// any site could otherwise make a browser on the agent's machine
// deregister services or fail checks with an image tag. Browsers mark
// their requests (Sec-Fetch-Site, and Origin on cross-origin ones);
// python-consul, which sends these writes as GET, sends neither.
func noBrowserGET(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			site := r.Header.Get("Sec-Fetch-Site")
			if (site != "" && site != "same-origin" && site != "none") || r.Header.Get("Origin") != "" {
				writeText(w, http.StatusForbidden, "Refusing a write sent as GET by a browser; use PUT")
				return
			}
		}
		h(w, r)
	}
}
