package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/balance"
)

// roundTripper adapts a function to http.RoundTripper.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip sends the reverse proxy's outbound request (a protocol
// upgrade; forward sends the others) to an instance of the request's
// upstream: it admits the request against the route's
// pending bound, picks an instance, and tries idempotent requests again
// on another instance after a connection error or a 502, 503 or 504.
// Every try is reported to the endpoint (in-flight count, outlier
// detection) when its response body is closed, except tries the client
// gave up on. The answer's body is the instance's, streamed.
func (p *Proxy) roundTrip(req *http.Request) (*http.Response, error) {
	return p.send(req, req.Context().Value(stateKey{}).(*reqState))
}

// send does roundTrip's work for the request of st.
func (p *Proxy) send(req *http.Request, st *reqState) (*http.Response, error) {
	ctx := req.Context()
	up := st.up
	if n := up.pending.Add(1); up.maxPending > 0 && n > up.maxPending {
		up.pending.Add(-1)
		up.overflow.Inc()
		return nil, errOverloaded
	}
	defer up.pending.Add(-1)

	tg, err := up.targetFor(ctx, p.cfg.Resolver)
	if err != nil {
		return nil, err
	}
	attempts, body, err := p.retryable(req)
	if err != nil {
		return nil, err
	}
	var rt http.RoundTripper = p.fast
	switch {
	case up.h2c:
		rt = p.h2c
	case !p.fast.Handles(req):
		rt = p.h1
	}
	var (
		keyed bool
		hash  uint64
	)
	if up.hashHeader != "" {
		if v := req.Header.Get(up.hashHeader); v != "" {
			keyed, hash = true, balance.HashString(v)
		}
	}
	var triedBuf [4]*balance.Endpoint
	tried := triedBuf[:0]
	for i := 0; ; i++ {
		ep, err := pick(tg, keyed, hash, tried)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", up.service, err)
		}
		tried = append(tried, ep)
		es := p.statsFor(ep)
		if es.ejected.Load() {
			es.ejected.Store(false) // picked again: its ejection is over
		}
		out := req
		if rt != p.fast || i > 0 {
			// net/http's transports may still hold an earlier try's
			// request: each try gets its own. The fast transport returns
			// with nothing left of the try but its answer.
			c := *req
			u := *req.URL
			c.URL = &u
			out = &c
		}
		out.URL.Host = ep.Addr
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
			out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		st.ep, st.attempts = ep, i+1
		ep.Begin()
		es.active.Inc()
		sent := time.Now()
		resp, err := rt.RoundTrip(out)
		if err != nil && (errors.Is(ctx.Err(), context.Canceled) || errors.Is(err, errBody)) {
			// The client went away, or its body broke off: nothing learnt
			// of the instance, and nothing to try again.
			ep.Cancel()
			es.active.Dec()
			es.codes.inc(codeCanceled)
			return nil, err
		}
		es.latency.Observe(time.Since(sent).Seconds())
		if err != nil {
			es.codes.inc(codeError)
			p.finish(ep, es, false)
			if i+1 < attempts && ctx.Err() == nil {
				up.retries.Inc()
				continue
			}
			return nil, err
		}
		es.codes.inc(resp.StatusCode)
		ok := resp.StatusCode < 500
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			if i+1 < attempts && ctx.Err() == nil {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				p.finish(ep, es, false)
				up.retries.Inc()
				continue
			}
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// An upgraded connection (WebSocket) is the client's now: the
			// reverse proxy needs its body writable, and it is no request
			// in flight.
			p.finish(ep, es, true)
			return resp, nil
		}
		resp.Body = &trackedBody{ReadCloser: resp.Body, p: p, ep: ep, es: es, ok: ok, ctx: ctx}
		return resp, nil
	}
}

// retryable returns how many tries req may have and, for a small body of
// an idempotent request, the body read into memory so that it can be
// sent again. Other bodies stream through, tried once.
func (p *Proxy) retryable(req *http.Request) (int, []byte, error) {
	if !idempotent(req.Method) {
		return 1, nil, nil
	}
	if req.Body == nil || req.Body == http.NoBody {
		return p.cfg.MaxAttempts, nil, nil
	}
	if req.ContentLength <= 0 || req.ContentLength > p.cfg.MaxRetryBody || p.cfg.MaxAttempts == 1 {
		return 1, nil, nil
	}
	b := make([]byte, req.ContentLength)
	if _, err := io.ReadFull(req.Body, b); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", errBody, err)
	}
	return p.cfg.MaxAttempts, b, nil
}

// idempotent reports whether a request of method may be tried again
// (RFC 9110, section 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// pick chooses an endpoint of t that is not in tried, when there is one;
// a keyed request walks the same sequence of instances every time.
func pick(t *client.Target, keyed bool, hash uint64, tried []*balance.Endpoint) (*balance.Endpoint, error) {
	var first *balance.Endpoint
	for i := range 8 {
		var (
			e   *balance.Endpoint
			err error
		)
		if keyed {
			e, err = t.PickHash(hash + uint64(len(tried)+i)*0x9e3779b97f4a7c15)
		} else {
			e, err = t.Pick("")
		}
		if err != nil {
			return nil, err
		}
		if !slices.Contains(tried, e) {
			return e, nil
		}
		if first == nil {
			first = e
		}
	}
	// The policy keeps choosing tried ones (few left): take any other
	// available one.
	for _, e := range t.Endpoints() {
		if !slices.Contains(tried, e) && e.Available() {
			return e, nil
		}
	}
	return first, nil
}

// finish ends a try on an endpoint and counts an ejection it caused.
func (p *Proxy) finish(ep *balance.Endpoint, es *endpointStats, ok bool) {
	es.active.Dec()
	ep.End(ok)
	if !ok && !ep.Available() && es.ejected.CompareAndSwap(false, true) {
		es.ejections.Inc()
		p.log.Info("instance ejected", "service", es.service, "instance", es.instance, "addr", ep.Addr)
	}
}

// trackedBody ends the try when the reverse proxy closes the response
// body: at the end of a streamed answer, or when the client goes away.
type trackedBody struct {
	io.ReadCloser
	p    *Proxy
	ep   *balance.Endpoint
	es   *endpointStats
	ok   bool
	ctx  context.Context
	err  error // a read error other than EOF
	once sync.Once
}

func (b *trackedBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (b *trackedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		switch {
		case b.err != nil && errors.Is(b.ctx.Err(), context.Canceled):
			b.ep.Cancel() // the client went away mid-answer
			b.es.active.Dec()
		default:
			b.p.finish(b.ep, b.es, b.ok && b.err == nil)
		}
	})
	return err
}
