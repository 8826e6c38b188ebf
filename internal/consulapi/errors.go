package consulapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/rosterhq/roster/internal/registry"
)

// httpError is an answer Consul gives as a status and a plain-text body;
// client libraries match some of these texts.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

// writeError translates an error to Consul's status and text, once, here.
func (a *API) writeError(w http.ResponseWriter, err error) {
	var herr *httpError
	var verr *registry.ValidationError
	var derr *decodeError
	code, msg := http.StatusInternalServerError, err.Error()
	switch {
	case errors.As(err, &herr):
		code = herr.code
	case errors.As(err, &derr):
		code, msg = http.StatusBadRequest, "Request decode failed: "+derr.Error()
	case errors.As(err, &verr):
		parts := make([]string, len(verr.Fields))
		for i, f := range verr.Fields {
			parts[i] = f.Field + ": " + f.Message
		}
		code, msg = http.StatusBadRequest, "Invalid request: "+strings.Join(parts, "; ")
	case errors.Is(err, registry.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, registry.ErrNotReady), errors.Is(err, registry.ErrNotLeader):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		code = 499 // the client went away; nobody reads this
	default:
		a.log.Warn("request failed", "err", err)
	}
	writeText(w, code, msg)
}

func writeText(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(msg)+1))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

var hdrJSON = []string{"application/json"}

func writeJSONBody(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// writeOK answers a write Consul answers with 200 and no body: clients
// test for 200, not 204.
func writeOK(w http.ResponseWriter) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}
