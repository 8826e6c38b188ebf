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
	var body any
	switch op := op.(type) {
	case *registry.RegisterOp:
		t, body = typeRegister, registerEntry{Instance: instanceToRecord(op.Instance), At: op.At}
	case *registry.DeregisterOp:
		t, body = typeDeregister, deregisterEntry{Key: keyToRecord(op.Key), IfCritical: op.IfCritical}
	case *registry.SetCheckOp:
		t, body = typeSetCheck, setCheckEntry{Key: keyToRecord(op.Key), CheckID: op.CheckID, Status: string(op.Status),
			Output: op.Output, At: op.At}
	case *registry.ReindexOp:
		t, body = typeReindex, reindexEntry{}
	case *registry.MaintenanceOp:
		t, body = typeMaintenance, maintenanceEntry{Key: keyToRecord(op.Key), CheckID: op.CheckID, Enable: op.Enable,
			Name: op.Name, Reason: op.Reason, At: op.At}
	default:
		return nil, fmt.Errorf("encode: unknown op %T", op)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", op, err)
	}
	return append([]byte{t}, b...), nil
}

// Decode parses a log entry. It never panics on malformed input.
func Decode(b []byte) (registry.Op, error) {
	if len(b) == 0 {
		return nil, errors.New("decode: empty entry")
	}
	switch b[0] {
	case typeRegister:
		var e registerEntry
		if err := decodeBody(b, &e); err != nil {
			return nil, err
		}
		if e.Instance == nil {
			return nil, errors.New("decode: register without instance")
		}
		return &registry.RegisterOp{Instance: e.Instance.instance(), At: e.At}, nil
	case typeDeregister:
		var e deregisterEntry
		if err := decodeBody(b, &e); err != nil {
			return nil, err
		}
		return &registry.DeregisterOp{Key: e.Key.key(), IfCritical: e.IfCritical}, nil
	case typeSetCheck:
		var e setCheckEntry
		if err := decodeBody(b, &e); err != nil {
			return nil, err
		}
		return &registry.SetCheckOp{Key: e.Key.key(), CheckID: e.CheckID, Status: registry.Health(e.Status),
			Output: e.Output, At: e.At}, nil
	case typeReindex:
		var e reindexEntry
		if err := decodeBody(b, &e); err != nil {
			return nil, err
		}
		return &registry.ReindexOp{}, nil
	case typeMaintenance:
		var e maintenanceEntry
		if err := decodeBody(b, &e); err != nil {
			return nil, err
		}
		return &registry.MaintenanceOp{Key: e.Key.key(), CheckID: e.CheckID, Enable: e.Enable,
			Name: e.Name, Reason: e.Reason, At: e.At}, nil
	}
	if b[0]&flagIgnoreUnknown != 0 {
		return nil, errUnknownIgnorable
	}
	return nil, fmt.Errorf("decode: unknown entry type %d", b[0])
}

// decodeBody reads the JSON body of entry b into v.
func decodeBody(b []byte, v any) error {
	if err := json.Unmarshal(b[1:], v); err != nil {
		return fmt.Errorf("decode type %d: %w", b[0], err)
	}
	return nil
}
