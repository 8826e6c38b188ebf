package registry

import (
	"errors"
	"sort"
	"strings"
)

// Error kinds. Front doors translate them once, at their edge, with
// errors.Is and errors.As.
var (
	// ErrNotFound: the service or instance does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNotReady: the agent has not restored its state yet; reads and
	// writes are refused rather than answered from an empty registry.
	ErrNotReady = errors.New("registry not ready: state is being restored")
	// ErrNotLeader: this agent cannot accept writes now.
	ErrNotLeader = errors.New("not the leader")
	// ErrConflict: a conditional write's condition did not hold.
	ErrConflict = errors.New("condition failed")
	// ErrNoTTL: a heartbeat for an instance that has no TTL.
	ErrNoTTL = errors.New("instance has no ttl")
	// ErrTooLarge: a request past a configured size; nothing was applied.
	ErrTooLarge = errors.New("too large")
)

// FieldError names one offending field of a request and why.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every offending field of a rejected write. Nothing
// of a rejected write is applied.
type ValidationError struct {
	Fields []FieldError `json:"fields"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// Add records a bad field.
func (e *ValidationError) Add(field, msg string) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: msg})
}

// Err returns e when it holds a field, nil otherwise.
func (e *ValidationError) Err() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	sort.SliceStable(e.Fields, func(i, j int) bool { return e.Fields[i].Field < e.Fields[j].Field })
	return e
}
