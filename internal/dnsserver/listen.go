package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"
)

// Server limits.
const (
	// maxTCPConns bounds concurrent TCP connections; more wait in the
	// kernel's accept queue.
	maxTCPConns = 1024
	// maxTCPConnsPerSource bounds the TCP connections of one source
	// address (IPv6: one /64); a connection over it is closed at once,
	// so one client cannot take every slot of maxTCPConns.
	maxTCPConnsPerSource = 16
	// tcpReadTimeout is how long a new TCP connection may take to send
	// its first query; tcpIdleTimeout how long an open one may wait
	// between queries (miekg/dns would wait 8 s).
	tcpReadTimeout = 2 * time.Second
	tcpIdleTimeout = 3 * time.Second
	// udpReadSize is the largest query read over UDP; a longer one is cut
	// and answered FORMERR.
	udpReadSize = 4096
	// shutdownTimeout bounds how long in-flight answers may finish.
	shutdownTimeout = 5 * time.Second
)

// tcpWriteTimeout bounds each write of an answer over TCP. miekg/dns
// sets no write deadline, so without one a client that stops reading
// would block its connection's goroutine, and shutdown, for good.
// tcpConnLifetime bounds how long a TCP connection is read from, however
// busy: after it the connection is closed once the answer in progress
// is written. maxTCPQueries is the most queries answered on one
// connection (miekg/dns: 128). Variables for tests.
var (
	tcpWriteTimeout = 5 * time.Second
	tcpConnLifetime = 30 * time.Second
	maxTCPQueries   = 64
)

// tcpListener bounds the connections of each source to
// maxTCPConnsPerSource and gives every connection a write deadline per
// write and a lifetime.
type tcpListener struct {
	net.Listener
	rejected func() // counts a connection closed for its source
	mu       sync.Mutex
	open     map[netip.Addr]int
}

func newTCPListener(ln net.Listener, rejected func()) *tcpListener {
	return &tcpListener{Listener: ln, rejected: rejected, open: make(map[netip.Addr]int)}
}

func (l *tcpListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, ok := sourceKey(c.RemoteAddr())
		if ok && !l.take(key) {
			c.Close()
			l.rejected()
			continue
		}
		tc := &tcpConn{Conn: c, end: time.Now().Add(tcpConnLifetime)}
		if ok {
			tc.release = func() { l.give(key) }
		}
		return tc, nil
	}
}

func (l *tcpListener) take(key netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key] >= maxTCPConnsPerSource {
		return false
	}
	l.open[key]++
	return true
}

func (l *tcpListener) give(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// tcpConn is an accepted connection: each write has tcpWriteTimeout, no
// read deadline passes its end, and closing it frees its source's slot
// once.
type tcpConn struct {
	net.Conn
	end     time.Time
	release func()
	once    sync.Once
}

func (c *tcpConn) Write(b []byte) (int, error) {
	if err := c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *tcpConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() || t.After(c.end) {
		t = c.end
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *tcpConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *tcpConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.release != nil {
			c.release()
		}
	})
	return err
}

// Server serves a Handler over UDP and TCP on one address. UDP is read
// from several sockets sharing the port (SO_REUSEPORT, on Linux), one per
// CPU, so reads are not funnelled through one goroutine.
type Server struct {
	servers []*dns.Server // the UDP ones, then TCP
	addr    string
}

// Listen binds UDP and TCP on addr, the same port for both: with port 0
// the kernel picks a port free for both. It does not serve until Run.
func Listen(addr string, h *Handler) (*Server, error) {
	pcs, ln, err := bind(addr, udpSockets())
	if err != nil {
		return nil, err
	}
	accept := func(dh dns.Header) dns.MsgAcceptAction {
		a := dns.DefaultMsgAcceptFunc(dh)
		if a != dns.MsgAccept {
			h.m.malformed.Inc()
		}
		return a
	}
	invalid := func([]byte, error) { h.m.malformed.Inc() }
	s := &Server{addr: ln.Addr().String()}
	for _, pc := range pcs {
		s.servers = append(s.servers, &dns.Server{PacketConn: pc, Handler: h, UDPSize: udpReadSize, MsgAcceptFunc: accept, MsgInvalidFunc: invalid})
	}
	tcp := netutil.LimitListener(newTCPListener(ln, h.m.tcpRejected.Inc), maxTCPConns)
	s.servers = append(s.servers, &dns.Server{Listener: tcp, Handler: h, MsgAcceptFunc: accept, MsgInvalidFunc: invalid,
		ReadTimeout: tcpReadTimeout, IdleTimeout: func() time.Duration { return tcpIdleTimeout }, MaxTCPQueries: maxTCPQueries})
	return s, nil
}

// bind listens on TCP, then on n UDP sockets at the same address (n > 1
// only where the port can be shared). TCP goes first and never shares its
// port, so a second agent on the same address fails there instead of
// taking a share of the UDP queries. With port 0 it retries a few times
// if the port the kernel gave for TCP is taken for UDP.
func bind(addr string, n int) ([]net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns listen %s: %w", addr, err)
	}
	for try := 0; ; try++ {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns listen tcp %s: %w", addr, err)
		}
		udpAddr := net.JoinHostPort(host, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
		pcs, err := listenUDP(udpAddr, n)
		if err == nil {
			return pcs, ln, nil
		}
		ln.Close()
		if port != "0" || try == 9 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("dns listen udp %s: %w", addr, err)
		}
	}
}

// listenUDP opens n sockets on addr; more than one shares the port.
func listenUDP(addr string, n int) ([]net.PacketConn, error) {
	lc := net.ListenConfig{}
	if n > 1 {
		lc.Control = reusePort
	}
	var pcs []net.PacketConn
	for range n {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			for _, p := range pcs {
				p.Close()
			}
			return nil, err
		}
		pcs = append(pcs, pc)
	}
	return pcs, nil
}

// Addr is the host:port both transports listen on.
func (s *Server) Addr() string { return s.addr }

// Run serves until ctx ends, then stops accepting and lets in-flight
// answers finish (at most 5 s). It returns early with an error if a
// socket fails.
func (s *Server) Run(ctx context.Context) error {
	type srv struct {
		s       *dns.Server
		started chan struct{}
		done    chan error
	}
	all := make([]*srv, len(s.servers))
	errc := make(chan error, len(all))
	for i, ds := range s.servers {
		x := &srv{s: ds, started: make(chan struct{}), done: make(chan error, 1)}
		all[i] = x
		x.s.NotifyStartedFunc = func() { close(x.started) }
		go func() {
			err := x.s.ActivateAndServe()
			x.done <- err
			errc <- err
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("dns serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, x := range all {
		select {
		case <-x.started:
			_ = x.s.ShutdownContext(sctx)
		case <-x.done:
			x.done <- nil // keep it for the wait below
		}
	}
	for _, x := range all {
		<-x.done
	}
	return err
}

// Close releases the sockets of a Server that was never Run.
func (s *Server) Close() error {
	var errs []error
	for _, ds := range s.servers {
		if ds.PacketConn != nil {
			errs = append(errs, ds.PacketConn.Close())
		} else {
			errs = append(errs, ds.Listener.Close())
		}
	}
	return errors.Join(errs...)
}
