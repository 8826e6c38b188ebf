package clusterapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/rosterhq/roster/internal/registry"
)

// statusOf is the HTTP status of each error kind: the native API's
// (internal/httpapi), so that a client reads the same code for the same
// error whichever endpoint answers.
var statusOf = [...]int{
	registry.KindInternal:       http.StatusInternalServerError,
	registry.KindInvalid:        http.StatusBadRequest,
	registry.KindNotFound:       http.StatusNotFound,
	registry.KindConflict:       http.StatusConflict,
	registry.KindNoTTL:          http.StatusConflict,
	registry.KindNotReady:       http.StatusServiceUnavailable,
	registry.KindNotLeader:      http.StatusServiceUnavailable,
	registry.KindOutcomeUnknown: http.StatusServiceUnavailable,
	registry.KindTimeout:        http.StatusGatewayTimeout,
	registry.KindCanceled:       499, // the client went away; nobody reads this
	registry.KindTooLarge:       http.StatusRequestEntityTooLarge,
}

// errorBody is the error body, as the native API writes it.
type errorBody struct {
	Error  string                `json:"error"`
	Fields []registry.FieldError `json:"fields,omitempty"`
}

// writeError translates an error to its HTTP status and body, once, here.
func writeError(w http.ResponseWriter, err error) {
	k := registry.KindOf(err)
	status := http.StatusInternalServerError
	if int(k) >= 0 && int(k) < len(statusOf) {
		status = statusOf[k]
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	body := errorBody{Error: err.Error()}
	var verr *registry.ValidationError
	if errors.As(err, &verr) {
		body.Fields = verr.Fields
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
