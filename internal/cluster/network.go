package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The first byte a client sends on a connection to the raft port (inside
// TLS when it is on) says what the connection carries.
const (
	protoRaft byte = 'R' // hashicorp/raft's RPCs (NetworkTransport)
	protoRPC  byte = 'H' // roster's internal HTTP/1.1 RPCs (rpc.go)
)

// handshakeTimeout bounds the TLS handshake and the protocol byte of an
// accepted connection.
const handshakeTimeout = 10 * time.Second

// Network is the raft port: one TCP listener, optionally TLS with client
// certificates required, carrying raft's own RPCs and roster's internal
// RPCs (forwarded writes, read barriers, lease renewals, joins, status),
// told apart by the connection's first byte.
type Network struct {
	ln        net.Listener
	advertise net.Addr
	serverTLS *tls.Config // nil: plain TCP
	clientTLS *tls.Config
	log       *slog.Logger

	raft *subListener
	rpc  *subListener

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup

	// conns are the connections handed out (accepted and dialled): closing
	// the port closes them, so peers see it at once and nothing lingers.
	connMu sync.Mutex
	conns  map[*trackedConn]struct{}
}

// NetworkConfig configures Listen.
type NetworkConfig struct {
	// Addr is the host:port to bind.
	Addr string
	// Advertise is the host:port peers reach this agent at; empty means
	// the bound address, which must then not be unspecified (0.0.0.0).
	Advertise string
	// CertFile, KeyFile and CAFile turn on TLS (all three or none): the
	// agent presents the certificate both as server and as client, and
	// accepts only peers whose certificate the CA signed. Peers are
	// dialled by the host of their address, which their certificate must
	// name (a DNS or IP subject alternative name).
	CertFile, KeyFile, CAFile string
	Logger                    *slog.Logger
}

// Listen binds the raft port.
func Listen(cfg NetworkConfig) (*Network, error) {
	n := &Network{log: cfg.Logger, done: make(chan struct{}), conns: map[*trackedConn]struct{}{}}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" || cfg.CAFile != "" {
		var err error
		if n.serverTLS, n.clientTLS, err = LoadTLS(cfg.CertFile, cfg.KeyFile, cfg.CAFile); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("raft listen %s: %w", cfg.Addr, err)
	}
	n.ln = ln
	if cfg.Advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("raft advertise address %s: %w", cfg.Advertise, err)
		}
		n.advertise = a
	} else {
		a := ln.Addr().(*net.TCPAddr)
		if a.IP.IsUnspecified() {
			ln.Close()
			return nil, fmt.Errorf("raft address %s: bound to all interfaces; set -raft-advertise to the address peers reach", cfg.Addr)
		}
		n.advertise = a
	}
	n.raft = newSubListener(n)
	n.rpc = newSubListener(n)
	n.wg.Add(1)
	go n.accept()
	return n, nil
}

// LoadTLS reads a certificate, its key and a CA bundle and returns the
// TLS configurations of the raft port: the server one requires and checks
// client certificates, the client one checks the server's.
func LoadTLS(certFile, keyFile, caFile string) (server, client *tls.Config, err error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, nil, errors.New("raft tls: a certificate, its key and a CA are all required")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("raft tls: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("raft tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("raft tls: no certificate in %s", caFile)
	}
	server = &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client, nil
}

// Addr is the address peers reach this agent's raft port at.
func (n *Network) Addr() string { return n.advertise.String() }

// TLS reports whether the raft port speaks TLS.
func (n *Network) TLS() bool { return n.serverTLS != nil }

// RaftLayer is the stream layer raft's NetworkTransport runs over.
func (n *Network) RaftLayer() raft.StreamLayer { return raftLayer{n.raft} }

// Close stops accepting, closes the listener and every connection handed
// out; one still in its handshake ends at its deadline.
func (n *Network) Close() error {
	var err error
	n.closeOnce.Do(func() {
		close(n.done)
		err = n.ln.Close()
		n.wg.Wait()
		n.connMu.Lock()
		conns := n.conns
		n.conns = nil
		n.connMu.Unlock()
		for c := range conns {
			c.Conn.Close()
		}
	})
	return err
}

// track registers a connection handed out; it fails once the port is
// closed.
func (n *Network) track(c net.Conn) (net.Conn, error) {
	t := &trackedConn{Conn: c, n: n}
	n.connMu.Lock()
	defer n.connMu.Unlock()
	if n.conns == nil {
		c.Close()
		return nil, net.ErrClosed
	}
	n.conns[t] = struct{}{}
	return t, nil
}

// trackedConn forgets itself when closed.
type trackedConn struct {
	net.Conn
	n    *Network
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.n.connMu.Lock()
		if c.n.conns != nil {
			delete(c.n.conns, c)
		}
		c.n.connMu.Unlock()
	})
	return c.Conn.Close()
}

func (n *Network) accept() {
	defer n.wg.Done()
	for {
		conn, err := n.ln.Accept()
		if err != nil {
			select {
			case <-n.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Warn("raft port: accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go n.route(conn)
	}
}

// route completes the TLS handshake, reads the protocol byte and hands the
// connection to its listener.
func (n *Network) route(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if n.serverTLS != nil {
		tc := tls.Server(conn, n.serverTLS)
		if err := tc.Handshake(); err != nil {
			n.log.Warn("raft port: tls handshake", "remote", conn.RemoteAddr().String(), "err", err)
			conn.Close()
			return
		}
		conn = tc
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	conn, err := n.track(conn)
	if err != nil {
		return
	}
	switch b[0] {
	case protoRaft:
		n.raft.deliver(conn)
	case protoRPC:
		n.rpc.deliver(conn)
	default:
		n.log.Warn("raft port: unknown protocol", "remote", conn.RemoteAddr().String(), "byte", b[0])
		conn.Close()
	}
}

// dial connects to a peer's raft port for proto.
func (n *Network) dial(ctx context.Context, addr string, proto byte) (net.Conn, error) {
	d := net.Dialer{Timeout: handshakeTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{err}
	}
	dl := time.Now().Add(handshakeTimeout)
	if cdl, ok := ctx.Deadline(); ok && cdl.Before(dl) {
		dl = cdl
	}
	_ = conn.SetDeadline(dl)
	if n.clientTLS != nil {
		cfg := n.clientTLS.Clone()
		host, _, _ := net.SplitHostPort(addr)
		cfg.ServerName = host
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, &dialError{fmt.Errorf("tls handshake with %s: %w", addr, err)}
		}
		conn = tc
	}
	if _, err := conn.Write([]byte{proto}); err != nil {
		conn.Close()
		return nil, &dialError{err}
	}
	_ = conn.SetDeadline(time.Time{})
	tc, err := n.track(conn)
	if err != nil {
		return nil, &dialError{err}
	}
	return tc, nil
}

// dialError: the connection was never made, so nothing was sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// subListener is a net.Listener fed by the router.
type subListener struct {
	n    *Network
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newSubListener(n *Network) *subListener {
	return &subListener{n: n, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *subListener) deliver(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	case <-l.n.done:
		c.Close()
	}
}

func (l *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.n.done:
		return nil, net.ErrClosed
	}
}

func (l *subListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *subListener) Addr() net.Addr { return l.n.advertise }

// raftLayer is raft.StreamLayer over the raft sub-listener.
type raftLayer struct{ *subListener }

// Close closes the whole raft port: raft's transport closes it when the
// node closes, and the internal RPCs are of no use without raft.
func (r raftLayer) Close() error {
	r.subListener.Close()
	return r.n.Close()
}

func (r raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.n.dial(ctx, string(addr), protoRaft)
}
