package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// h1Transport sends HTTP/1.1 requests to instances over kept-alive
// connections, in the caller's goroutine: one request per connection at a
// time, and the connection goes back to its instance's pool once the
// answer's body has been read to its end. net/http's Transport runs two
// goroutines per connection and hands every request and answer between
// them; on a proxy's hot path that hand-off costs more than the I/O. This
// transport does what the proxy needs and no more: requests it does not
// handle (protocol upgrades, Expect: 100-continue, request trailers) go
// to net/http (see handles).
//
// A kept-alive connection the instance closed while it was idle is found
// when it is used: a request with no body or a replayable one (GetBody)
// is then sent again on a new connection, once; before a request whose
// body cannot be replayed, the connection is checked first (alive).
type h1Transport struct {
	dial          dialFunc
	maxIdle       int // per instance
	maxConns      int // per instance; 0: no limit
	idleTimeout   time.Duration
	headerTimeout time.Duration
	maxHeader     int64 // bytes of an answer's header, 1xx answers included; 0: defaultMaxAnswerHeader

	mu    sync.Mutex
	hosts map[string]*hostConns
}

// hostConns are one instance's idle connections and connection slots.
type hostConns struct {
	idle []*h1Conn // most recently used last
	refs int       // requests using the instance (guarded by h1Transport.mu)
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

// handles reports whether the request is one h1Transport sends.
func (t *h1Transport) handles(req *http.Request) bool {
	h := req.Header
	return len(req.Trailer) == 0 && h["Upgrade"] == nil && h["Expect"] == nil
}

func (t *h1Transport) host(addr string) *hostConns {
	t.mu.Lock()
	defer t.mu.Unlock()
	hc := t.hosts[addr]
	if hc == nil {
		hc = &hostConns{}
		if t.maxConns > 0 {
			hc.sem = make(chan struct{}, t.maxConns)
		}
		t.hosts[addr] = hc
	}
	hc.refs++ // until the request's release: closeIdle keeps hc meanwhile
	return hc
}

// RoundTrip sends req to req.URL.Host and reads the answer's headers.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
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
			resp.Body = &h1Body{rc: resp.Body, t: t, hc: hc, c: c, release: release, reuse: !resp.Close && !req.Close, stop: stop}
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
			continue // the instance had closed the idle connection
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

// get takes an idle connection of the instance, or dials one. A
// connection for a request whose body cannot be replayed is checked
// first.
func (t *h1Transport) get(ctx context.Context, hc *hostConns, addr string, replayable bool) (*h1Conn, bool, error) {
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
		if now.Sub(c.idleAt) > t.idleTimeout || c.br.Buffered() > 0 || (!replayable && !alive(c.Conn)) {
			c.Close()
			continue
		}
		return c, true, nil
	}
	conn, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	lr := &limitReader{r: conn, n: math.MaxInt64}
	return &h1Conn{Conn: conn, lr: lr, br: bufio.NewReaderSize(lr, 4<<10), bw: bufio.NewWriterSize(conn, 4<<10)}, false, nil
}

// put returns a connection to the instance's pool.
func (t *h1Transport) put(hc *hostConns, c *h1Conn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	if len(hc.idle) < t.maxIdle {
		hc.idle = append(hc.idle, c)
		c = nil
	}
	t.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// closeIdle closes connections idle since before cutoff (all of them for
// the zero time: time.Now() is later than every idleAt) and forgets
// instances with none left.
func (t *h1Transport) closeIdle(cutoff time.Time) {
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

// abort makes the connection's pending reads and writes fail at once
// (the client went away).
func (c *h1Conn) abort() {
	past := time.Unix(1, 0)
	_ = c.SetDeadline(past)
}

// excluded are the headers send writes itself (or leaves out).
func excluded(k string) bool {
	switch k {
	case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
		return true
	}
	return false
}

// send writes the request and reads the answer's headers, skipping
// informational (1xx) answers. answered reports whether any byte of an
// answer came (when it did, the request was certainly received).
func (t *h1Transport) send(c *h1Conn, req *http.Request) (resp *http.Response, answered bool, err error) {
	bw := c.bw
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		if excluded(k) {
			continue
		}
		for _, v := range vv {
			if (v == "" && k == "User-Agent") || strings.ContainsAny(v, "\r\n") {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	chunked := false
	switch {
	case body == nil:
		switch req.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			bw.WriteString("Content-Length: 0\r\n")
		}
	case req.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(req.ContentLength, 10))
		bw.WriteString("\r\n")
	default:
		chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
	if body != nil {
		if err := writeBody(bw, body, req.ContentLength, chunked); err != nil {
			return nil, false, err
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, false, err
	}
	if t.headerTimeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(t.headerTimeout))
	}
	c.lr.n = t.maxHeader
	if c.lr.n == 0 {
		c.lr.n = defaultMaxAnswerHeader
	}
	for {
		if _, err := c.br.Peek(1); err != nil {
			return nil, false, err
		}
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, true, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return nil, true, errors.New("unexpected 101 Switching Protocols")
			}
			continue // informational: not passed on
		}
		if t.headerTimeout > 0 {
			_ = c.SetReadDeadline(time.Time{})
		}
		c.lr.n = math.MaxInt64
		return resp, true, nil
	}
}

// writeBody streams the request body, flushing after each piece read so
// that a slow upload reaches the instance as it comes.
func writeBody(bw *bufio.Writer, body io.Reader, length int64, chunked bool) error {
	bufp := buffers.Get().(*[]byte)
	defer buffers.Put(bufp)
	buf := *bufp
	var sent int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if chunked {
				bw.WriteString(strconv.FormatInt(int64(n), 16))
				bw.WriteString("\r\n")
				bw.Write(buf[:n])
				bw.WriteString("\r\n")
			} else {
				if sent+int64(n) > length {
					return fmt.Errorf("%w: more than its Content-Length", errBody)
				}
				bw.Write(buf[:n])
			}
			sent += int64(n)
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("%w: %w", errBody, rerr)
		}
	}
	if chunked {
		_, err := bw.WriteString("0\r\n\r\n")
		return err
	}
	if sent != length {
		return fmt.Errorf("%w: %d bytes of %d", errBody, sent, length)
	}
	return nil
}

// h1Body is an answer's body: at its end the connection goes back to the
// pool (or is closed when it cannot be reused).
type h1Body struct {
	rc      io.ReadCloser
	t       *h1Transport
	hc      *hostConns
	c       *h1Conn
	release func()
	reuse   bool
	stop    func() bool // stops the client-gone abort
	done    bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(b.reuse)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		// Not read to the end: the rest is still on the connection.
		b.finish(false)
	}
	return nil
}

func (b *h1Body) finish(reuse bool) {
	b.done = true
	if !b.stop() {
		reuse = false // aborted: the connection has a deadline in the past
	}
	if reuse {
		b.t.put(b.hc, b.c)
	} else {
		b.c.Close()
	}
	b.release()
}
