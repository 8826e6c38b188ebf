package testutil

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rosterhq/roster/internal/registry"
)

// The front doors ErrorAnswers knows.
const (
	DoorNative = "native" // httpapi
	DoorConsul = "consul" // consulapi
	DoorSDS    = "sds"    // sds
)

// ErrorAnswer is what a front door answers for one kind of error.
type ErrorAnswer struct {
	Code int
	// Text is a fragment the answer's body must hold ("" when any will do).
	Text string
	// RetryAfter: the answer carries Retry-After: 1.
	RetryAfter bool
}

// errorAnswers is every error kind × every HTTP front door: the one
// expectation each door's error test checks itself against. A door that
// answers a kind differently from the others says so here.
var errorAnswers = []struct {
	kind                registry.Kind
	native, consul, sds ErrorAnswer
}{
	{registry.KindInternal, ErrorAnswer{Code: 500, Text: "boom"}, ErrorAnswer{Code: 500, Text: "boom"}, ErrorAnswer{Code: 500, Text: "boom"}},
	{registry.KindInvalid,
		ErrorAnswer{Code: 400, Text: "invalid request: service: must be a DNS label"},
		ErrorAnswer{Code: 400, Text: "Invalid request: service: must be a DNS label"}, // Consul's text
		ErrorAnswer{Code: 400, Text: "invalid request: service: must be a DNS label"}},
	{registry.KindNotFound, ErrorAnswer{Code: 404, Text: "not found"}, ErrorAnswer{Code: 404, Text: "not found"}, ErrorAnswer{Code: 404, Text: "not found"}},
	// Consul has no conflict status for these: it answers them as failures.
	{registry.KindConflict, ErrorAnswer{Code: 409, Text: "condition failed"}, ErrorAnswer{Code: 500, Text: "condition failed"}, ErrorAnswer{Code: 409, Text: "condition failed"}},
	{registry.KindNoTTL, ErrorAnswer{Code: 409, Text: "no ttl"}, ErrorAnswer{Code: 500, Text: "no ttl"}, ErrorAnswer{Code: 409, Text: "no ttl"}},
	{registry.KindNotReady,
		ErrorAnswer{Code: 503, Text: "not ready", RetryAfter: true},
		ErrorAnswer{Code: 503, Text: "not ready", RetryAfter: true},
		ErrorAnswer{Code: 503, Text: "not ready", RetryAfter: true}},
	{registry.KindNotLeader,
		ErrorAnswer{Code: 503, Text: "not the leader", RetryAfter: true},
		ErrorAnswer{Code: 503, Text: "not the leader", RetryAfter: true},
		ErrorAnswer{Code: 503, Text: "not the leader", RetryAfter: true}},
	// No Retry-After: the write may have committed; the client reads first.
	{registry.KindOutcomeUnknown, ErrorAnswer{Code: 503, Text: "outcome unknown"}, ErrorAnswer{Code: 503, Text: "outcome unknown"}, ErrorAnswer{Code: 503, Text: "outcome unknown"}},
	{registry.KindTimeout, ErrorAnswer{Code: 504, Text: "deadline exceeded"}, ErrorAnswer{Code: 504, Text: "deadline exceeded"}, ErrorAnswer{Code: 504, Text: "deadline exceeded"}},
	{registry.KindCanceled, ErrorAnswer{Code: 499}, ErrorAnswer{Code: 499}, ErrorAnswer{Code: 499}},
	{registry.KindTooLarge, ErrorAnswer{Code: 413, Text: "too large"}, ErrorAnswer{Code: 413, Text: "too large"}, ErrorAnswer{Code: 413, Text: "too large"}},
}

// ErrorAnswers returns what door (DoorNative, DoorConsul, DoorSDS) answers
// for each error kind.
func ErrorAnswers(door string) map[registry.Kind]ErrorAnswer {
	out := make(map[registry.Kind]ErrorAnswer, len(errorAnswers))
	for _, row := range errorAnswers {
		switch door {
		case DoorNative:
			out[row.kind] = row.native
		case DoorConsul:
			out[row.kind] = row.consul
		case DoorSDS:
			out[row.kind] = row.sds
		default:
			panic("testutil: unknown front door " + door)
		}
	}
	return out
}

// KindError returns an error of kind k, wrapped as a front door gets it
// from the registry.
func KindError(k registry.Kind) error {
	var err error
	switch k {
	case registry.KindInvalid:
		v := &registry.ValidationError{}
		v.Add("service", "must be a DNS label")
		err = v
	case registry.KindNotFound:
		err = registry.ErrNotFound
	case registry.KindConflict:
		err = registry.ErrConflict
	case registry.KindNoTTL:
		err = registry.ErrNoTTL
	case registry.KindNotReady:
		err = registry.ErrNotReady
	case registry.KindNotLeader:
		err = registry.ErrNotLeader
	case registry.KindOutcomeUnknown:
		err = registry.ErrOutcomeUnknown
	case registry.KindTimeout:
		err = context.DeadlineExceeded
	case registry.KindCanceled:
		err = context.Canceled
	case registry.KindTooLarge:
		err = registry.ErrTooLarge
	default:
		err = errors.New("boom")
	}
	return fmt.Errorf("test op: %w", err)
}

// Check fails t unless rec holds the answer a.
func (a ErrorAnswer) Check(t testing.TB, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code != a.Code {
		t.Errorf("status %d, want %d (body %q)", rec.Code, a.Code, rec.Body.String())
	}
	if body := rec.Body.String(); !strings.Contains(body, a.Text) {
		t.Errorf("body %q lacks %q", body, a.Text)
	}
	if got := rec.Header().Get("Retry-After") == "1"; got != a.RetryAfter {
		t.Errorf("Retry-After %q, want it set: %v", rec.Header().Get("Retry-After"), a.RetryAfter)
	}
}
