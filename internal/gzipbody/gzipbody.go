// Package gzipbody serves cached answers gzip-encoded to clients that ask:
// the encoding of an answer is made once, on first demand, and shared, as
// the plain bytes are. The native and the Consul-compatible APIs use it for
// their answer caches.
package gzipbody

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// MinSize is the smallest answer served compressed: below it the
// gzip header and the client's inflating cost more than the bytes saved.
const MinSize = 1024

// Body is the gzip encoding of one cached answer, made once, on the first
// request that accepts it, and shared by every later one, as the plain
// body is. Its zero value is ready.
type Body struct {
	once sync.Once
	b    []byte
}

// Bytes returns the gzip encoding of plain, which must be the body g
// belongs to.
func (g *Body) Bytes(plain []byte) []byte {
	g.once.Do(func() { g.b = compress(plain) })
	return g.b
}

var gzipWriters = sync.Pool{New: func() any {
	// The default level: an answer is compressed once per index and
	// served many times. For 100 instances it makes a Consul health answer
	// 3.2 KB (4.0 KB at level 1), so the headers and body fit the server's
	// 4 KB write buffer and go out in one write.
	w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
	return w
}}

func compress(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b)/6 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, _ = zw.Write(b) // a bytes.Buffer does not fail
	_ = zw.Close()
	gzipWriters.Put(zw)
	return buf.Bytes()
}

// Accepts reports whether the Accept-Encoding values (RFC 9110
// §12.5.3) accept gzip: a "gzip" or "x-gzip" coding whose q is not 0.
// "*" is not taken to mean gzip.
func Accepts(values []string) bool {
	for _, v := range values {
		for v != "" {
			var part string
			part, v, _ = strings.Cut(v, ",")
			name, params, _ := strings.Cut(part, ";")
			name = strings.TrimSpace(name)
			if !strings.EqualFold(name, "gzip") && !strings.EqualFold(name, "x-gzip") {
				continue
			}
			return qValue(params) > 0
		}
	}
	return false
}

// qValue reads q= from a coding's parameters; 1 when absent, 0 when
// unreadable.
func qValue(params string) float64 {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, val, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || q < 0 || q > 1 {
			return 0
		}
		return q
	}
	return 1
}

// Want reports whether r should get the gzip encoding of a body of n
// bytes: it accepts gzip, is not a HEAD request, and the body is at least
// MinSize.
func Want(r *http.Request, n int) bool {
	return n >= MinSize && r.Method != http.MethodHead && Accepts(r.Header["Accept-Encoding"])
}
