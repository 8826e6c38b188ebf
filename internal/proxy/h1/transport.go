package h1

import (
	"bufio"
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"sync"
	"time"
)

// Transport is an http.RoundTripper that sends HTTP/1.1 requests over
// kept-alive connections, in the caller's goroutine: one request per
// connection at a time, and the connection goes back to its host's pool
// once the answer's body has been read to its end (a body closed before
// its end closes the connection). net/http's Transport runs two
// goroutines per connection and hands every request and answer between
// them; on a proxy's hot path that hand-off costs more than the I/O. This
// transport does what the proxy needs and no more: requests it does not
// handle (protocol upgrades, Expect: 100-continue, request trailers) are
// refused with ErrUnsupported, for the caller to send with net/http (see
// Handles). Informational (1xx) answers are skipped, a 101 is an error.
//
// A kept-alive connection the host closed while it was idle is found when
// it is used: an idempotent request with no body or a replayable one
// (GetBody) is then sent again on a new connection, once; before a
// request whose body cannot be replayed, the connection is checked first
// (alive). A request body that fails or does not match its
// ContentLength fails the request with an error that wraps ErrBody.
//
// The request's context bounds it until its answer's body is done.
// Configure the fields before the first request; after it, Transport is
// safe for concurrent use and must not be copied.
type Transport struct {
	// Dial connects to a host (nil: a net.Dialer's DialContext). A
	// connection that wraps another shows it with a NetConn method, as
	// tls.Conn does, so that an idle one can be checked.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxIdlePerHost is how many kept-alive connections a host's pool
	// keeps (0: none).
	MaxIdlePerHost int
	// MaxConnsPerHost bounds the connections to one host (dialing,
	// active and idle); requests past it wait for one (0: no limit).
	MaxConnsPerHost int
	// IdleConnTimeout is the longest a pooled connection is reused after
	// its last answer (0: no limit); CloseIdle closes the older ones.
	IdleConnTimeout time.Duration
	// ResponseHeaderTimeout bounds waiting for an answer's header once
	// the request is written (0: no limit).
	ResponseHeaderTimeout time.Duration
	// MaxResponseHeaderBytes bounds an answer's header, 1xx answers
	// included (0: 10 MiB, as net/http's Transport).
	MaxResponseHeaderBytes int64

	mu    sync.Mutex
	hosts map[string]*hostConns
}

// Errors of Transport.
var (
	// ErrUnsupported: the request is one Transport does not send (see
	// Handles).
	ErrUnsupported = errors.New("h1: request needs a protocol upgrade, Expect or trailers")
	// ErrBody: the request body failed, or it did not match its
	// ContentLength. The request may have been sent in part.
	ErrBody = errors.New("reading the request body")
)

var _ http.RoundTripper = (*Transport)(nil)

// hostConns are one host's idle connections and connection slots.
type hostConns struct {
	idle []*h1Conn // most recently used last
	refs int       // requests using the host (guarded by Transport.mu)
	// sem holds one token per request using a connection, when
	// connections are limited: a request takes an idle connection or,
	// when there is none, dials one, so open connections never exceed
	// its capacity.
	sem chan struct{}
}

type h1Conn struct {
	net.Conn
	lr     *limitReader // under br: bounds an answer's header
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

// defaultMaxAnswerHeader bounds an answer's header (net/http's
// Transport default).
const defaultMaxAnswerHeader = 10 << 20

// Handles reports whether the request is one RoundTrip sends: one without
// an Upgrade or Expect header and without trailers. Send the others with
// net/http's Transport.
func (t *Transport) Handles(req *http.Request) bool {
	h := req.Header
	return len(req.Trailer) == 0 && h["Upgrade"] == nil && h["Expect"] == nil
}

func (t *Transport) host(addr string) *hostConns {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.hosts == nil {
		t.hosts = map[string]*hostConns{}
	}
	hc := t.hosts[addr]
	if hc == nil {
		hc = &hostConns{}
		if t.MaxConnsPerHost > 0 {
			hc.sem = make(chan struct{}, t.MaxConnsPerHost)
		}
		t.hosts[addr] = hc
	}
	hc.refs++ // until the request's release: closeIdle keeps hc meanwhile
	return hc
}

// RoundTrip sends req to req.URL.Host and reads the answer's header. The
// request's Host (else the URL's) is sent as Host; Connection,
// Transfer-Encoding, Trailer and Content-Length are Transport's own, and
// an empty User-Agent is left out.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.Handles(req) {
		return nil, ErrUnsupported
	}
	ctx := req.Context()
	addr := req.URL.Host
	hc := t.host(addr)
	unref := func() {
		t.mu.Lock()
		hc.refs--
		t.mu.Unlock()
	}
	if hc.sem != nil {
		select {
		case hc.sem <- struct{}{}:
		case <-ctx.Done():
			unref()
			return nil, ctx.Err()
		}
	}
	release := func() {
		if hc.sem != nil {
			<-hc.sem
		}
		unref()
	}
	// An idempotent request with no body or a replayable one may be sent
	// again when a kept-alive connection turns out closed; any other is
	// sent only on a connection checked first.
	replayable := idempotent(req.Method) && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
	for try := 0; ; try++ {
		c, reused, err := t.get(ctx, hc, addr, replayable)
		if err != nil {
			release()
			return nil, err
		}
		stop := context.AfterFunc(ctx, c.abort)
		resp, answered, err := t.send(c, req)
		if err == nil {
			resp.Body = &answerBody{rc: resp.Body, t: t, hc: hc, c: c, release: release, reuse: !resp.Close && !req.Close, stop: stop}
			return resp, nil
		}
		stop()
		c.Close()
		if reused && replayable && !answered && try == 0 && ctx.Err() == nil {
			if req.GetBody != nil {
				if req.Body, err = req.GetBody(); err != nil {
					release()
					return nil, err
				}
			}
			continue // the host had closed the idle connection
		}
		release()
		return nil, err
	}
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// get takes an idle connection of the host, or dials one. A
// connection for a request whose body cannot be replayed is checked
// first.
func (t *Transport) get(ctx context.Context, hc *hostConns, addr string, replayable bool) (*h1Conn, bool, error) {
	now := time.Now()
	for {
		t.mu.Lock()
		n := len(hc.idle)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		c := hc.idle[n-1]
		hc.idle[n-1] = nil
		hc.idle = hc.idle[:n-1]
		t.mu.Unlock()
		if (t.IdleConnTimeout > 0 && now.Sub(c.idleAt) > t.IdleConnTimeout) || c.br.Buffered() > 0 || (!replayable && !alive(c.Conn)) {
			c.Close()
			continue
		}
		return c, true, nil
	}
	dial := t.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	lr := &limitReader{r: conn, n: math.MaxInt64}
	return &h1Conn{Conn: conn, lr: lr, br: bufio.NewReaderSize(lr, 4<<10), bw: bufio.NewWriterSize(conn, 4<<10)}, false, nil
}

// put returns a connection to the host's pool.
func (t *Transport) put(hc *hostConns, c *h1Conn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	if len(hc.idle) < t.MaxIdlePerHost {
		hc.idle = append(hc.idle, c)
		c = nil
	}
	t.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// CloseIdleConnections closes every idle connection.
func (t *Transport) CloseIdleConnections() { t.CloseIdle(time.Time{}) }

// CloseIdle closes the connections idle since before cutoff (all of them
// for the zero time) and forgets the hosts with none left and no request
// in flight. Call it now and then (say, with now less IdleConnTimeout):
// Transport runs no timer of its own.
func (t *Transport) CloseIdle(cutoff time.Time) {
	var old []*h1Conn
	t.mu.Lock()
	for addr, hc := range t.hosts {
		keep := hc.idle[:0]
		for _, c := range hc.idle {
			if cutoff.IsZero() || c.idleAt.Before(cutoff) {
				old = append(old, c)
			} else {
				keep = append(keep, c)
			}
		}
		clear(hc.idle[len(keep):])
		hc.idle = keep
		if len(keep) == 0 && hc.refs == 0 {
			delete(t.hosts, addr)
		}
	}
	t.mu.Unlock()
	for _, c := range old {
		c.Close()
	}
}
