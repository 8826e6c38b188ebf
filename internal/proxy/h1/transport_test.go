package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestTransportPool: connections are reused, bounded per instance,
// swept when idle, and an instance's entry is forgotten only when no
// request uses it.
func TestTransportPool(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	tr := &Transport{MaxIdlePerHost: 1, IdleConnTimeout: time.Minute}
	addr := srv.Listener.Addr().String()
	get := func() *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+addr+"/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	read := func(resp *http.Response) {
		t.Helper()
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "ok" {
			t.Fatalf("body %q, %v", b, err)
		}
	}
	for range 5 {
		read(get())
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("5 sequential requests on %d connections, want 1", n)
	}
	// Two at once need two connections; only one (maxIdle) is kept.
	a, b := get(), get()
	read(a)
	read(b)
	if n := len(tr.hosts[addr].idle); n != 1 {
		t.Fatalf("%d idle connections kept, want MaxIdlePerHost 1", n)
	}
	// A sweep while a request is in flight keeps the instance's entry
	// (its connection comes back to it), and the next sweep forgets it.
	inflight := get()
	tr.CloseIdleConnections()
	if tr.hosts[addr] == nil {
		t.Fatal("instance forgotten while a request used it")
	}
	read(inflight)
	if n := len(tr.hosts[addr].idle); n != 1 {
		t.Fatalf("%d idle after the request, want its connection back", n)
	}
	tr.CloseIdleConnections()
	if tr.hosts[addr] != nil {
		t.Fatal("idle instance not forgotten")
	}
	// A body not read to its end closes its connection.
	before := conns.Load()
	resp := get()
	resp.Body.Close()
	read(get())
	if n := conns.Load() - before; n != 2 {
		t.Fatalf("%d new connections, want 2 (the unread answer's is not reused)", n)
	}
}

// TestTransportHeaderLimit: an instance's answer header, informational
// answers included, is bounded.
func TestTransportHeaderLimit(t *testing.T) {
	for _, tc := range []struct{ name, answer string }{
		{"large header", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\nContent-Length: 0\r\n\r\n"},
		{"endless 1xx", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 4<<10) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{"within the limit", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Small: a\r\nContent-Length: 0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					_, _ = io.WriteString(c, tc.answer)
				}
			}()
			tr := &Transport{MaxIdlePerHost: 1, IdleConnTimeout: time.Minute, MaxResponseHeaderBytes: 8 << 10}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+ln.Addr().String()+"/", nil)
			resp, err := tr.RoundTrip(req)
			if tc.name == "within the limit" {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatal("an answer header past the limit was taken")
			}
		})
	}
}
