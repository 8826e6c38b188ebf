// Package proxy is roster's built-in load-balancing reverse proxy: HTTP/1.1
// and HTTP/2 (h2c, cleartext, prior knowledge) in, HTTP/1.1 or h2c out, to
// the healthy instances of a service chosen by the request's host or path
// prefix.
//
// It reads the registry only through the Go SDK (client.Resolver): a cache
// of passing instances fed by blocking queries, so a deregistered instance
// gets no new request once the change reaches the resolver, while requests
// already on it finish. Per route it keeps one client.Target (tag and
// metadata filters, weighted subsets, zone preference, the SDK's balancing
// policies and passive outlier ejection). On top it adds what a proxy
// needs: retries of idempotent requests on another instance, a bound on
// pending requests per route (503 past it), connection pools and limits
// per instance, streaming in both directions, X-Forwarded-* headers,
// metrics per instance and an optional access log. Most requests take the
// proxy's own path (forward.go over h1.Transport); protocol upgrades go
// through httputil.ReverseProxy. Serve serves it with h1.Server; both go
// through the http.Handler and http.RoundTripper seams only, so net/http's
// server and transport could take their place.
//
// It owns no registry state: only its routes, its connection pools and
// the targets it holds in the resolver.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/balance"
	"github.com/rosterhq/roster/internal/proxy/h1"
)

// Proxy is an http.Handler that proxies requests to service instances.
// It is safe for concurrent use. Close releases its targets.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	table   *table
	domains []string
	defRule Route // the route of default-host services (no Host/PathPrefix)
	rp      *httputil.ReverseProxy
	fast    *h1.Transport   // HTTP/1.1 to instances, most requests
	h1, h2c *http.Transport // HTTP/1.1 for the rest (upgrades...), h2c
	m       *metrics
	conns   *connCounter
	stats   sync.Map // *balance.Endpoint -> *endpointStats
	noRoute *upstream

	mu      sync.RWMutex
	dynamic map[string]*upstream // default-host services
	closed  bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// upstream is where one route (or one default-host service) sends its
// requests: a target over the service's instances, the transport that
// reaches them, and the route's pending-request bound.
type upstream struct {
	service    string
	route      *route // nil for a default-host service
	filter     client.Filter
	hashHeader string
	h2c        bool // speak h2c to the instances
	maxPending int64

	pending atomic.Int64
	target  atomic.Pointer[client.Target]
	closed  atomic.Bool
	lastUse atomic.Int64 // unix nanoseconds, for default-host services

	codes    codeCounters // downstream answers by code
	duration prometheus.Observer
	retries  prometheus.Counter
	overflow prometheus.Counter
}

// New builds a proxy. It starts one goroutine (the sweep of idle services
// and stale metrics), which Close stops.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{cfg: cfg, log: log.With("component", "proxy"), m: newMetrics(cfg.Metrics),
		dynamic: map[string]*upstream{}, stop: make(chan struct{})}
	for _, d := range cfg.Domains {
		p.domains = append(p.domains, strings.ToLower(strings.Trim(d, ".")))
	}
	p.conns = &connCounter{gauge: p.m.conns, open: map[string]int{}}
	p.h1 = p.newTransport(false)
	p.h2c = p.newTransport(true)
	d := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	p.fast = &h1.Transport{Dial: p.conns.wrap(d.DialContext), MaxIdlePerHost: cfg.MaxIdleConnsPerUpstream,
		MaxConnsPerHost: cfg.MaxConnsPerUpstream, IdleConnTimeout: cfg.IdleConnTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout}
	p.defRule = Route{Balancer: cfg.Balancer, HashHeader: cfg.HashHeader}
	p.table = newTable(cfg.Routes)
	for _, r := range p.table.routes {
		r.up = p.newUpstream(r.Service, r)
	}
	p.noRoute = p.newUpstream("", nil)
	p.rp = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: roundTripper(p.roundTrip),
		// A streamed answer (unknown length, or server-sent events) is
		// flushed on every write; one of known length at least every
		// FlushInterval, so a slow one still reaches the client as it
		// comes while a fast one costs one write.
		FlushInterval: cfg.FlushInterval,
		BufferPool:    bufferPool{},
		ErrorHandler:  p.errorHandler,
		ErrorLog:      slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	p.wg.Go(p.sweep)
	return p, nil
}

func (p *Proxy) newTransport(h2c bool) *http.Transport {
	d := &net.Dialer{Timeout: p.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 nil, // instances are reached directly
		DialContext:           p.conns.wrap(d.DialContext),
		MaxIdleConnsPerHost:   p.cfg.MaxIdleConnsPerUpstream,
		MaxConnsPerHost:       p.cfg.MaxConnsPerUpstream,
		IdleConnTimeout:       p.cfg.IdleConnTimeout,
		ResponseHeaderTimeout: p.cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// A proxy passes encodings through: no gzip added or undone.
		DisableCompression: true,
	}
	if t.MaxIdleConnsPerHost == 0 {
		t.MaxIdleConnsPerHost = -1 // none kept (0 would mean net/http's default of 2)
	}
	if h2c {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		t.Protocols = &protos
	}
	return t
}

func (p *Proxy) newUpstream(service string, r *route) *upstream {
	rule := &p.defRule
	if r != nil {
		rule = &r.Route
	}
	f := rule.filter()
	if f.Zone == "" {
		f.Zone = p.cfg.Zone
	}
	up := &upstream{
		service: service, route: r, filter: f, hashHeader: rule.HashHeader, h2c: rule.Protocol == "h2c",
		maxPending: int64(p.cfg.MaxPending),
		codes:      codeCounters{vec: p.m.requests, labels: []string{service}},
		duration:   p.m.duration.WithLabelValues(service),
		retries:    p.m.retries.WithLabelValues(service),
		overflow:   p.m.overflow.WithLabelValues(service),
	}
	if rule.MaxPending > 0 {
		up.maxPending = int64(rule.MaxPending)
	}
	up.lastUse.Store(time.Now().UnixNano())
	return up
}

// targetFor returns the upstream's target, creating it (and waiting for
// the service's first fetch) on first use.
func (up *upstream) targetFor(ctx context.Context, r *client.Resolver) (*client.Target, error) {
	if t := up.target.Load(); t != nil {
		return t, nil
	}
	t, err := r.Target(ctx, up.service, up.filter)
	if err != nil {
		return nil, err
	}
	if !up.target.CompareAndSwap(nil, t) {
		t.Close() // another request made it first
		return up.target.Load(), nil
	}
	if up.closed.Load() {
		// Closed in the meantime: serve this request, hold nothing.
		t.Close()
	}
	return t, nil
}

func (up *upstream) close() {
	up.closed.Store(true)
	if t := up.target.Load(); t != nil {
		t.Close()
	}
}

// Close releases the proxy's targets and connections and stops its
// sweep. It does not close the resolver.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	for _, up := range p.upstreams() {
		up.close()
	}
	p.h1.CloseIdleConnections()
	p.h2c.CloseIdleConnections()
	p.fast.CloseIdleConnections()
	return nil
}

// upstreams lists the routes' upstreams and the default-host ones.
func (p *Proxy) upstreams() []*upstream {
	var ups []*upstream
	for _, r := range p.table.routes {
		ups = append(ups, r.up)
	}
	p.mu.RLock()
	for _, up := range p.dynamic {
		ups = append(ups, up)
	}
	p.mu.RUnlock()
	return ups
}

var errTooManyServices = errors.New("too many services")

// defaultUpstream returns the upstream of a default-host service,
// creating it on first use.
func (p *Proxy) defaultUpstream(service string, now time.Time) (*upstream, error) {
	p.mu.RLock()
	up := p.dynamic[service]
	p.mu.RUnlock()
	if up == nil {
		p.mu.Lock()
		if up = p.dynamic[service]; up == nil {
			if len(p.dynamic) >= p.cfg.MaxDefaultServices {
				p.mu.Unlock()
				return nil, errTooManyServices
			}
			up = p.newUpstream(service, nil)
			p.dynamic[service] = up
		}
		p.mu.Unlock()
	}
	// Written at most once a second: requests on many cores would
	// otherwise contend on one cache line.
	if n := now.UnixNano(); n-up.lastUse.Load() > int64(time.Second) {
		up.lastUse.Store(n)
	}
	return up, nil
}

// sweep closes default-host services idle for IdleServiceTimeout and
// forgets the metrics of instances no target uses, every SweepInterval.
func (p *Proxy) sweep() {
	tick := time.NewTicker(p.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-tick.C:
			cutoff := now.Add(-p.cfg.IdleServiceTimeout).UnixNano()
			var idle []*upstream
			p.mu.Lock()
			for name, up := range p.dynamic {
				if up.lastUse.Load() < cutoff && up.pending.Load() == 0 {
					delete(p.dynamic, name)
					idle = append(idle, up)
				}
			}
			p.mu.Unlock()
			for _, up := range idle {
				up.close()
				p.log.Debug("idle service released", "service", up.service)
			}
			p.pruneStats()
			p.fast.CloseIdle(now.Add(-p.cfg.IdleConnTimeout))
		}
	}
}

// reqState travels with one request from ServeHTTP through the reverse
// proxy to roundTrip and back, in the request's context.
type reqState struct {
	up       *upstream
	ep       *balance.Endpoint // the last instance tried
	attempts int
	err      error
}

type stateKey struct{}

// ServeHTTP routes the request and proxies it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	host := hostOnly(r.Host)
	st := &reqState{}
	st.up = p.noRoute
	if rt := p.table.match(host, r.URL.Path); rt != nil {
		st.up = rt.up
	} else if p.cfg.DefaultHosts {
		if svc, ok := defaultService(host, p.domains); ok {
			if up, err := p.defaultUpstream(svc, start); err != nil {
				st.err = err
			} else {
				st.up = up
			}
		}
	}
	sw := &statusWriter{ResponseWriter: w}
	defer p.done(sw, r, st, start)
	if st.up == p.noRoute {
		if st.err == nil {
			st.err = errNoRoute
		}
		p.answerError(sw, r, st.err)
		return
	}
	if r.Header["Upgrade"] != nil {
		// WebSocket and other upgrades: httputil.ReverseProxy knows them.
		p.rp.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
		return
	}
	p.forward(sw, r, st)
}

// done records a finished request (also when the handler panics to
// abort a broken stream).
func (p *Proxy) done(sw *statusWriter, r *http.Request, st *reqState, start time.Time) {
	code := sw.code
	if code == 0 {
		code = codeError // aborted before any answer
	}
	d := time.Since(start)
	st.up.codes.inc(code)
	st.up.duration.Observe(d.Seconds())
	if !p.cfg.AccessLog {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method), slog.String("host", r.Host), slog.String("path", r.URL.Path),
		slog.String("proto", r.Proto), slog.Int("status", sw.code), slog.Int64("bytes", sw.bytes),
		slog.String("service", st.up.service), slog.Duration("duration", d), slog.String("remote", r.RemoteAddr),
	}
	if st.ep != nil {
		attrs = append(attrs, slog.String("instance", st.ep.ID), slog.String("upstream", st.ep.Addr), slog.Int("attempts", st.attempts))
	}
	if st.err != nil {
		attrs = append(attrs, slog.String("err", st.err.Error()))
	}
	p.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// rewrite prepares the outbound request: the instance is chosen later, in
// roundTrip; the Host header stays the client's.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(stateKey{}).(*reqState)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = st.up.service
	if rt := st.up.route; rt != nil && rt.StripPrefix {
		u := pr.Out.URL
		if u.RawPath != "" && hasPathPrefix(u.RawPath, rt.PathPrefix) {
			u.RawPath = stripPrefix(u.RawPath, rt.PathPrefix)
		} else {
			u.RawPath = ""
		}
		u.Path = stripPrefix(u.Path, rt.PathPrefix)
	}
	// Append the client to the chain of earlier proxies, as nginx's
	// $proxy_add_x_forwarded_for does; X-Forwarded-Host and -Proto say
	// what this proxy received.
	if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 {
		pr.Out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
}

// Errors of the proxy itself, answered by errorHandler.
var (
	errNoRoute    = errors.New("no route for this host and path")
	errOverloaded = errors.New("too many pending requests")
	errBody       = h1.ErrBody // also h1.Transport's, for a body that broke off
)

// errorHandler is the reverse proxy's: it notes the error for the access
// log and answers it.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if st, ok := r.Context().Value(stateKey{}).(*reqState); ok {
		st.err = err
	}
	p.answerError(w, r, err)
}

// answerError answers a request the proxy could not get an answer for.
func (p *Proxy) answerError(w http.ResponseWriter, r *http.Request, err error) {
	var apiErr *client.APIError
	code := http.StatusBadGateway
	switch {
	case errors.Is(err, errNoRoute):
		code = http.StatusNotFound
	case errors.As(err, &apiErr) && apiErr.Status >= 400 && apiErr.Status < 500:
		code = http.StatusNotFound // the agent refused the service name
	case errors.Is(err, errOverloaded), errors.Is(err, errTooManyServices), errors.Is(err, client.ErrNoInstances):
		code = http.StatusServiceUnavailable
	case errors.Is(err, errBody):
		code = http.StatusBadRequest
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		code = 499 // the client went away; nobody reads this
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		code = http.StatusGatewayTimeout
	}
	// Upstream failures (502, 504) say only what happened: the error's
	// text names internal addresses. It is in the access log and at debug.
	msg := "roster proxy: " + http.StatusText(code)
	switch code {
	case 499:
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		p.log.Debug("upstream failed", "host", r.Host, "path", r.URL.Path, "code", code, "err", err)
	default:
		msg = fmt.Sprintf("roster proxy: %s", err)
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, msg, code)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Serve serves the proxy on ln, HTTP/1.1 and cleartext HTTP/2 (prior
// knowledge), until ctx ends; then it stops accepting and lets requests
// in flight finish for up to drain before closing their connections.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	return serve(ctx, h1.NewServer(p, h1.ServerConfig{Logger: p.log}), ln, drain, p.log)
}

// httpServer is what serve needs of a server: h1.Server's and net/http's
// Server's Serve and Shutdown.
type httpServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

var (
	_ httpServer = (*h1.Server)(nil)
	_ httpServer = (*http.Server)(nil)
)

// serve runs srv on ln until ctx ends, then shuts it down, letting
// requests finish for up to drain.
func serve(ctx context.Context, srv httpServer, ln net.Listener, drain time.Duration, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("proxy serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("proxy shutdown: closed connections still busy", "err", err)
	}
	<-errc
	return nil
}

// bufferPool lends the reverse proxy its 32 KiB copy buffers (it would
// allocate one per request otherwise).
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// statusWriter notes the status code and body size of an answer.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush, Hijack and deadlines.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
