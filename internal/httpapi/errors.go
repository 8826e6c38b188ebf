package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/rosterhq/roster/internal/registry"
)

// errorBody is every error response: a message and, for validation
// errors, each offending field.
type errorBody struct {
	Error  string                `json:"error"`
	Fields []registry.FieldError `json:"fields,omitempty"`
}

// writeError translates an error to its HTTP status, once, here.
func writeError(w http.ResponseWriter, err error) {
	var verr *registry.ValidationError
	status := http.StatusInternalServerError
	body := errorBody{Error: err.Error()}
	switch {
	case errors.As(err, &verr):
		status, body.Fields = http.StatusBadRequest, verr.Fields
	case errors.Is(err, registry.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, registry.ErrNoTTL), errors.Is(err, registry.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, registry.ErrNotReady), errors.Is(err, registry.ErrNotLeader):
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		status = 499 // the client went away; nobody reads this
	}
	writeJSON(w, status, body)
}

// badRequest reports one offending field.
func badRequest(field, msg string) error {
	v := &registry.ValidationError{}
	v.Add(field, msg)
	return v
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	writeBody(w, status, append(b, '\n'))
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func isNotFound(err error) bool { return errors.Is(err, registry.ErrNotFound) }
func isNoTTL(err error) bool    { return errors.Is(err, registry.ErrNoTTL) }
