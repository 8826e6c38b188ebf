package registry

import (
	"context"
	"errors"
)

// Kind is what an error means to a caller, whatever front door it reaches.
// KindOf decides it once, here; each front door maps kinds to its own
// protocol's codes and texts in one table.
type Kind int

// Error kinds, from the most specific. The zero value is KindInternal.
const (
	// KindInternal: anything else; the agent failed.
	KindInternal Kind = iota
	// KindInvalid: a ValidationError; nothing was applied.
	KindInvalid
	// KindNotFound: ErrNotFound.
	KindNotFound
	// KindConflict: ErrConflict, a conditional write's condition failed.
	KindConflict
	// KindNoTTL: ErrNoTTL, a heartbeat for an instance without a TTL.
	KindNoTTL
	// KindNotReady: ErrNotReady, the state is being restored.
	KindNotReady
	// KindNotLeader: ErrNotLeader, this agent cannot accept writes now;
	// the write was not applied.
	KindNotLeader
	// KindOutcomeUnknown: ErrOutcomeUnknown, a write that was handed to
	// the log and may still commit; the caller must read to find out.
	KindOutcomeUnknown
	// KindTimeout: context.DeadlineExceeded.
	KindTimeout
	// KindCanceled: context.Canceled, the caller went away.
	KindCanceled
	// KindTooLarge: ErrTooLarge, a request past a configured size (a
	// snapshot upload past -snapshot-max-bytes); nothing was applied.
	KindTooLarge
)

// ErrOutcomeUnknown: a write was handed to the log but its fate is not
// known (the leader went away, or the caller's deadline passed, after the
// entry was appended): it may still commit.
var ErrOutcomeUnknown = errors.New("outcome unknown")

var kindNames = [...]string{
	KindInternal: "internal", KindInvalid: "invalid", KindNotFound: "not_found",
	KindConflict: "conflict", KindNoTTL: "no_ttl", KindNotReady: "not_ready",
	KindNotLeader: "not_leader", KindOutcomeUnknown: "outcome_unknown",
	KindTimeout: "timeout", KindCanceled: "canceled", KindTooLarge: "too_large",
}

// String is the kind's stable name, as the cluster's RPCs carry it.
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "internal"
}

// Kinds lists every kind, for tables that must cover each.
func Kinds() []Kind {
	out := make([]Kind, len(kindNames))
	for i := range out {
		out[i] = Kind(i)
	}
	return out
}

// KindOf is the kind of err. An error that wraps several kinds takes the
// first in this order: invalid, outcome unknown, not found, conflict, no
// TTL, too large, not ready, not leader, timeout, canceled.
func KindOf(err error) Kind {
	var verr *ValidationError
	switch {
	case err == nil:
		return KindInternal
	case errors.As(err, &verr):
		return KindInvalid
	case errors.Is(err, ErrOutcomeUnknown):
		return KindOutcomeUnknown
	case errors.Is(err, ErrNotFound):
		return KindNotFound
	case errors.Is(err, ErrConflict):
		return KindConflict
	case errors.Is(err, ErrNoTTL):
		return KindNoTTL
	case errors.Is(err, ErrTooLarge):
		return KindTooLarge
	case errors.Is(err, ErrNotReady):
		return KindNotReady
	case errors.Is(err, ErrNotLeader):
		return KindNotLeader
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.Is(err, context.Canceled):
		return KindCanceled
	}
	return KindInternal
}
