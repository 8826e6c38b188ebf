package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// server is the proxy's own HTTP/1.1 server loop: one goroutine per
// connection reads a request (http.ReadRequest), hands it to the proxy's
// handler with a lean http.ResponseWriter, and reads the next. net/http's
// server does more per request than a proxy needs (a context and a
// background read per request to notice a client leaving, a copy of the
// header map, deadlines), which on this path costs about as much as the
// proxy's own work. Connections that open with the HTTP/2 preface (h2c,
// prior knowledge) go to a net/http server for HTTP/2.
//
// A client that leaves is noticed for requests without a body that take
// longer than watchAfter (clientWatch); for the others, when the answer
// is written.
type server struct {
	h          http.Handler
	log        *slog.Logger
	h2         *http.Server // h2c connections
	h2ln       *chanListener
	headerWait time.Duration // ReadHeaderTimeout
	idleWait   time.Duration // IdleTimeout
	maxHeader  int64         // bytes of a request line and header

	mu       sync.Mutex
	conns    map[*srvConn]struct{}
	shutting atomic.Bool
	wg       sync.WaitGroup
}

// srvConn is one client connection.
type srvConn struct {
	net.Conn
	cancel context.CancelFunc // ends the requests' context (forced close)
	idle   atomic.Bool        // waiting for the next request
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func newServer(h http.Handler, log *slog.Logger) *server {
	s := &server{h: h, log: log, headerWait: 10 * time.Second, idleWait: 2 * time.Minute,
		maxHeader: http.DefaultMaxHeaderBytes,
		conns:     map[*srvConn]struct{}{}, h2ln: newChanListener()}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	s.h2 = &http.Server{Handler: h, Protocols: &protos, ReadHeaderTimeout: s.headerWait, IdleTimeout: s.idleWait,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return s
}

// run serves ln until ctx ends; then it stops accepting and lets
// requests in flight finish for up to drain before closing their
// connections.
func (s *server) run(ctx context.Context, ln net.Listener, drain time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("proxy serve: %w", err)
	case <-ctx.Done():
	}
	s.shutting.Store(true)
	ln.Close()
	<-errc
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := s.shutdown(sctx); err != nil {
		s.log.Warn("proxy shutdown: closed connections still busy", "err", err)
	}
	return nil
}

// serve accepts connections on ln until it is closed.
func (s *server) serve(ln net.Listener) error {
	h2done := make(chan struct{})
	go func() {
		defer close(h2done)
		_ = s.h2.Serve(s.h2ln)
	}()
	defer func() { s.h2ln.Close(); <-h2done }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return err
		}
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), http.ServerContextKey, s.h2))
		sc := &srvConn{Conn: c, cancel: cancel}
		s.mu.Lock()
		s.conns[sc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer cancel()
			closeIt := s.serveConn(ctx, sc)
			s.forget(sc)
			if closeIt { // else handed over (HTTP/2, an upgrade): not ours to close
				sc.Close()
			}
		}()
	}
}

func (s *server) forget(sc *srvConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
}

// shutdown stops the loop: ln must be closed by the caller first. Idle
// connections close at once, busy ones after their request; at ctx's end
// the rest are closed and their requests' context cancelled.
func (s *server) shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	h2err := make(chan error, 1)
	go func() { h2err <- s.h2.Shutdown(ctx) }()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for sc := range s.conns {
			if sc.idle.Load() {
				sc.Close()
			}
		}
		s.mu.Unlock()
		select {
		case <-done:
			return <-h2err
		case <-tick.C:
		case <-ctx.Done():
			s.mu.Lock()
			for sc := range s.conns {
				sc.cancel()
				sc.Close()
			}
			s.mu.Unlock()
			s.h2.Close()
			<-done
			return ctx.Err()
		}
	}
}

// serveConn serves the requests of one connection; it returns false when
// the connection went elsewhere (the HTTP/2 server, an upgrade), so that
// the caller does not close it.
func (s *server) serveConn(ctx context.Context, sc *srvConn) bool {
	lr := &limitReader{r: sc, n: math.MaxInt64}
	br := bufio.NewReaderSize(lr, 4<<10)
	bw := bufio.NewWriterSize(sc, 4<<10)
	remote := sc.RemoteAddr().String()
	for first := true; ; first = false {
		if s.shutting.Load() {
			return true
		}
		if br.Buffered() == 0 {
			sc.idle.Store(true)
			if s.shutting.Load() { // shutdown may have missed it
				return true
			}
			_ = sc.SetReadDeadline(time.Now().Add(s.idleWait))
			b, err := br.Peek(1)
			sc.idle.Store(false)
			if err != nil {
				return true
			}
			if first && b[0] == 'P' {
				if p, _ := br.Peek(3); string(p) == "PRI" {
					return !s.toHTTP2(sc, br)
				}
			}
		}
		_ = sc.SetReadDeadline(time.Now().Add(s.headerWait))
		lr.n = s.maxHeader
		req, err := http.ReadRequest(br)
		lr.n = math.MaxInt64
		if err != nil {
			switch {
			case errors.Is(err, errHeaderTooLarge):
				_, _ = io.WriteString(sc, "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
			case !errors.Is(err, io.EOF) && !isTimeout(err):
				_, _ = io.WriteString(sc, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
			}
			return true
		}
		// As net/http's server: HTTP/1.1 needs a Host, and a Host must be
		// valid. (http.ReadRequest has moved it to req.Host.)
		if (req.ProtoAtLeast(1, 1) && req.Host == "") || !httpguts.ValidHostHeader(req.Host) {
			_, _ = io.WriteString(sc, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
			return true
		}
		_ = sc.SetReadDeadline(time.Time{})
		req.RemoteAddr = remote
		req = req.WithContext(ctx)
		if req.Body != http.NoBody && strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
			_, _ = bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if bw.Flush() != nil {
				return true
			}
		}
		w := &respWriter{c: sc, br: br, bw: bw, req: req, contentLength: -1}
		var body *reqBody
		if req.Body == http.NoBody {
			w.watch = s.watchClient(sc, br)
		} else {
			body = &reqBody{rc: req.Body}
			req.Body = body
		}
		ok := s.handle(w, req)
		if w.hijacked {
			return false // Hijack stopped the watch
		}
		if w.watch != nil && !w.watch.stop() {
			return true // the client left
		}
		if !ok {
			return true
		}
		w.finish()
		if w.close || req.Close {
			return true
		}
		// What the handler left of the request body: read it (up to a
		// bound, within the header timeout) so that the next request can
		// be read. A body that broke off leaves the connection at no
		// message boundary: it is closed.
		if body != nil {
			if !body.ended.Load() {
				_ = sc.SetReadDeadline(time.Now().Add(s.headerWait))
			}
			if !body.drain(256 << 10) {
				return true
			}
		}
	}
}

// errHeaderTooLarge is limitReader's error: a message header is larger
// than allowed.
var errHeaderTooLarge = errors.New("message header too large")

// limitReader reads a connection under its bufio.Reader; n bounds what a
// message header may take from it (the server loop's requests, the h1
// transport's answers).
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(b)) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	l.n -= int64(n)
	return n, err
}

// reqBody is the body of a request the loop read. It notes how the body
// ended, so that the loop reads a next request only after a body read to
// its end. Close (a transport done with the body) reads nothing: the loop
// reads the rest, within bounds (drain).
type reqBody struct {
	mu     sync.Mutex
	rc     io.ReadCloser
	err    error // io.EOF: read to its end
	ended  atomic.Bool
	closed bool
}

func (b *reqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.read(p)
}

func (b *reqBody) read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	if err != nil {
		b.err = err
		b.ended.Store(true)
	}
	return n, err
}

func (b *reqBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// drain reads what is left of the body, up to about limit bytes, and
// reports whether it ended well.
func (b *reqBody) drain(limit int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		bufp := buffers.Get().(*[]byte)
		defer buffers.Put(bufp)
		for n := int64(0); b.err == nil && n <= limit; {
			m, _ := b.read(*bufp)
			n += int64(m)
		}
	}
	return errors.Is(b.err, io.EOF)
}

// watchAfter is how long a request without a body may wait before the
// server starts watching its connection for the client leaving.
const watchAfter = 100 * time.Millisecond

// clientWatch notices a client that closes its connection while its
// request (one without a body, so nothing else reads the connection)
// is still being answered, and then cancels the requests' context, which
// aborts the request to the instance. It starts only for requests slower
// than watchAfter: a read in the background costs more than most
// requests.
type clientWatch struct {
	sc      *srvConn
	br      *bufio.Reader
	t       *time.Timer
	mu      sync.Mutex
	stopped bool
	started bool
	done    chan struct{}
	gone    bool // set before done is closed
	once    sync.Once
	alive   bool // stop's answer
}

func (s *server) watchClient(sc *srvConn, br *bufio.Reader) *clientWatch {
	w := &clientWatch{sc: sc, br: br, done: make(chan struct{})}
	w.t = time.AfterFunc(watchAfter, w.watch)
	return w
}

// watch runs in the timer's goroutine: it waits for a byte or the end of
// the connection; bytes (a pipelined request) stay in br for the loop.
func (w *clientWatch) watch() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.started = true
	w.mu.Unlock()
	defer close(w.done)
	if _, err := w.br.Peek(1); err != nil && !isTimeout(err) {
		w.gone = true
		w.sc.cancel()
	}
}

// stop ends the watch once the answer is done (or the connection is
// hijacked: nothing may read it behind the new owner's back); it reports
// whether the client is still there.
func (w *clientWatch) stop() bool {
	w.once.Do(func() {
		w.mu.Lock()
		w.stopped = true
		started := w.started
		w.mu.Unlock()
		w.t.Stop()
		w.alive = true
		if !started {
			return
		}
		_ = w.sc.SetReadDeadline(time.Unix(1, 0)) // wake the watch's read
		<-w.done
		_ = w.sc.SetReadDeadline(time.Time{})
		w.alive = !w.gone
	})
	return w.alive
}

// handle runs the proxy's handler; it returns false when the handler
// aborted (panicked): the connection is then closed.
func (s *server) handle(w *respWriter, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if err, _ := v.(error); !errors.Is(err, http.ErrAbortHandler) {
				s.log.Error("proxy handler panic", "panic", v)
			}
			ok = false
		}
	}()
	s.h.ServeHTTP(w, req)
	return true
}

// toHTTP2 hands a connection that opened with the HTTP/2 preface to the
// HTTP/2 server, replaying what was read of it.
func (s *server) toHTTP2(sc *srvConn, br *bufio.Reader) bool {
	b, err := br.Peek(len(h2Preface))
	if err != nil || string(b) != h2Preface {
		return false
	}
	s.forget(sc)
	buffered, _ := br.Peek(br.Buffered())
	_ = sc.SetReadDeadline(time.Time{})
	pc := &prefixConn{Conn: sc.Conn, r: io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), sc.Conn)}
	if !s.h2ln.push(pc) {
		sc.Close()
	}
	return true
}

// prefixConn replays bytes already read before the connection's own.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// chanListener hands connections to an http.Server.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// respWriter is the http.ResponseWriter of server: it writes the status
// line and header at the first Write (or WriteHeader), frames the body
// with the handler's Content-Length or else chunked (HTTP/1.1) or by
// closing (HTTP/1.0), and supports Flush and Hijack.
type respWriter struct {
	c     net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	req   *http.Request
	watch *clientWatch // nil for a request with a body

	header        http.Header
	wroteHeader   bool
	status        int
	noBody        bool
	chunked       bool
	contentLength int64 // -1: unknown
	written       int64
	close         bool // close the connection after this answer
	hijacked      bool
	err           error
}

func (w *respWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header, 8)
	}
	return w.header
}

func (w *respWriter) WriteHeader(code int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	h := w.Header()
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.writeHead(code, h) // informational: the real answer follows
		clear(h)
		return
	}
	w.wroteHeader, w.status = true, code
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified ||
		code == http.StatusSwitchingProtocols
	if v := h["Content-Length"]; len(v) > 0 {
		// One valid length (or the same one repeated), else none: the
		// body is then chunked, never framed two ways.
		n, err := strconv.ParseUint(v[0], 10, 63)
		if err == nil && !slices.ContainsFunc(v[1:], func(s string) bool { return s != v[0] }) {
			w.contentLength = int64(n)
			h["Content-Length"] = v[:1]
		} else {
			delete(h, "Content-Length")
		}
	}
	delete(h, "Transfer-Encoding")
	if w.req.Close || !w.req.ProtoAtLeast(1, 1) && !hasToken(w.req.Header["Connection"], "keep-alive") {
		w.close = true
	}
	if !w.noBody && w.contentLength < 0 {
		if w.req.ProtoAtLeast(1, 1) {
			w.chunked = true
			h["Transfer-Encoding"] = chunkedTE
		} else {
			w.close = true // the end of the connection ends the body
		}
	}
	switch {
	case code == http.StatusSwitchingProtocols:
	case w.close:
		h["Connection"] = connClose
	case !w.req.ProtoAtLeast(1, 1):
		h["Connection"] = connKeepAlive
	}
	w.writeHead(code, h)
}

var (
	chunkedTE     = []string{"chunked"}
	connClose     = []string{"close"}
	connKeepAlive = []string{"keep-alive"}
)

func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

// writeHead writes a status line and header fields (trailer fields,
// named with http.TrailerPrefix, wait for the end of the body).
func (w *respWriter) writeHead(code int, h http.Header) {
	bw := w.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	bw.WriteString(text)
	bw.WriteString("\r\n")
	writeFields(bw, h, false)
	bw.WriteString("\r\n")
	if code < 200 || code == http.StatusSwitchingProtocols {
		w.err = bw.Flush()
	}
}

// writeFields writes header (or, with trailers, trailer) fields, leaving
// out values that would break the message.
func writeFields(bw *bufio.Writer, h http.Header, trailers bool) {
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) != trailers {
			continue
		}
		name := strings.TrimPrefix(k, http.TrailerPrefix)
		for _, v := range vv {
			if strings.ContainsAny(v, "\r\n") || strings.ContainsAny(name, "\r\n: ") {
				continue
			}
			bw.WriteString(name)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if w.contentLength >= 0 && w.written+int64(len(b)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	if len(b) == 0 {
		return 0, nil
	}
	if w.chunked {
		w.bw.WriteString(strconv.FormatInt(int64(len(b)), 16))
		w.bw.WriteString("\r\n")
	}
	n, err := w.bw.Write(b)
	if w.chunked && err == nil {
		_, err = w.bw.WriteString("\r\n")
	}
	w.written += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// FlushError sends what is buffered (http.ResponseController's Flush).
func (w *respWriter) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	w.err = w.bw.Flush()
	return w.err
}

// Flush implements http.Flusher.
func (w *respWriter) Flush() { _ = w.FlushError() }

// Hijack hands the connection over (protocol upgrades).
func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.watch != nil {
		w.watch.stop()
	}
	if err := w.bw.Flush(); err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	_ = w.c.SetDeadline(time.Time{})
	return w.c, bufio.NewReadWriter(w.br, w.bw), nil
}

// finish ends the answer: the header if nothing was written, the last
// chunk and the trailers, and a flush.
func (w *respWriter) finish() {
	if !w.wroteHeader {
		w.Header()["Content-Length"] = []string{"0"}
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked {
		w.bw.WriteString("0\r\n")
		if names := w.header["Trailer"]; len(names) > 0 {
			t := http.Header{}
			for _, v := range names {
				for f := range strings.SplitSeq(v, ",") {
					k := http.CanonicalHeaderKey(strings.TrimSpace(f))
					if vv := w.header[k]; len(vv) > 0 {
						t[http.TrailerPrefix+k] = vv
					}
				}
			}
			writeFields(w.bw, t, true)
		}
		writeFields(w.bw, w.header, true)
		w.bw.WriteString("\r\n")
	}
	if !w.noBody && w.contentLength >= 0 && w.written != w.contentLength {
		w.close = true // the client would read the next answer as this one's body
	}
	if err := w.bw.Flush(); err != nil || w.err != nil {
		w.close = true
	}
}
