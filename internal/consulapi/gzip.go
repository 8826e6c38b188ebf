package consulapi

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// minGzipSize is the smallest answer served compressed: below it the
// gzip header and the client's inflating cost more than the bytes saved.
const minGzipSize = 1024

// gzipBody is the gzip encoding of one cached answer, made once, on the
// first request that accepts it, and shared by every later one, as the
// plain body is.
type gzipBody struct {
	once sync.Once
	b    []byte
}

// bytes returns the gzip encoding of plain, which must be the body g
// belongs to.
func (g *gzipBody) bytes(plain []byte) []byte {
	g.once.Do(func() { g.b = gzipBytes(plain) })
	return g.b
}

var gzipWriters = sync.Pool{New: func() any {
	// Level 1: an answer is compressed once per index, but a busy
	// service changes often; JSON this repetitive loses little.
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b)/6 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, _ = zw.Write(b) // a bytes.Buffer does not fail
	_ = zw.Close()
	gzipWriters.Put(zw)
	return buf.Bytes()
}

// acceptsGzip reports whether the Accept-Encoding values (RFC 9110
// §12.5.3) accept gzip: a "gzip" or "x-gzip" coding whose q is not 0.
// "*" is not taken to mean gzip.
func acceptsGzip(values []string) bool {
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

// writeCachedJSON writes a cached 200 answer: gzip-encoded when the
// client accepts it and the body is worth it, plain otherwise (and for
// HEAD). Consul's agent answers gzip to clients that ask; Go's transport,
// and so HashiCorp's client and Prometheus, ask by default.
func writeCachedJSON(w http.ResponseWriter, r *http.Request, b []byte, gz *gzipBody) {
	w.Header()["Vary"] = hdrVary
	if gz != nil && len(b) >= minGzipSize && r.Method != http.MethodHead && acceptsGzip(r.Header["Accept-Encoding"]) {
		b = gz.bytes(b)
		w.Header()["Content-Encoding"] = hdrGzip
	}
	writeJSONBody(w, b)
}

var (
	hdrVary = []string{"Accept-Encoding"}
	hdrGzip = []string{"gzip"}
)
