package cluster

import (
	"context"
	"errors"
	"net/http"

	"github.com/hashicorp/raft"

	"github.com/rosterhq/roster/internal/registry"
)

// wireError is an error on the wire: its kind, so that errors.Is holds
// on the other side, and its text.
type wireError struct {
	Kind   string           `json:"kind"`
	Msg    string           `json:"error"`
	Fields []wireFieldError `json:"fields,omitempty"`
	// Retry: the request was refused before anything was done (this
	// agent does not lead), so another leader may be asked.
	Retry bool `json:"retry,omitempty"`
}

// wireFieldError is a registry.FieldError on the wire.
type wireFieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// wireKinds names every registry.Kind on the wire and gives the sentinel
// a received error wraps. The names are Kind.String() except three that
// the wire had before kinds had names; they stay, so that agents of two
// versions understand each other. An agent that receives a name it does
// not know (from a newer version) takes it for "other".
var wireKinds = [...]struct {
	name string
	err  error // nil: no sentinel (internal; invalid is a ValidationError)
}{
	registry.KindInternal:       {"other", nil},
	registry.KindInvalid:        {"validation", nil},
	registry.KindNotFound:       {registry.KindNotFound.String(), registry.ErrNotFound},
	registry.KindConflict:       {registry.KindConflict.String(), registry.ErrConflict},
	registry.KindNoTTL:          {registry.KindNoTTL.String(), registry.ErrNoTTL},
	registry.KindNotReady:       {registry.KindNotReady.String(), registry.ErrNotReady},
	registry.KindNotLeader:      {registry.KindNotLeader.String(), registry.ErrNotLeader},
	registry.KindOutcomeUnknown: {registry.KindOutcomeUnknown.String(), registry.ErrOutcomeUnknown},
	registry.KindTimeout:        {"deadline", context.DeadlineExceeded},
	registry.KindCanceled:       {registry.KindCanceled.String(), context.Canceled},
	registry.KindTooLarge:       {registry.KindTooLarge.String(), registry.ErrTooLarge},
}

// wireKind is the kind an error name on the wire stands for.
func wireKind(name string) registry.Kind {
	for k, wk := range wireKinds {
		if wk.name == name {
			return registry.Kind(k)
		}
	}
	return registry.KindInternal
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	k := registry.KindOf(err)
	w := &wireError{Kind: wireKinds[k].name, Msg: err.Error()}
	var verr *registry.ValidationError
	if k == registry.KindInvalid && errors.As(err, &verr) {
		for _, f := range verr.Fields {
			w.Fields = append(w.Fields, wireFieldError{Field: f.Field, Message: f.Message})
		}
		return w
	}
	// raft refuses these before appending anything.
	w.Retry = errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress)
	return w
}

func (w *wireError) err() error {
	if w == nil {
		return nil
	}
	k := wireKind(w.Kind)
	if k == registry.KindInvalid {
		verr := &registry.ValidationError{}
		for _, f := range w.Fields {
			verr.Add(f.Field, f.Message)
		}
		return verr
	}
	re := &remoteError{msg: w.Msg}
	if s := wireKinds[k].err; s != nil {
		re.kinds, re.retry = []error{s}, w.Retry
	}
	return re
}

// remoteError is an error answered by another agent, or made here about
// a call to one: its text, the sentinels errors.Is finds in it, and
// whether the call may be sent again (retriable).
type remoteError struct {
	msg   string
	kinds []error
	retry bool
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.kinds }

// kindError is a remoteError of one kind.
func kindError(kind error, msg string, retry bool) *remoteError {
	return &remoteError{msg: msg, kinds: []error{kind}, retry: retry}
}

// retriable reports whether a failed call to the leader may be sent
// again, to it or a new leader: nothing was sent, or the agent refused
// before doing anything.
func retriable(err error) bool {
	var de *dialError
	if errors.As(err, &de) {
		return true
	}
	var re *remoteError
	return errors.As(err, &re) && re.retry
}

// httpStatus is the status of an internal answer carrying err. Only the
// class matters to the caller (2xx or not: the body says the rest); the
// codes are kept as they were for agents of other versions.
func httpStatus(err error) int {
	switch registry.KindOf(err) {
	case registry.KindInvalid:
		return http.StatusBadRequest
	case registry.KindNotLeader, registry.KindNotReady, registry.KindOutcomeUnknown:
		return http.StatusServiceUnavailable
	case registry.KindTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}
