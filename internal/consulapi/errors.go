package consulapi

import (
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

// kindAnswer is how the Consul API answers one kind of registry error.
type kindAnswer struct {
	code int
	// retry sets Retry-After: 1, for refusals that pass by themselves.
	retry bool
}

// kindAnswers is the Consul API's one table from error kind to status, as
// Consul answers: a kind it does not list (conflicts and heartbeats
// without a TTL among them, which Consul answers as failures) is a 500,
// and logged. Handlers that answer a kind with Consul's own text (an
// unknown check ID, say) do so before they get here.
var kindAnswers = map[registry.Kind]kindAnswer{
	registry.KindInvalid:        {code: http.StatusBadRequest},
	registry.KindNotFound:       {code: http.StatusNotFound},
	registry.KindNotReady:       {code: http.StatusServiceUnavailable, retry: true},
	registry.KindNotLeader:      {code: http.StatusServiceUnavailable, retry: true},
	registry.KindOutcomeUnknown: {code: http.StatusServiceUnavailable},
	registry.KindTimeout:        {code: http.StatusGatewayTimeout},
	registry.KindCanceled:       {code: 499}, // the client went away; nobody reads this
	// As Consul answers a KV value too large.
	registry.KindTooLarge: {code: http.StatusRequestEntityTooLarge},
}

// writeError translates an error to Consul's status and text, once, here:
// the API's own answers and decode errors first, then the registry's
// kinds. The text is the error's, but for validation errors, which read
// as Consul's; for KindOutcomeUnknown it names the outcome as unknown.
func (a *API) writeError(w http.ResponseWriter, err error) {
	var herr *httpError
	var derr *decodeError
	var verr *registry.ValidationError
	switch {
	case errors.As(err, &herr):
		writeText(w, herr.code, err.Error())
		return
	case errors.As(err, &derr):
		writeText(w, http.StatusBadRequest, "Request decode failed: "+derr.Error())
		return
	}
	msg := err.Error()
	if errors.As(err, &verr) {
		parts := make([]string, len(verr.Fields))
		for i, f := range verr.Fields {
			parts[i] = f.Field + ": " + f.Message
		}
		msg = "Invalid request: " + strings.Join(parts, "; ")
	}
	ans, ok := kindAnswers[registry.KindOf(err)]
	if !ok {
		ans.code = http.StatusInternalServerError
		a.log.Warn("request failed", "err", err)
	}
	if ans.retry {
		w.Header().Set("Retry-After", "1")
	}
	writeText(w, ans.code, msg)
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
