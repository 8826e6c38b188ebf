package consulapi

import (
	"net/http"

	"github.com/rosterhq/roster/internal/gzipbody"
)

// writeCachedJSON writes a cached 200 answer: gzip-encoded when the
// client accepts it and the body is worth it, plain otherwise (and for
// HEAD). Consul's agent answers gzip to clients that ask; Go's transport,
// and so HashiCorp's client and Prometheus, ask by default.
func writeCachedJSON(w http.ResponseWriter, r *http.Request, b []byte, gz *gzipbody.Body) {
	w.Header()["Vary"] = hdrVary
	if gz != nil && gzipbody.Want(r, len(b)) {
		b = gz.Bytes(b)
		w.Header()["Content-Encoding"] = hdrGzip
	}
	writeJSONBody(w, b)
}

var (
	hdrVary = []string{"Accept-Encoding"}
	hdrGzip = []string{"gzip"}
)
