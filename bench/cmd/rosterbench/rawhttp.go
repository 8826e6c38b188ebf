package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// rawConn is a minimal HTTP/1.1 client on one keep-alive connection, for
// the closed-loop scenarios: the agent does the same work per request as
// for Go's http.Client, while the load generator, which shares the two
// cores, spends a fraction of the CPU (no per-request goroutines, header
// maps or body wrappers). It understands exactly what the agent sends:
// a status line, headers with Content-Length, and the body.
type rawConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	// gzip sends Accept-Encoding: gzip, as Go's transport does.
	gzip bool
	// body and encoding are the last response's body (read into a buffer
	// reused by the next call, not inflated) and Content-Encoding.
	body     []byte
	encoding string
}

func newRawConn(addr string) *rawConn { return &rawConn{addr: addr} }

func (rc *rawConn) close() {
	if rc.c != nil {
		rc.c.Close()
		rc.c = nil
	}
}

// do sends one request and returns the status and the X-Roster-Index (or
// X-Consul-Index) header; the body is read into rc.body. Any error closes the connection;
// the next call dials again.
func (rc *rawConn) do(ctx context.Context, method, path string, body []byte) (int, uint64, error) {
	if rc.c == nil {
		c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", rc.addr)
		if err != nil {
			return 0, 0, err
		}
		rc.c, rc.r, rc.w = c, bufio.NewReaderSize(c, 32<<10), bufio.NewWriterSize(c, 8<<10)
	}
	// Blocking queries may wait up to their wait plus 1/16 jitter.
	deadline := time.Now().Add(2 * time.Minute)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c := rc.c
	_ = c.SetDeadline(deadline)
	// A cancelled ctx ends a request blocked in a read at once.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	st, idx, err := rc.roundTrip(method, path, body)
	stop()
	if err != nil {
		rc.close()
	}
	return st, idx, err
}

func (rc *rawConn) roundTrip(method, path string, body []byte) (int, uint64, error) {
	w := rc.w
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(path)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(rc.addr)
	w.WriteString("\r\n")
	if rc.gzip {
		w.WriteString("Accept-Encoding: gzip\r\n")
	}
	if body != nil {
		w.WriteString("Content-Type: application/json\r\nContent-Length: ")
		w.WriteString(strconv.Itoa(len(body)))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	w.Write(body)
	if err := w.Flush(); err != nil {
		return 0, 0, err
	}
	line, err := rc.r.ReadSlice('\n')
	if err != nil {
		return 0, 0, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, 0, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	var idx uint64
	closeAfter := false
	rc.encoding = ""
	for {
		h, err := rc.r.ReadSlice('\n')
		if err != nil {
			return 0, 0, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, 0, fmt.Errorf("bad header %q", h)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil {
				return 0, 0, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("X-Roster-Index")), bytes.EqualFold(k, []byte("X-Consul-Index")):
			idx, _ = strconv.ParseUint(string(v), 10, 64)
		case bytes.EqualFold(k, []byte("Content-Encoding")):
			rc.encoding = string(v)
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return 0, 0, errors.New("rawConn: chunked responses are not supported")
		case bytes.EqualFold(k, []byte("Connection")) && bytes.EqualFold(v, []byte("close")):
			closeAfter = true
		}
	}
	if length < 0 {
		return 0, 0, errors.New("rawConn: response without Content-Length")
	}
	if cap(rc.body) < length {
		rc.body = make([]byte, length)
	}
	rc.body = rc.body[:length]
	if _, err := io.ReadFull(rc.r, rc.body); err != nil {
		return 0, 0, err
	}
	if closeAfter {
		rc.close()
	}
	return status, idx, nil
}

// rawConns is one rawConn per closed-loop worker.
func rawConns(addr string, n int) []*rawConn {
	out := make([]*rawConn, n)
	for i := range out {
		out[i] = newRawConn(addr)
	}
	return out
}

func closeRaw(cs []*rawConn) {
	for _, c := range cs {
		c.close()
	}
}
