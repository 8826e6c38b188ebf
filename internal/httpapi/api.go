// Package httpapi is roster's native JSON API over HTTP: registration,
// heartbeats, queries with blocking (?index=&wait=), a Server-Sent Events
// watch of a service, liveness and readiness, Prometheus metrics and
// snapshot save/restore. It owns its wire types and translates errors to
// HTTP once (errors.go); filtering and health semantics live in registry.
package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rosterhq/roster/internal/answers"
)

// Snapshots saves and restores the whole registry (operator use).
type Snapshots interface {
	Save(w io.Writer) error
	Restore(r io.Reader) error
}

// Config configures the API.
type Config struct {
	Registry  Registry
	Snapshots Snapshots
	Logger    *slog.Logger
	// Metrics registers the API's metrics; Gatherer serves /metrics.
	Metrics  prometheus.Registerer
	Gatherer prometheus.Gatherer
	// Draining reports that the agent is shutting down: /readyz fails
	// while in-flight requests finish.
	Draining func() bool
	// Serving reports why the agent cannot serve reads or, as leader,
	// accept writes (no leader known, a leader not heard from, the last
	// write failed), or nil: /readyz fails with its reason. Nil means
	// always serving.
	Serving func() error
	// KeepAlive is the interval of SSE keep-alive comments (default 15s).
	KeepAlive time.Duration
	// MaxSnapshotBytes bounds a snapshot upload (default 512 MiB).
	MaxSnapshotBytes int64
}

// API serves the native HTTP API.
type API struct {
	reg     Registry
	snaps   Snapshots
	log     *slog.Logger
	cfg     Config
	cache   *answers.Cache
	metrics *metrics
	mux     *http.ServeMux
}

// New returns the API; mount it with Handler.
func New(cfg Config) *API {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if cfg.MaxSnapshotBytes <= 0 {
		cfg.MaxSnapshotBytes = 512 << 20
	}
	if cfg.Draining == nil {
		cfg.Draining = func() bool { return false }
	}
	if cfg.Serving == nil {
		cfg.Serving = func() error { return nil }
	}
	a := &API{reg: cfg.Registry, snaps: cfg.Snapshots, log: cfg.Logger, cfg: cfg, cache: answers.New(0, 0)}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "httpapi")
	a.metrics = newMetrics(cfg.Metrics)
	a.mux = http.NewServeMux()
	a.routes(cfg.Gatherer)
	return a
}

func (a *API) routes(g prometheus.Gatherer) {
	a.handle("GET /v1/services", a.listServices)
	a.handle("GET /v1/services/{service}/instances", a.listInstances)
	a.handle("POST /v1/services/{service}/instances", a.create)
	a.handle("PUT /v1/services/{service}/instances/{id}", a.upsert)
	a.handle("GET /v1/services/{service}/instances/{id}", a.get)
	a.handle("DELETE /v1/services/{service}/instances/{id}", a.deregister)
	a.handle("PUT /v1/services/{service}/instances/{id}/heartbeat", a.heartbeat)
	a.handle("PUT /v1/heartbeats", a.heartbeats)
	a.handle("GET /v1/services/{service}/watch", a.watch)
	a.handle("GET /v1/registry/snapshot", a.snapshotSave)
	a.handle("PUT /v1/registry/snapshot", a.snapshotRestore)
	a.handle("GET /healthz", a.live)
	a.handle("GET /readyz", a.readyz)
	if g != nil {
		a.mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
}

// handle mounts a handler with per-route metrics.
func (a *API) handle(pattern string, h http.HandlerFunc) {
	a.mux.Handle(pattern, a.metrics.instrument(pattern, h))
}

// Handler returns the API's http.Handler. Other front doors that share the
// listener mount beside it with Mount.
func (a *API) Handler() http.Handler { return a.mux }

// Mount adds another front door's handler under pattern on the same mux.
func (a *API) Mount(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

func (a *API) live(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	switch {
	case a.cfg.Draining():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
	case !a.reg.Ready():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "restoring"})
	default:
		if err := a.cfg.Serving(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not serving", "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "index": a.reg.LastIndex()})
	}
}
