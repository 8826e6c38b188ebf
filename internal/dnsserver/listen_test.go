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
	defer func(d time.Duration) { tcpWriteTimeout = d }(tcpWriteTimeout)
	tcpWriteTimeout = 200 * time.Millisecond

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
