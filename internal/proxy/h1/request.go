package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// abort makes the connection's pending reads and writes fail at once
// (the client went away).
func (c *h1Conn) abort() {
	past := time.Unix(1, 0)
	_ = c.SetDeadline(past)
}

// excluded are the headers send writes itself (or leaves out).
func excluded(k string) bool {
	switch k {
	case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
		return true
	}
	return false
}

// send writes the request and reads the answer's headers, skipping
// informational (1xx) answers. answered reports whether any byte of an
// answer came (when it did, the request was certainly received).
func (t *Transport) send(c *h1Conn, req *http.Request) (resp *http.Response, answered bool, err error) {
	bw := c.bw
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		if excluded(k) {
			continue
		}
		for _, v := range vv {
			if (v == "" && k == "User-Agent") || strings.ContainsAny(v, "\r\n") {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	chunked := false
	switch {
	case body == nil:
		switch req.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			bw.WriteString("Content-Length: 0\r\n")
		}
	case req.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(req.ContentLength, 10))
		bw.WriteString("\r\n")
	default:
		chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
	if body != nil {
		if err := writeBody(bw, body, req.ContentLength, chunked); err != nil {
			return nil, false, err
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, false, err
	}
	if t.ResponseHeaderTimeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(t.ResponseHeaderTimeout))
	}
	c.lr.n = t.MaxResponseHeaderBytes
	if c.lr.n == 0 {
		c.lr.n = defaultMaxAnswerHeader
	}
	for {
		if _, err := c.br.Peek(1); err != nil {
			return nil, false, err
		}
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, true, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return nil, true, errors.New("unexpected 101 Switching Protocols")
			}
			continue // informational: not passed on
		}
		if t.ResponseHeaderTimeout > 0 {
			_ = c.SetReadDeadline(time.Time{})
		}
		c.lr.n = math.MaxInt64
		return resp, true, nil
	}
}

// writeBody streams the request body, flushing after each piece read so
// that a slow upload reaches the host as it comes.
func writeBody(bw *bufio.Writer, body io.Reader, length int64, chunked bool) error {
	bufp := buffers.Get().(*[]byte)
	defer buffers.Put(bufp)
	buf := *bufp
	var sent int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if chunked {
				bw.WriteString(strconv.FormatInt(int64(n), 16))
				bw.WriteString("\r\n")
				bw.Write(buf[:n])
				bw.WriteString("\r\n")
			} else {
				if sent+int64(n) > length {
					return fmt.Errorf("%w: more than its Content-Length", ErrBody)
				}
				bw.Write(buf[:n])
			}
			sent += int64(n)
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("%w: %w", ErrBody, rerr)
		}
	}
	if chunked {
		_, err := bw.WriteString("0\r\n\r\n")
		return err
	}
	if sent != length {
		return fmt.Errorf("%w: %d bytes of %d", ErrBody, sent, length)
	}
	return nil
}

// answerBody is an answer's body: at its end the connection goes back to
// the pool (or is closed when it cannot be reused).
type answerBody struct {
	rc      io.ReadCloser
	t       *Transport
	hc      *hostConns
	c       *h1Conn
	release func()
	reuse   bool
	stop    func() bool // stops the client-gone abort
	done    bool
}

func (b *answerBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(b.reuse)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *answerBody) Close() error {
	if !b.done {
		// Not read to the end: the rest is still on the connection.
		b.finish(false)
	}
	return nil
}

func (b *answerBody) finish(reuse bool) {
	b.done = true
	if !b.stop() {
		reuse = false // aborted: the connection has a deadline in the past
	}
	if reuse {
		b.t.put(b.hc, b.c)
	} else {
		b.c.Close()
	}
	b.release()
}
