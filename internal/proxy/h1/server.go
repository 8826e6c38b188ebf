package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Server is an HTTP/1.1 server loop: one goroutine per connection reads a
// request (http.ReadRequest), hands it to the handler with a lean
// http.ResponseWriter, and reads the next. Connections that open with the
// HTTP/2 preface (h2c, prior knowledge) go to a net/http server for
// HTTP/2. Requests carry a context with http.ServerContextKey (that
// net/http server) that ends when the connection is closed by force.
//
// A client that leaves is noticed for requests without a body that take
// longer than watchAfter (clientWatch); for the others, when the answer
// is written. A handler that panics has its connection closed; a panic
// other than http.ErrAbortHandler is logged.
//
// Serve runs once; Shutdown may be called from any goroutine, before or
// while Serve runs.
type Server struct {
	h          http.Handler
	log        *slog.Logger
	h2         *http.Server // h2c connections
	h2ln       *chanListener
	headerWait time.Duration // ReadHeaderTimeout
	idleWait   time.Duration // IdleTimeout
	maxHeader  int64         // bytes of a request line and header

	mu       sync.Mutex
	conns    map[*srvConn]struct{}
	ln       net.Listener  // the one Serve accepts on
	served   chan struct{} // closed when Serve returns
	shutting atomic.Bool
	wg       sync.WaitGroup
}

// ServerConfig configures a Server; the zero value takes the defaults.
type ServerConfig struct {
	// ReadHeaderTimeout bounds reading a request line and header from
	// its first byte (0: 10s); it also bounds reading what a handler
	// left of a request body before the next request.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a kept-alive connection that sends no next
	// request for that long (0: 2m).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request line and header (0:
	// http.DefaultMaxHeaderBytes); past it the answer is 431.
	MaxHeaderBytes int64
	// Logger receives handler panics and the HTTP/2 server's errors; nil
	// discards them.
	Logger *slog.Logger
}

// srvConn is one client connection.
type srvConn struct {
	net.Conn
	cancel context.CancelFunc // ends the requests' context (forced close)
	idle   atomic.Bool        // waiting for the next request
}

// NewServer returns a server of h.
func NewServer(h http.Handler, cfg ServerConfig) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{h: h, log: log, headerWait: cfg.ReadHeaderTimeout, idleWait: cfg.IdleTimeout,
		maxHeader: cfg.MaxHeaderBytes, conns: map[*srvConn]struct{}{}, h2ln: newChanListener()}
	if s.headerWait <= 0 {
		s.headerWait = 10 * time.Second
	}
	if s.idleWait <= 0 {
		s.idleWait = 2 * time.Minute
	}
	if s.maxHeader <= 0 {
		s.maxHeader = http.DefaultMaxHeaderBytes
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	s.h2 = &http.Server{Handler: h, Protocols: &protos, ReadHeaderTimeout: s.headerWait, IdleTimeout: s.idleWait,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	return s
}

// Serve accepts connections on ln and serves them until ln fails or
// Shutdown closes it; after Shutdown it returns http.ErrServerClosed, as
// net/http's Server does. It returns once it accepts no more, while the
// connections it accepted may still be served (Shutdown waits for them).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	if s.served != nil {
		s.mu.Unlock()
		return errors.New("h1: Serve called twice")
	}
	s.ln, s.served = ln, make(chan struct{})
	s.mu.Unlock()
	defer close(s.served)

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
				return http.ErrServerClosed
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

func (s *Server) forget(sc *srvConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
}

// Shutdown stops the server: it closes the listener and waits for Serve
// to return, closes idle connections at once and busy ones after their
// request; at ctx's end it closes the rest, cancels their requests'
// context and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutting.Store(true)
	ln, served := s.ln, s.served
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
		<-served
	}
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
func (s *Server) serveConn(ctx context.Context, sc *srvConn) bool {
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

// handle runs the handler; it returns false when the handler
// aborted (panicked): the connection is then closed.
func (s *Server) handle(w *respWriter, req *http.Request) (ok bool) {
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

// isTimeout reports whether err is a net.Error timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
