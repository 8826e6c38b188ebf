package h1

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
)

// memConn is a connection whose reads come from r (then io.EOF) and whose
// writes are kept; deadlines are accepted and ignored, so that nothing in
// a fuzz run waits.
type memConn struct {
	r  io.Reader
	mu sync.Mutex
	w  bytes.Buffer
}

func (c *memConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (c *memConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Write(b)
}

func (c *memConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.w.Bytes())
}

func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzServeConn feeds bytes to the server loop as one client connection.
// Properties: no panic; every request the handler gets has a method, a
// valid Host (not empty on HTTP/1.1) and the client's address; what the
// loop writes back is a sequence of well-formed answers, one per handled
// request and in their order (after 100 Continue where asked), followed
// at most by one 400 or 431 that closes the connection.
func FuzzServeConn(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcPOST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n",
		"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n",
		"NOT HTTP\r\n\r\n",
		h2Preface,
		"PRI * HTTP/1.1\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var (
			mu      sync.Mutex
			methods []string
		)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "" || !httpguts.ValidHostHeader(r.Host) || (r.ProtoAtLeast(1, 1) && r.Host == "") {
				t.Errorf("handler got method %q, host %q, proto %s", r.Method, r.Host, r.Proto)
			}
			if r.RemoteAddr != "127.0.0.1:40000" {
				t.Errorf("handler got remote address %q", r.RemoteAddr)
			}
			mu.Lock()
			methods = append(methods, r.Method)
			mu.Unlock()
			if _, err := io.ReadAll(r.Body); err != nil {
				http.Error(w, "bad body", http.StatusBadRequest)
				return
			}
			_, _ = io.WriteString(w, "ok "+r.Method)
		})
		s := NewServer(h, ServerConfig{MaxHeaderBytes: 4 << 10})
		s.h2ln.Close() // a connection handed to HTTP/2 is closed
		c := &memConn{r: bytes.NewReader(in)}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s.serveConn(ctx, &srvConn{Conn: c, cancel: cancel})

		out := bufio.NewReader(bytes.NewReader(c.written()))
		for i := 0; ; {
			if _, err := out.Peek(1); err == io.EOF {
				if i != len(methods) {
					t.Fatalf("%d answers to %d handled requests", i, len(methods))
				}
				return
			}
			method := http.MethodGet
			if i < len(methods) {
				method = methods[i]
			}
			resp, err := http.ReadResponse(out, &http.Request{Method: method})
			if err != nil {
				t.Fatalf("answer %d does not parse: %v", i, err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("answer %d: body: %v", i, err)
			}
			if resp.StatusCode == http.StatusContinue {
				continue
			}
			if i == len(methods) {
				if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !resp.Close {
					t.Fatalf("answer past the handled requests: %d (close %v)", resp.StatusCode, resp.Close)
				}
				if rest, _ := io.ReadAll(out); len(rest) != 0 {
					t.Fatalf("%d bytes after the closing answer", len(rest))
				}
				return
			}
			want := "ok " + method
			if method == http.MethodHead {
				want = ""
			}
			if resp.StatusCode == http.StatusOK && string(body) != want {
				t.Fatalf("answer %d to %s: body %q", i, method, body)
			}
			i++
		}
	})
}

// FuzzTransportAnswer sends a PUT through Transport to a connection that
// answers the fuzzed bytes. Properties: no panic; the request as written
// reads back (http.ReadRequest) with its method, path, Host, header value
// and body; an answer taken is final (not 1xx); and once its body is done
// the request holds nothing: no connection slot, no reference to its
// host, and the connection pooled only if it may be reused.
func FuzzTransportAnswer(f *testing.F) {
	for _, s := range []struct{ answer, value, body string }{
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "v", "body"},
		{"HTTP/1.1 204 No Content\r\n\r\n", "", ""},
		{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n", "a, b", "x"},
		{"HTTP/1.1 101 Switching Protocols\r\n\r\n", "v", ""},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", "v", "b"},
		{"HTTP/1.0 200 OK\r\n\r\nold", "v", "b"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "v", "b"},
		{"HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 2<<10) + "\r\n\r\n", "v", "b"},
		{"HTTP/1.1 2000 OK\r\n\r\n", "v\r\nX-Injected: 1", "b"},
		{"garbage", "v", "b"},
		{"", "v", "b"},
	} {
		f.Add([]byte(s.answer), s.value, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, answer []byte, value string, body []byte) {
		c := &memConn{r: bytes.NewReader(answer)}
		tr := &Transport{
			Dial:                   func(context.Context, string, string) (net.Conn, error) { return c, nil },
			MaxIdlePerHost:         1,
			MaxConnsPerHost:        1,
			MaxResponseHeaderBytes: 1 << 10,
		}
		req, err := http.NewRequest(http.MethodPut, "http://instance/p?q=1", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.GetBody = nil // sent once
		req.Host = "example.com"
		req.Header.Set("X-V", value)
		resp, err := tr.RoundTrip(req)
		if err == nil {
			if resp.StatusCode < 200 {
				t.Fatalf("took an informational answer %d", resp.StatusCode)
			}
			_, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body.Close() // twice is harmless
		}
		hc := tr.hosts["instance"]
		if hc == nil {
			t.Fatal("host forgotten while the connection's state is unknown")
		}
		if hc.refs != 0 || len(hc.sem) != 0 {
			t.Fatalf("after the answer: %d references, %d connection slots held", hc.refs, len(hc.sem))
		}
		if len(hc.idle) > 0 && (err != nil || resp.Close) {
			t.Fatalf("connection pooled after an error (%v) or an answer that closes it", err)
		}

		sent, rerr := http.ReadRequest(bufio.NewReader(bytes.NewReader(c.written())))
		if rerr != nil {
			if printable(value) {
				t.Fatalf("the request as written does not parse: %v", rerr)
			}
			return
		}
		got, _ := io.ReadAll(sent.Body)
		if sent.Method != http.MethodPut || sent.RequestURI != "/p?q=1" || sent.Host != "example.com" || !bytes.Equal(got, body) {
			t.Fatalf("sent %s %s host %q body %q", sent.Method, sent.RequestURI, sent.Host, got)
		}
		if printable(value) && sent.Header.Get("X-V") != strings.TrimSpace(value) {
			t.Fatalf("header value %q arrived as %q", value, sent.Header.Get("X-V"))
		}
		if v := sent.Header.Get("X-V"); strings.ContainsAny(v, "\r\n") || len(sent.Header) > 3 {
			t.Fatalf("a header value broke the request: %v", sent.Header)
		}
	})
}

// printable reports whether v is visible ASCII and spaces only.
func printable(v string) bool {
	for _, r := range []byte(v) {
		if r < ' ' || r > '~' {
			return false
		}
	}
	return true
}
