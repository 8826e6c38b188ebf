package dnsserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/testutil"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestTCPClientThatDoesNotRead: a client that pipelines queries over TCP
// and never reads the answers holds its connection only until a write
// times out; then the connection is closed, and shutdown is not held up.
func TestTCPClientThatDoesNotRead(t *testing.T) {
	// Restored after the server stops (cleanups run last first).
	wt, mq := tcpWriteTimeout, maxTCPQueries
	t.Cleanup(func() { tcpWriteTimeout, maxTCPQueries = wt, mq })
	tcpWriteTimeout = 200 * time.Millisecond
	maxTCPQueries = 128 // 128 unread answers overflow the sockets' buffers

	// 60 instances with about 1 KB of TXT data each: a TXT answer for the
	// service is about 60 KB, and 128 of them far exceed the sockets'
	// buffers.
	reg := newRegistry()
	ins := make([]inst, 60)
	for i := range ins {
		meta := map[string]string{}
		for k := range 4 {
			meta[fmt.Sprintf("k%d", k)] = fmt.Sprintf("%02d", i) + strings.Repeat("v", 240)
		}
		ins[i] = inst{Instance: registry.Instance{Service: "fat", ID: fmt.Sprintf("fat-%02d", i),
			Address: fmt.Sprintf("10.0.0.%d", i+1), Port: 80, Meta: meta}}
	}
	register(t, reg, ins...)
	logs := &syncBuffer{}
	h := newHandler(t, reg, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	s, err := Listen("127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of its context ending")
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})

	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	q := pack(t, question("fat.service.roster.", dns.TypeTXT))
	var queries []byte
	for range 128 {
		queries = binary.BigEndian.AppendUint16(queries, uint16(len(q)))
		queries = append(queries, q...)
	}
	if _, err := conn.Write(queries); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		return strings.Contains(logs.String(), "write answer"), "no write timed out"
	})
	// The server closed the connection: reading ends (EOF, or a reset
	// since it had unread queries) rather than running into the deadline.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection stayed open after a failed write: %v", err)
		}
	}
	stop() // fails the test if Run does not return
}

// tcpQuery sends one query on c and reads its answer.
func tcpQuery(c *dns.Conn, name string) (*dns.Msg, error) {
	if err := c.WriteMsg(question(name, dns.TypeA)); err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c.ReadMsg()
}

// expectClosed fails the test unless the server closes c (a read ends in
// EOF or a reset, not an answer) within wait.
func expectClosed(t *testing.T, c *dns.Conn, wait time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	r, err := c.ReadMsg()
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("got an answer, want the connection closed: %v", r)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("the connection was still open after %v", wait)
	}
}

// TestTCPPerSourceLimit: one source holds at most maxTCPConnsPerSource
// connections; one more is closed at once, and a freed slot serves again.
func TestTCPPerSourceLimit(t *testing.T) {
	h := newHandler(t, fixture(t))
	addr := serve(t, h)
	var held []*dns.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range maxTCPConnsPerSource {
		c, err := dns.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if _, err := tcpQuery(c, "web.service.roster."); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
	}
	extra, err := dns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err) // the kernel accepts; roster closes it
	}
	defer extra.Close()
	_ = extra.WriteMsg(question("web.service.roster.", dns.TypeA))
	expectClosed(t, extra, 2*time.Second)
	if n := counter(t, h.m.tcpRejected); n != 1 {
		t.Errorf("roster_dns_tcp_rejected_total = %v, want 1", n)
	}
	// The held connections still work, and closing one frees its slot.
	if _, err := tcpQuery(held[0], "web.service.roster."); err != nil {
		t.Fatalf("a held connection: %v", err)
	}
	held[0].Close()
	held = held[1:]
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		c, err := dns.Dial("tcp", addr)
		if err != nil {
			return false, err.Error()
		}
		defer c.Close()
		_, err = tcpQuery(c, "web.service.roster.")
		return err == nil, "no slot freed"
	})
}

// TestTCPQueryLimit: one connection answers at most maxTCPQueries queries,
// then the server closes it.
func TestTCPQueryLimit(t *testing.T) {
	addr := serve(t, newHandler(t, fixture(t)))
	c, err := dns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	answered := 0
	for range maxTCPQueries + 1 {
		if _, err := tcpQuery(c, "web.service.roster."); err != nil {
			break
		}
		answered++
	}
	if answered != maxTCPQueries {
		t.Errorf("%d queries answered on one connection, want %d", answered, maxTCPQueries)
	}
}

// TestTCPIdleTimeout: a connection that sends nothing after a query is
// closed after tcpIdleTimeout (miekg/dns alone would wait 8 s).
func TestTCPIdleTimeout(t *testing.T) {
	addr := serve(t, newHandler(t, fixture(t)))
	c, err := dns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := tcpQuery(c, "web.service.roster."); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	expectClosed(t, c, tcpIdleTimeout+2*time.Second)
	if d := time.Since(start); d < tcpIdleTimeout-time.Second {
		t.Errorf("closed after %v, before the idle timeout of %v", d, tcpIdleTimeout)
	}
}

// TestTCPConnLifetime: a connection is read from for tcpConnLifetime at
// most, even while it is within its idle timeout.
func TestTCPConnLifetime(t *testing.T) {
	lt := tcpConnLifetime
	t.Cleanup(func() { tcpConnLifetime = lt }) // after the server stops
	tcpConnLifetime = 500 * time.Millisecond   // well under tcpIdleTimeout
	addr := serve(t, newHandler(t, fixture(t)))
	c, err := dns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := tcpQuery(c, "web.service.roster."); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c, tcpIdleTimeout-time.Second)
	if d := time.Since(start); d < tcpConnLifetime {
		t.Errorf("closed after %v, before its lifetime of %v", d, tcpConnLifetime)
	}
}
