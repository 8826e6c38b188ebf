package store

import (
	"fmt"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/rosterhq/roster/internal/registry"
)

// Typed indexers: memdb's StringFieldIndex finds fields by reflection on
// every insert, a measurable share of applying a write.

// stringKey indexes objects by one string, built as memdb's string
// indexes do (the value and a NUL), so lookups and prefix scans work alike.
type stringKey[T any] func(T) string

func (f stringKey[T]) FromObject(obj any) (bool, []byte, error) {
	v, ok := obj.(T)
	if !ok {
		return false, nil, fmt.Errorf("indexer: unexpected %T", obj)
	}
	s := f(v)
	if s == "" {
		return false, nil, nil
	}
	return true, append([]byte(s), 0), nil
}

func (f stringKey[T]) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("indexer: want one argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("indexer: argument must be a string: %#v", args[0])
	}
	return append([]byte(s), 0), nil
}

// instanceID indexes instances by (service, id); a prefix lookup with the
// service alone lists the service's instances.
type instanceID struct{}

var _ memdb.PrefixIndexer = instanceID{}

func (instanceID) FromObject(obj any) (bool, []byte, error) {
	in, ok := obj.(*registry.Instance)
	if !ok {
		return false, nil, fmt.Errorf("indexer: unexpected %T", obj)
	}
	return true, idKey(in.Service, in.ID), nil
}

func idKey(service, id string) []byte {
	b := make([]byte, 0, len(service)+len(id)+2)
	b = append(b, service...)
	b = append(b, 0)
	b = append(b, id...)
	return append(b, 0)
}

func (instanceID) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("indexer: want service and id, got %d arguments", len(args))
	}
	svc, ok1 := args[0].(string)
	id, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("indexer: service and id must be strings")
	}
	return idKey(svc, id), nil
}

func (instanceID) PrefixFromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("indexer: want the service, got %d arguments", len(args))
	}
	svc, ok := args[0].(string)
	if !ok || strings.IndexByte(svc, 0) >= 0 {
		return nil, fmt.Errorf("indexer: bad service %#v", args[0])
	}
	return append([]byte(svc), 0), nil
}
