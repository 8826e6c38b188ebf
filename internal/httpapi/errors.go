package httpapi

import (
	"errors"
	"net/http"

	"github.com/rosterhq/roster/internal/jsonw"
	"github.com/rosterhq/roster/internal/registry"
)

// errorBody is every error response: a message and, for validation
// errors, each offending field.
type errorBody struct {
	Error  string                `json:"error"`
	Fields []registry.FieldError `json:"fields,omitempty"`
}

// kindAnswer is how the native API answers one kind of error.
type kindAnswer struct {
	status int
	// retry sets Retry-After: 1, for refusals that pass by themselves.
	retry bool
}

// kindAnswers is the native API's one table from error kind to status; a
// kind it does not list answers 500.
var kindAnswers = map[registry.Kind]kindAnswer{
	registry.KindInvalid:        {status: http.StatusBadRequest},
	registry.KindNotFound:       {status: http.StatusNotFound},
	registry.KindConflict:       {status: http.StatusConflict},
	registry.KindNoTTL:          {status: http.StatusConflict},
	registry.KindNotReady:       {status: http.StatusServiceUnavailable, retry: true},
	registry.KindNotLeader:      {status: http.StatusServiceUnavailable, retry: true},
	registry.KindOutcomeUnknown: {status: http.StatusServiceUnavailable},
	registry.KindTimeout:        {status: http.StatusGatewayTimeout},
	registry.KindCanceled:       {status: 499}, // the client went away; nobody reads this
	registry.KindTooLarge:       {status: http.StatusRequestEntityTooLarge},
}

// writeError translates an error to its HTTP status, once, here. The
// message is the error's (for KindOutcomeUnknown it names the outcome as
// unknown: ErrOutcomeUnknown's text).
func writeError(w http.ResponseWriter, err error) {
	ans, ok := kindAnswers[registry.KindOf(err)]
	if !ok {
		ans.status = http.StatusInternalServerError
	}
	body := errorBody{Error: err.Error()}
	var verr *registry.ValidationError
	if errors.As(err, &verr) {
		body.Fields = verr.Fields
	}
	if ans.retry {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, ans.status, body)
}

// badRequest reports one offending field.
func badRequest(field, msg string) error {
	v := &registry.ValidationError{}
	v.Add(field, msg)
	return v
}

func writeJSON(w http.ResponseWriter, status int, v any) { jsonw.Write(w, status, v) }

func writeBody(w http.ResponseWriter, status int, b []byte) { jsonw.WriteBody(w, status, b) }
