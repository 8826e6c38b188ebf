package sds

import (
	"errors"
	"net/http"
	"strings"

	"github.com/rosterhq/roster/internal/jsonw"
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

// kindAnswer is how the SDS API answers one kind of error.
type kindAnswer struct {
	status int
	// retry sets Retry-After: 1, for refusals that pass by themselves.
	retry bool
}

// kindAnswers is the SDS API's one table from error kind to status; a kind
// it does not list answers 500. The codes are the native API's.
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

// writeError translates an error to a status and body, once, here: the
// API's own refusals first, then the registry's kinds. The message is the
// error's (for KindOutcomeUnknown it names the outcome as unknown).
func writeError(w http.ResponseWriter, err error) {
	w.Header().Set(ErrorHeader, headerText(err.Error()))
	var rerr *requestError
	if errors.As(err, &rerr) {
		if rerr.empty {
			writeBody(w, rerr.status, []byte("{}\n"))
			return
		}
		writeJSON(w, rerr.status, map[string]string{"error": err.Error()})
		return
	}
	ans, ok := kindAnswers[registry.KindOf(err)]
	if !ok {
		ans.status = http.StatusInternalServerError
	}
	if ans.retry {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, ans.status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) { jsonw.Write(w, status, v) }

func writeBody(w http.ResponseWriter, status int, b []byte) { jsonw.WriteBody(w, status, b) }

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
