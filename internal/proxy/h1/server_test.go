package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// serveLoop serves h with a Server of cfg on a loopback port until the
// test ends; it returns the address and a func that shuts the server down
// (letting requests finish for up to drain) and waits for it.
func serveLoop(t *testing.T, h http.Handler, drain time.Duration, cfg ServerConfig) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := NewServer(h, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), drain)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Logf("shutdown: %v", err)
			}
			<-done
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// rawConn is a client connection that writes raw requests and reads
// answers.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// answer reads one answer to a request of method, body included.
func (r *rawConn) answer(method string) (*http.Response, string) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp, string(b)
}

func TestServerLoop(t *testing.T) {
	addr, _ := serveLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/len":
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "fixed")
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "one,")
			http.NewResponseController(w).Flush()
			_, _ = io.WriteString(w, "two")
			w.Header().Set("X-Sum", "2")
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		case "/empty":
		case "/abort":
			_, _ = io.WriteString(w, "partial")
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}
	}), time.Second, ServerConfig{})

	t.Run("keep-alive, lengths, chunks and trailers", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("GET /len HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.answer("GET")
		if resp.StatusCode != 200 || body != "fixed" || resp.ContentLength != 5 {
			t.Fatalf("/len: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
		}
		c.send("GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body = c.answer("GET")
		if body != "one,two" || len(resp.TransferEncoding) == 0 || resp.Trailer.Get("X-Sum") != "2" {
			t.Fatalf("/chunked: %q, TE %v, trailer %v", body, resp.TransferEncoding, resp.Trailer)
		}
		c.send("GET /empty HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body = c.answer("GET"); resp.StatusCode != 200 || body != "" || resp.ContentLength != 0 {
			t.Fatalf("/empty: %d %q %d", resp.StatusCode, body, resp.ContentLength)
		}
		c.send("HEAD /len HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body = c.answer("HEAD"); resp.ContentLength != 5 || body != "" {
			t.Fatalf("HEAD: length %d body %q", resp.ContentLength, body)
		}
	})
	t.Run("pipelined requests answered in order", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcPOST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n")
		if _, body := c.answer("POST"); body != "abc" {
			t.Fatalf("first: %q", body)
		}
		if _, body := c.answer("POST"); body != "de" {
			t.Fatalf("second: %q", body)
		}
	})
	t.Run("expect 100-continue", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
		line, err := c.br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("before the body: %q %v", line, err)
		}
		_, _ = c.br.ReadString('\n')
		c.send("hi")
		if _, body := c.answer("PUT"); body != "hi" {
			t.Fatalf("body %q", body)
		}
	})
	t.Run("HTTP/1.0 closes", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("GET /chunked HTTP/1.0\r\n\r\n")
		b, err := io.ReadAll(c.br)
		if err != nil || !strings.Contains(string(b), "Connection: close") || !strings.HasSuffix(string(b), "\r\n\r\none,two") {
			t.Fatalf("HTTP/1.0 answer %q, %v", b, err)
		}
	})
	t.Run("bad request", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("NOT HTTP\r\n\r\n")
		if resp, _ := c.answer("GET"); resp.StatusCode != 400 {
			t.Fatalf("garbage: %d", resp.StatusCode)
		}
	})
	t.Run("aborted answer closes the connection", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("GET /abort HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Fatal("an aborted chunked answer read as complete")
		}
	})
	t.Run("h2c", func(t *testing.T) {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		hc := &http.Client{Transport: &http.Transport{Protocols: &protos}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get("http://" + addr + "/len")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(b) != "fixed" {
			t.Fatalf("h2c: %s %q", resp.Proto, b)
		}
	})
}

// TestServerShutdown: idle connections close at once, a request in flight
// finishes, new connections are refused.
func TestServerShutdown(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(open)
	started := make(chan struct{})
	addr, stop := serveLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		_, _ = io.WriteString(w, "done")
	}), 20*time.Second, ServerConfig{})
	idle := dialRaw(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idle.answer("GET")
	busy := dialRaw(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	// The idle connection is closed by the server.
	if _, err := idle.br.ReadByte(); err == nil {
		t.Fatal("idle connection not closed at shutdown")
	}
	ctx := testutil.Context(t, 10*time.Second)
	testutil.WaitFor(t, ctx, "the listener to close", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	open()
	if resp, body := busy.answer("GET"); resp.StatusCode != 200 || body != "done" {
		t.Fatalf("in-flight request: %d %q", resp.StatusCode, body)
	}
	<-stopped
}

// TestServerLoopFraming: what the loop must refuse or close so that no
// byte of one message is read as part of another.
func TestServerLoopFraming(t *testing.T) {
	var smuggled, big atomic.Int64
	addr, _ := serveLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/smuggled":
			smuggled.Add(1)
		case "/big":
			big.Add(1)
		case "/read":
			if _, err := io.ReadAll(r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		case "/two-lengths":
			w.Header()["Content-Length"] = []string{"5", "100"}
			_, _ = io.WriteString(w, "hello")
			return
		case "/same-lengths":
			w.Header()["Content-Length"] = []string{"5", "5"}
			_, _ = io.WriteString(w, "hello")
			return
		}
		_, _ = io.WriteString(w, "ok")
	}), time.Second, ServerConfig{MaxHeaderBytes: 64 << 10})

	t.Run("a broken chunked body ends the connection", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" +
			"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := c.answer("POST"); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("broken body answered %d", resp.StatusCode)
		}
		if b, err := io.ReadAll(c.br); err != nil || len(b) != 0 {
			t.Fatalf("after a broken body the connection went on: %q, %v", b, err)
		}
		if n := smuggled.Load(); n != 0 {
			t.Fatalf("bytes after a broken body were served as %d request(s)", n)
		}
	})
	t.Run("HTTP/1.1 needs a valid Host", func(t *testing.T) {
		for _, req := range []string{
			"GET /big HTTP/1.1\r\n\r\n",
			"GET /big HTTP/1.1\r\nHost: a b\r\n\r\n",
			"GET /big HTTP/1.1\r\nHost: a\x01\r\n\r\n",
		} {
			c := dialRaw(t, addr)
			c.send(req)
			if resp, _ := c.answer("GET"); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%q answered %d, want 400", req, resp.StatusCode)
			}
		}
		if n := big.Load(); n != 0 {
			t.Errorf("%d bad-Host requests reached the handler", n)
		}
		for _, req := range []string{"GET /ok HTTP/1.0\r\n\r\n", "GET /ok HTTP/1.1\r\nHost: example.com:80\r\n\r\n"} {
			c := dialRaw(t, addr)
			c.send(req) // HTTP/1.0 needs none
			if resp, _ := c.answer("GET"); resp.StatusCode != http.StatusOK {
				t.Errorf("%q answered %d", req, resp.StatusCode)
			}
		}
	})
	t.Run("a header past the limit is refused", func(t *testing.T) {
		c := dialRaw(t, addr)
		go func() { // the server may stop reading (and close) before all is sent
			_, _ = io.WriteString(c.c, "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 256<<10)+"\r\n\r\n")
		}()
		resp, err := http.ReadResponse(c.br, nil)
		if err == nil && resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("oversized header answered %d", resp.StatusCode)
		}
		if n := big.Load(); n != 0 {
			t.Fatal("a request with an oversized header was served")
		}
	})
	t.Run("differing Content-Lengths from the handler are not sent", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("GET /two-lengths HTTP/1.1\r\nHost: x\r\n\r\nGET /same-lengths HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.answer("GET")
		if _, ok := resp.Header["Content-Length"]; ok || body != "hello" {
			t.Fatalf("answer with two lengths: %d, header %v, body %q", resp.StatusCode, resp.Header, body)
		}
		resp, body = c.answer("GET")
		if resp.ContentLength != 5 || body != "hello" {
			t.Fatalf("answer with a repeated length: length %d body %q", resp.ContentLength, body)
		}
	})
}

// TestServerLoopUnreadBody: a body the handler left unread is discarded
// within the header timeout, not waited for forever.
func TestServerLoopUnreadBody(t *testing.T) {
	addr, _ := serveLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "early")
	}), time.Second, ServerConfig{ReadHeaderTimeout: 200 * time.Millisecond})
	c := dialRaw(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
	if _, body := c.answer("POST"); body != "early" {
		t.Fatalf("answer %q", body)
	}
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("connection with a stalled body: %v, want it closed", err)
	}
}

// TestServerLoopHijackAfterWatch: a connection hijacked (an upgrade) by a
// request slow enough for the client watch to start gets every byte the
// client sends afterwards.
func TestServerLoopHijackAfterWatch(t *testing.T) {
	addr, _ := serveLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An instance slow to accept the upgrade: the watch is reading by now.
		time.Sleep(3 * watchAfter)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		// Like httputil.ReverseProxy, read the connection itself.
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err == nil {
			_, _ = io.WriteString(conn, "echo: "+line)
		}
	}), time.Second, ServerConfig{})
	c := dialRaw(t, addr)
	_ = c.c.SetDeadline(time.Now().Add(5 * time.Second))
	c.send("GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	c.send("hello\n")
	if line, err := c.br.ReadString('\n'); err != nil || line != "echo: hello\n" {
		t.Fatalf("after the upgrade: %q, %v", line, err)
	}
}
