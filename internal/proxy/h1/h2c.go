package h1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync"
	"time"
)

// h2Preface opens every HTTP/2 connection (RFC 9113, section 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// toHTTP2 hands a connection that opened with the HTTP/2 preface to the
// HTTP/2 server, replaying what was read of it.
func (s *Server) toHTTP2(sc *srvConn, br *bufio.Reader) bool {
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
