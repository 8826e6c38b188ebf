package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	// udpReadSize is the largest query read over UDP; a longer one is cut
	// and answered FORMERR.
	udpReadSize = 4096
	// shutdownTimeout bounds how long in-flight answers may finish.
	shutdownTimeout = 5 * time.Second
)

// tcpWriteTimeout bounds each write of an answer over TCP (a variable for
// tests). miekg/dns sets no write deadline, so without one a client that
// stops reading would block its connection's goroutine, and shutdown,
// for good.
var tcpWriteTimeout = 5 * time.Second

// writeDeadlineListener gives every accepted connection a write deadline
// of tcpWriteTimeout per write.
type writeDeadlineListener struct{ net.Listener }

func (l writeDeadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return writeDeadlineConn{c}, nil
}

type writeDeadlineConn struct{ net.Conn }

func (c writeDeadlineConn) Write(b []byte) (int, error) {
	if err := c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
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
	tcp := netutil.LimitListener(writeDeadlineListener{ln}, maxTCPConns)
	s.servers = append(s.servers, &dns.Server{Listener: tcp, Handler: h, MsgAcceptFunc: accept, MsgInvalidFunc: invalid})
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
