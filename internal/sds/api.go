// Package sds serves the discovery-service REST API that Envoy's v1 SDS
// client (and v2 REST_LEGACY clusters) poll, and that hosts register with
// by periodic form POSTs: /v1/registration and /v1/loadbalancing, with the
// routes, fields, status codes and bodies of the service it replaces.
//
// It is a thin front door over registry.Service. A host is an ordinary
// roster instance of the service, identified by its IP (the instance ID
// is the IP's canonical text), with a TTL check of HostTTL: a check-in
// that changes nothing is a registry heartbeat, which moves a lease in
// memory and writes nothing to the log; the lease table expires hosts that
// stop checking in and deregister_after removes them. Tags are kept in
// the instance's metadata (see tags.go) so that they read back as sent,
// and also fill the model's zone, region, canary and weight, so the same
// hosts serve DNS and the other APIs, and instances registered elsewhere
// are listed here.
//
// It does not store anything itself: answers are cached in memory only
// (an answer per service index, and the optional CACHE_TTL cache).
package sds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/internal/registry"
)

// Cache types, as CACHE_TYPE names them.
const (
	CacheNull   = "null"
	CacheSimple = "simple"
)

// Config configures the API. Start from DefaultConfig.
type Config struct {
	Registry Registry
	Logger   *slog.Logger
	Metrics  prometheus.Registerer
	// HostTTL is how long a host stays listed after its last check-in;
	// it is the TTL of the host's lease, and how long an expired host is
	// kept before it is removed (between 1s and 24h).
	HostTTL time.Duration
	// CacheType is CacheNull (answers always fresh) or CacheSimple
	// (service answers served for CacheTTL after they were built).
	CacheType string
	CacheTTL  time.Duration
	// Env is reported as "env" in every answer.
	Env string
	// TrustedProxies are the peers whose X-Forwarded-For is believed
	// (see clientAddr). Empty: the header is ignored.
	TrustedProxies []netip.Prefix
	// AutoIPNets are the networks an auto_ip address must be in. Empty:
	// auto_ip is always refused.
	AutoIPNets []netip.Prefix
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LastContact reports how long ago this agent last heard from its
	// cluster's leader: 0 on the leader, negative when it never has. nil
	// (a single agent) is never stale. Called for every read, from
	// request goroutines, concurrently; it must not block.
	LastContact func() time.Duration
	// MaxStale: while LastContact is longer than this, or negative, reads
	// of hosts (/v1/registration/...) answer 503 instead of a possibly
	// stale list. Zero (the default) is no limit.
	MaxStale time.Duration
}

// DefaultConfig returns the original service's defaults: a 600 s host
// TTL, no cache (30 s when the simple cache is chosen), env
// "development", X-Forwarded-For believed from loopback proxies only, and
// auto_ip limited to 192.168.0.0/16.
func DefaultConfig() Config {
	return Config{
		HostTTL:        600 * time.Second,
		CacheType:      CacheNull,
		CacheTTL:       30 * time.Second,
		Env:            "development",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		AutoIPNets:     []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")},
	}
}

// Validate names the first bad setting.
func (c *Config) Validate() error {
	if c.HostTTL < time.Second || c.HostTTL > registry.MaxDuration {
		return fmt.Errorf("host ttl %v: must be between 1s and 24h", c.HostTTL)
	}
	switch c.CacheType {
	case CacheNull, CacheSimple:
	default:
		return fmt.Errorf("cache type %q: must be %s or %s", c.CacheType, CacheNull, CacheSimple)
	}
	if c.CacheType == CacheSimple && c.CacheTTL <= 0 {
		return fmt.Errorf("cache ttl %v: must be positive with the %s cache", c.CacheTTL, CacheSimple)
	}
	if c.MaxStale < 0 {
		return fmt.Errorf("max stale %v: must not be negative", c.MaxStale)
	}
	return nil
}

// API serves the SDS routes. It is an http.Handler for the SDS routes
// alone (/v1/registration/, /v1/loadbalancing/, /healthcheck); Mount adds
// them to another mux. Safe for concurrent use.
type API struct {
	reg     Registry
	log     *slog.Logger
	cfg     Config
	now     func() time.Time
	memo    *memo
	cache   *ttlCache // nil unless CacheSimple
	metrics *metrics
}

// New returns the API, or the Config's first bad setting.
func New(cfg Config) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &API{reg: cfg.Registry, log: cfg.Logger, cfg: cfg, now: cfg.Now, memo: newMemo(), metrics: newMetrics(cfg.Metrics)}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "sds")
	if a.now == nil {
		a.now = time.Now
	}
	if cfg.CacheType == CacheSimple {
		a.cache = newTTLCache(cfg.CacheTTL)
	}
	return a, nil
}

// Patterns are the mux patterns the API answers under.
var Patterns = []string{"/v1/registration/", "/v1/loadbalancing/", "/healthcheck"}

// Mount adds the API's routes to a mux through mount (such as
// httpapi.API.Mount), so it shares that listener.
func (a *API) Mount(mount func(pattern string, h http.Handler)) {
	for _, p := range Patterns {
		mount(p, a)
	}
}

// ServeHTTP routes a request and counts it by route and status.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.metrics.observe(w, r, a.route)
}

// Route labels of the metrics.
const (
	routeService     = "GET /v1/registration/{service}"
	routeRepo        = "GET /v1/registration/repo/{service_repo_name}"
	routeRegister    = "POST /v1/registration/{service}"
	routeDelete      = "DELETE /v1/registration/{service}/{ip_address}"
	routeWeightAll   = "POST /v1/loadbalancing/{service}"
	routeWeightOne   = "POST /v1/loadbalancing/{service}/{ip_address}"
	routeHealthcheck = "GET /healthcheck"
	routeOther       = "other"
)

// route answers r and returns its route label. Paths are matched per
// segment (each unescaped), and one trailing slash is ignored.
func (a *API) route(w http.ResponseWriter, r *http.Request) string {
	path := r.URL.EscapedPath()
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case path == "/healthcheck" || path == "/healthcheck/":
		if !get {
			methodNotAllowed(w, "GET, HEAD")
			return routeOther
		}
		a.healthcheck(w)
		return routeHealthcheck
	case strings.HasPrefix(path, "/v1/registration/"):
		return a.routeRegistration(w, r, segments(path[len("/v1/registration/"):]), get)
	case strings.HasPrefix(path, "/v1/loadbalancing/"):
		seg := segments(path[len("/v1/loadbalancing/"):])
		if len(seg) < 1 || len(seg) > 2 {
			break
		}
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return routeOther
		}
		if len(seg) == 1 {
			a.setWeights(w, r, seg[0], "", false)
			return routeWeightAll
		}
		a.setWeights(w, r, seg[0], seg[1], true)
		return routeWeightOne
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	return routeOther
}

func (a *API) routeRegistration(w http.ResponseWriter, r *http.Request, seg []string, get bool) string {
	switch {
	case len(seg) == 1 && get:
		a.getService(w, r, seg[0])
		return routeService
	case len(seg) == 1 && r.Method == http.MethodPost:
		a.register(w, r, seg[0])
		return routeRegister
	case len(seg) == 1 && r.Method == http.MethodDelete:
		writeError(w, badRequest("DELETE needs the host's address: /v1/registration/{service}/{ip_address}"))
		return routeDelete
	case len(seg) == 1:
		methodNotAllowed(w, "GET, HEAD, POST, DELETE")
		return routeOther
	case len(seg) == 2 && get && seg[0] == "repo":
		a.getRepo(w, r, seg[1])
		return routeRepo
	case len(seg) == 2 && r.Method == http.MethodDelete:
		a.deleteHost(w, r, seg[0], seg[1])
		return routeDelete
	case len(seg) == 2 && (get || r.Method == http.MethodPost):
		writeError(w, badRequest("no such resource: a host's address goes only with DELETE; use /v1/registration/{service}"))
		return routeOther
	case len(seg) == 2:
		methodNotAllowed(w, "DELETE")
		return routeOther
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	return routeOther
}

// segments splits an escaped path tail into unescaped segments; nil when
// a segment is empty or badly escaped.
func segments(tail string) []string {
	tail = strings.TrimSuffix(tail, "/")
	if tail == "" {
		return nil
	}
	parts := strings.Split(tail, "/")
	for i, p := range parts {
		s, err := url.PathUnescape(p)
		if err != nil || s == "" {
			return nil
		}
		parts[i] = s
	}
	return parts
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
}

// healthcheck answers "OK" once the registry's state is restored.
func (a *API) healthcheck(w http.ResponseWriter) {
	if !a.reg.Ready() {
		writeError(w, registry.ErrNotReady)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("OK"))
}

// getService answers GET /v1/registration/{service}: the service's live
// hosts, from the CACHE_TTL cache when it has them.
func (a *API) getService(w http.ResponseWriter, r *http.Request, name string) {
	if err := a.checkStale(); err != nil {
		writeError(w, err)
		return
	}
	now := a.now()
	key := registry.NormalizeName(name)
	if a.cache != nil {
		if b, ok := a.cache.get(key, name, now); ok {
			a.metrics.cacheHits.Inc()
			writeBody(w, http.StatusOK, b)
			return
		}
	}
	e, err := a.serviceAnswer(r.Context(), name)
	if err != nil {
		writeError(w, err)
		return
	}
	if a.cache != nil && e.hosts > 0 {
		a.cache.put(key, name, e.body, now)
	}
	writeBody(w, http.StatusOK, e.body)
}

// serviceAnswer builds the answer for a service, or reuses the one built
// at the service's current index.
func (a *API) serviceAnswer(ctx context.Context, name string) (memoEntry, error) {
	if !a.reg.Ready() {
		return memoEntry{}, registry.ErrNotReady
	}
	key := registry.NormalizeName(name)
	if e, ok := a.memo.get(key, name, a.reg.ServiceIndex(key)); ok {
		a.metrics.memoHits.Inc()
		return e, nil
	}
	res, err := a.reg.Instances(ctx, registry.Query{Service: name}, 0, 0)
	if err != nil {
		return memoEntry{}, err
	}
	hosts := hostsOf(res.Instances)
	e := memoEntry{name: name, index: res.Index, hosts: len(hosts), body: encodeAnswer(serviceAnswer{Service: name, Env: a.cfg.Env, Hosts: hosts})}
	a.memo.put(key, e)
	return e, nil
}

// getRepo answers GET /v1/registration/repo/{service_repo_name} from the
// registry's repo index. It is never cached.
func (a *API) getRepo(w http.ResponseWriter, r *http.Request, repo string) {
	if err := a.checkStale(); err != nil {
		writeError(w, err)
		return
	}
	ins, err := a.reg.InstancesByRepo(repo)
	if err != nil {
		writeError(w, err)
		return
	}
	writeBody(w, http.StatusOK, encodeAnswer(repoAnswer{ServiceRepoName: repo, Env: a.cfg.Env, Hosts: hostsOf(ins)}))
}

// checkStale refuses a read while this agent has not heard from a leader
// for longer than MaxStale (a registry.ErrNotLeader: 503 with
// Retry-After, as while no leader is known), and counts it.
func (a *API) checkStale() error {
	if a.cfg.MaxStale <= 0 || a.cfg.LastContact == nil {
		return nil
	}
	d := a.cfg.LastContact()
	switch {
	case d < 0:
		a.metrics.staleRefused.Inc()
		return fmt.Errorf("stale: no contact with a leader since this agent started (max-stale %v): %w", a.cfg.MaxStale, registry.ErrNotLeader)
	case d > a.cfg.MaxStale:
		a.metrics.staleRefused.Inc()
		return fmt.Errorf("stale: no contact with the leader for %v (max-stale %v): %w", d.Round(time.Millisecond), a.cfg.MaxStale, registry.ErrNotLeader)
	}
	return nil
}

// refuse answers a refused write and logs why at debug level.
func (a *API) refuse(w http.ResponseWriter, r *http.Request, err error) {
	var rerr *requestError
	if errors.As(err, &rerr) || errors.As(err, new(*registry.ValidationError)) {
		a.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "reason", err.Error())
	} else {
		a.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, err)
}
