package sds

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/rosterhq/roster/internal/registry"
)

// requestError is a request the API refuses, with the body the client
// gets. Where the original service answered 400 with an empty object,
// body is "{}" and reason only goes into the X-Roster-Error header;
// elsewhere the body is {"error": reason}.
type requestError struct {
	status int
	reason string
	empty  bool
}

func (e *requestError) Error() string { return e.reason }

// badRequest is a 400 with {"error": text}.
func badRequest(text string) error {
	return &requestError{status: http.StatusBadRequest, reason: text}
}

// emptyBadRequest is a 400 whose body is {}, as the original answers
// most invalid input; reason is for the header and the logs.
func emptyBadRequest(reason string) error {
	return &requestError{status: http.StatusBadRequest, reason: reason, empty: true}
}

// ErrorHeader names the header that carries the reason of a refusal whose
// body, for compatibility, does not.
const ErrorHeader = "X-Roster-Error"

// writeError translates an error to a status and body, once, here.
func writeError(w http.ResponseWriter, err error) {
	var rerr *requestError
	var verr *registry.ValidationError
	status := http.StatusInternalServerError
	w.Header().Set(ErrorHeader, headerText(err.Error()))
	switch {
	case errors.As(err, &rerr):
		if rerr.empty {
			writeBody(w, rerr.status, []byte("{}\n"))
			return
		}
		status = rerr.status
	case errors.As(err, &verr):
		status = http.StatusBadRequest
	case errors.Is(err, registry.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, registry.ErrNotReady), errors.Is(err, registry.ErrNotLeader):
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		status = 499 // the client went away; nobody reads this
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
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

// headerText makes s fit a header value: one line of printable text, at
// most 256 bytes.
func headerText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 256 {
		s = strings.ToValidUTF8(s[:256], "")
	}
	return s
}
