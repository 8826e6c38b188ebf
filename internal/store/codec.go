package store

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rosterhq/roster/internal/registry"
)

// A log entry is one type byte followed by the op as JSON. A type with
// flagIgnoreUnknown set may be skipped by an agent that does not know it;
// any other unknown type stops the agent, so replicas never diverge.
const (
	typeRegister   byte = 1
	typeDeregister byte = 2
	typeSetCheck   byte = 3
	typeReindex    byte = 4
	// typeMaintenance is not ignorable: an agent that skipped it would
	// serve an instance in maintenance as healthy.
	typeMaintenance byte = 5

	flagIgnoreUnknown byte = 0x80
)

// errUnknownIgnorable marks an entry that an older agent may skip.
var errUnknownIgnorable = errors.New("unknown ignorable entry")

// Encode returns op as a log entry.
func Encode(op registry.Op) ([]byte, error) {
	var t byte
	switch op.(type) {
	case *registry.RegisterOp:
		t = typeRegister
	case *registry.DeregisterOp:
		t = typeDeregister
	case *registry.SetCheckOp:
		t = typeSetCheck
	case *registry.ReindexOp:
		t = typeReindex
	case *registry.MaintenanceOp:
		t = typeMaintenance
	default:
		return nil, fmt.Errorf("encode: unknown op %T", op)
	}
	body, err := json.Marshal(op)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", op, err)
	}
	return append([]byte{t}, body...), nil
}

// Decode parses a log entry. It never panics on malformed input.
func Decode(b []byte) (registry.Op, error) {
	if len(b) == 0 {
		return nil, errors.New("decode: empty entry")
	}
	var op registry.Op
	switch b[0] {
	case typeRegister:
		op = &registry.RegisterOp{}
	case typeDeregister:
		op = &registry.DeregisterOp{}
	case typeSetCheck:
		op = &registry.SetCheckOp{}
	case typeReindex:
		op = &registry.ReindexOp{}
	case typeMaintenance:
		op = &registry.MaintenanceOp{}
	default:
		if b[0]&flagIgnoreUnknown != 0 {
			return nil, errUnknownIgnorable
		}
		return nil, fmt.Errorf("decode: unknown entry type %d", b[0])
	}
	if err := json.Unmarshal(b[1:], op); err != nil {
		return nil, fmt.Errorf("decode type %d: %w", b[0], err)
	}
	if r, ok := op.(*registry.RegisterOp); ok && r.Instance == nil {
		return nil, errors.New("decode: register without instance")
	}
	return op, nil
}
