package store

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/rosterhq/roster/internal/registry"
)

// Tables.
const (
	tableInstances = "instances"
	tableServices  = "services"
	tableIndex     = "index"
)

// serviceRow is one service's derived summary. A row whose Instances is 0
// is a tombstone: it keeps the service's index after its last instance is
// gone, so a watcher of the service sees the removal and a later
// re-creation moves the index forward, never back.
type serviceRow struct {
	registry.ServiceSummary
}

// indexRow holds one of the store's named indexes.
type indexRow struct {
	Key   string
	Value uint64
}

// Index rows.
const (
	idxLast     = "last"     // last applied write
	idxServices = "services" // last change to any service
	idxChecks   = "checks"   // last change to check definitions
)

func hasActiveChecks(obj any) (bool, error) {
	for _, c := range obj.(*registry.Instance).Checks {
		if c.Type != registry.CheckTTL {
			return true, nil
		}
	}
	return false, nil
}

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableInstances: {
			Name: tableInstances,
			Indexes: map[string]*memdb.IndexSchema{
				"id":     {Name: "id", Unique: true, Indexer: instanceID{}},
				"repo":   {Name: "repo", AllowMissing: true, Indexer: stringKey[*registry.Instance](func(in *registry.Instance) string { return in.Repo })},
				"active": {Name: "active", AllowMissing: true, Indexer: onlyIf(hasActiveChecks)},
			},
		},
		tableServices: {
			Name: tableServices,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: stringKey[*serviceRow](func(r *serviceRow) string { return r.Name })},
			},
		},
		tableIndex: {
			Name: tableIndex,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: stringKey[*indexRow](func(r *indexRow) string { return r.Key })},
			},
		},
	}}
}

// onlyIf indexes just the objects for which cond holds, under the key
// true. memdb's ConditionalIndex would also index every other object
// under false: two radix entries per instance for nothing.
type onlyIf func(obj any) (bool, error)

func (f onlyIf) FromObject(obj any) (bool, []byte, error) {
	ok, err := f(obj)
	if err != nil || !ok {
		return false, nil, err
	}
	return true, []byte{1}, nil
}

func (f onlyIf) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("want one argument, got %d", len(args))
	}
	if b, ok := args[0].(bool); !ok || !b {
		return nil, fmt.Errorf("only true is indexed, got %v", args[0])
	}
	return []byte{1}, nil
}
