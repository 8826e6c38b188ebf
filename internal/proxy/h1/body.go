package h1

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// errHeaderTooLarge is limitReader's error: a message header is larger
// than allowed.
var errHeaderTooLarge = errors.New("message header too large")

// limitReader reads a connection under its bufio.Reader; n bounds what a
// message header may take from it (Server's requests, Transport's
// answers).
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(b)) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	l.n -= int64(n)
	return n, err
}

// reqBody is the body of a request the loop read. It notes how the body
// ended, so that the loop reads a next request only after a body read to
// its end. Close (a transport done with the body) reads nothing: the loop
// reads the rest, within bounds (drain).
type reqBody struct {
	mu     sync.Mutex
	rc     io.ReadCloser
	err    error // io.EOF: read to its end
	ended  atomic.Bool
	closed bool
}

func (b *reqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.read(p)
}

func (b *reqBody) read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	if err != nil {
		b.err = err
		b.ended.Store(true)
	}
	return n, err
}

func (b *reqBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// drain reads what is left of the body, up to about limit bytes, and
// reports whether it ended well.
func (b *reqBody) drain(limit int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		bufp := buffers.Get().(*[]byte)
		defer buffers.Put(bufp)
		for n := int64(0); b.err == nil && n <= limit; {
			m, _ := b.read(*bufp)
			n += int64(m)
		}
	}
	return errors.Is(b.err, io.EOF)
}

// buffers lends 32 KiB buffers to copies of bodies.
var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
