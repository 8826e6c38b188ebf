package httpapi

import (
	"net/http"

	"github.com/rosterhq/roster/internal/gzipbody"
)

// writeCachedBody writes a cached 200 answer: gzip-encoded when the client
// accepts it and the body is worth it, plain otherwise (and for HEAD).
func writeCachedBody(w http.ResponseWriter, r *http.Request, b []byte, gz *gzipbody.Body) {
	h := w.Header()
	h.Set("Vary", "Accept-Encoding")
	if gz != nil && gzipbody.Want(r, len(b)) {
		b = gz.Bytes(b)
		h.Set("Content-Encoding", "gzip")
	}
	writeBody(w, http.StatusOK, b)
}
