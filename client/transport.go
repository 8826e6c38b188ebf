package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/rosterhq/roster/client/balance"
)

// MatchFunc maps a host name to the service it names; ok is false for a
// host that is not a service (it is then dialled as usual).
type MatchFunc func(host string) (service string, ok bool)

// MatchHosts returns a MatchFunc for patterns that are either a service
// name ("payment-service": that host is that service) or a suffix pattern
// ("*.service.consul": the one label before the suffix is the service).
// Matching ignores case and a trailing dot.
func MatchHosts(patterns ...string) MatchFunc {
	type pat struct {
		exact  string
		suffix string
	}
	ps := make([]pat, len(patterns))
	for i, p := range patterns {
		p = strings.TrimSuffix(strings.ToLower(p), ".")
		if rest, ok := strings.CutPrefix(p, "*"); ok {
			ps[i].suffix = rest // ".service.consul"
		} else {
			ps[i].exact = p
		}
	}
	return func(host string) (string, bool) {
		host = strings.TrimSuffix(host, ".")
		for _, p := range ps {
			switch {
			case p.exact != "" && strings.EqualFold(host, p.exact):
				return strings.ToLower(host), true
			case p.suffix != "" && len(host) > len(p.suffix) && strings.EqualFold(host[len(host)-len(p.suffix):], p.suffix):
				name := host[:len(host)-len(p.suffix)]
				if name != "" && !strings.Contains(name, ".") {
					return strings.ToLower(name), true
				}
			}
		}
		return "", false
	}
}

// targets keeps one Target per service for a transport or dialer. Its
// targets do not hold their services in the resolver's cache: a service no
// request asks for is dropped when idle, and its target here replaced on
// the next request (or forgotten).
type targets struct {
	r       *Resolver
	filter  Filter
	mu      sync.RWMutex
	m       map[string]*Target
	sweepAt int // forget dropped services' targets when m grows to this
}

func (ts *targets) get(ctx context.Context, service string) (*Target, error) {
	ts.mu.RLock()
	t := ts.m[service]
	ts.mu.RUnlock()
	if t != nil && !t.svc.dropped.Load() {
		return t, nil
	}
	t, err := ts.r.target(ctx, service, ts.filter, true)
	if err != nil {
		return nil, err
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.m == nil {
		ts.m = map[string]*Target{}
	}
	if old := ts.m[service]; old != nil && !old.svc.dropped.Load() {
		t.Close()
		return old, nil
	}
	if len(ts.m) >= ts.sweepAt {
		// Amortized: the map stays within twice the services in use.
		for name, old := range ts.m {
			if old.svc.dropped.Load() {
				delete(ts.m, name)
			}
		}
		ts.sweepAt = max(16, 2*len(ts.m))
	}
	ts.m[service] = t
	return t, nil
}

// pick chooses an endpoint not in tried (when another is available).
func pick(t *Target, key string, tried []*balance.Endpoint) (*balance.Endpoint, error) {
	var h uint64
	if key != "" {
		h = balance.HashString(key)
	}
	var first *balance.Endpoint
	for i := range 8 {
		var e *balance.Endpoint
		var err error
		if key != "" {
			// The same key walks the same sequence of retries.
			e, err = t.PickHash(h + uint64(i)*0x9e3779b97f4a7c15)
		} else {
			e, err = t.Pick("")
		}
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = e
		}
		seen := false
		for _, x := range tried {
			if x == e {
				seen = true
				break
			}
		}
		if !seen {
			return e, nil
		}
	}
	return first, nil
}

// Transport is an http.RoundTripper that sends requests for hosts naming
// a service (per Match) to one of its healthy instances, chosen by the
// Filter's balancer, so that http.Get("http://payment-service/charge")
// works. Idempotent requests that fail (a connection error, or a 502, 503
// or 504) are retried on another instance. Every outcome feeds outlier
// detection (an error or a 5xx is a failure, including a timeout or the
// caller's deadline passing while the instance does not answer), except
// the caller's cancellation: a request whose context was canceled before
// an answer came reports nothing (balance.Endpoint.Cancel), so impatient
// callers and hedged requests cannot eject healthy instances. Requests
// are counted in flight (until the response headers arrive) for
// least-loaded balancing. Other hosts go to Base unchanged.
//
// The request is sent to the instance's address, so for https the TLS
// handshake checks the certificate against that address, not the service
// name. To keep the host name for TLS, use a Dialer as the DialContext of
// an http.Transport instead.
type Transport struct {
	// Resolver finds the instances. Required.
	Resolver *Resolver
	// Match maps hosts to services. Required.
	Match MatchFunc
	// Filter selects and balances instances of every matched service.
	Filter Filter
	// Base sends the requests (default: a clone of
	// http.DefaultTransport).
	Base http.RoundTripper
	// MaxAttempts bounds the tries of an idempotent request (default 3);
	// other requests are tried once.
	MaxAttempts int
	// KeyHeader names a request header whose value is the hashing key
	// (for balance.RingHash), such as "User-Id".
	KeyHeader string

	once    sync.Once
	base    http.RoundTripper
	targets targets
}

func (t *Transport) init() {
	t.once.Do(func() {
		t.base = t.Base
		if t.base == nil {
			t.base = http.DefaultTransport.(*http.Transport).Clone()
		}
		t.targets = targets{r: t.Resolver, filter: t.Filter}
	})
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.init()
	service, ok := t.Match(req.URL.Hostname())
	if !ok {
		return t.base.RoundTrip(req)
	}
	closeBody := func() {
		if req.Body != nil {
			req.Body.Close()
		}
	}
	tg, err := t.targets.get(req.Context(), service)
	if err != nil {
		closeBody()
		return nil, err
	}
	attempts := 1
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if idempotent(req) && replayable {
		attempts = t.MaxAttempts
		if attempts <= 0 {
			attempts = 3
		}
	}
	var key string
	if t.KeyHeader != "" {
		key = req.Header.Get(t.KeyHeader)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	var tried []*balance.Endpoint
	for i := 0; ; i++ {
		ep, err := pick(tg, key, tried)
		if err != nil {
			closeBody()
			return nil, err
		}
		tried = append(tried, ep)
		out := req.Clone(req.Context())
		out.URL.Host = ep.Addr
		out.Host = host
		if i > 0 && req.Body != nil && req.Body != http.NoBody {
			if out.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		ep.Begin()
		resp, err := t.base.RoundTrip(out)
		if err != nil && canceled(req.Context()) {
			ep.Cancel() // the caller gave up: nothing learnt of the instance
			return nil, err
		}
		failed := err != nil || resp.StatusCode >= 500
		ep.End(!failed)
		retry := err != nil || resp.StatusCode == http.StatusBadGateway ||
			resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout
		if !retry || i+1 >= attempts || req.Context().Err() != nil {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
	}
}

// CloseIdleConnections closes the base transport's idle connections.
func (t *Transport) CloseIdleConnections() {
	t.init()
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// idempotent follows net/http's rule for retrying a request.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}

// Dialer dials hosts naming a service (per Match) at one of the service's
// healthy instances, trying up to MaxAttempts instances when a dial
// fails; the port in the address is replaced by the instance's. It plugs
// into http.Transport.DialContext or anything else that dials. A
// connection counts as one request in flight until it is closed.
type Dialer struct {
	// Resolver finds the instances. Required.
	Resolver *Resolver
	// Match maps hosts to services. Required.
	Match MatchFunc
	// Filter selects and balances instances of every matched service.
	Filter Filter
	// Dialer dials (default: a net.Dialer).
	Dialer *net.Dialer
	// MaxAttempts bounds the instances tried per dial (default 3).
	MaxAttempts int

	once    sync.Once
	targets targets
}

// DialContext implements the signature of net.Dialer.DialContext.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.once.Do(func() { d.targets = targets{r: d.Resolver, filter: d.Filter} })
	nd := d.Dialer
	if nd == nil {
		nd = &net.Dialer{}
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	service, ok := d.Match(host)
	if !ok {
		return nd.DialContext(ctx, network, addr)
	}
	tg, err := d.targets.get(ctx, service)
	if err != nil {
		return nil, err
	}
	attempts := d.MaxAttempts
	if attempts <= 0 {
		attempts = 3
	}
	var tried []*balance.Endpoint
	var errs []error
	for range attempts {
		ep, err := pick(tg, "", tried)
		if err != nil {
			return nil, err
		}
		tried = append(tried, ep)
		ep.Begin()
		conn, err := nd.DialContext(ctx, network, ep.Addr)
		if err == nil {
			return &endpointConn{Conn: conn, ep: ep}, nil
		}
		if canceled(ctx) {
			ep.Cancel()
			return nil, errors.Join(append(errs, err)...)
		}
		ep.End(false)
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// canceled reports whether the caller canceled ctx (as opposed to its
// deadline passing, which counts against the instance that did not answer
// in time).
func canceled(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.Canceled)
}

// endpointConn ends its endpoint's in-flight count when closed.
type endpointConn struct {
	net.Conn
	ep   *balance.Endpoint
	once sync.Once
}

func (c *endpointConn) Close() error {
	c.once.Do(func() { c.ep.End(true) })
	return c.Conn.Close()
}
