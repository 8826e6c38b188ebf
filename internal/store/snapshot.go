package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-memdb"

	"github.com/rosterhq/roster/internal/registry"
)

// snapshotVersion is written first in every snapshot.
const snapshotVersion = 1

type snapshotHeader struct {
	Version  int               `json:"version"`
	Indexes  map[string]uint64 `json:"indexes"`
	Services int               `json:"services"`
}

// A snapshot record carries one service row or one instance.
type snapshotRecord struct {
	Service  *registry.ServiceSummary `json:"service,omitempty"`
	Instance *registry.Instance       `json:"instance,omitempty"`
}

// Snapshot is an immutable view of the store, cheap to take (go-memdb's
// trees are persistent). Persist may run while writes continue.
type Snapshot struct {
	txn *memdb.Txn
}

// Snapshot captures the current state.
func (s *Store) Snapshot() *Snapshot { return &Snapshot{txn: s.read()} }

// Index is the last index the snapshot covers.
func (sn *Snapshot) Index() uint64 { return indexOf(sn.txn, idxLast) }

// Persist writes the snapshot as JSON lines: a header, then every service
// row (tombstones included, so indexes never go back after a restore),
// then every instance.
func (sn *Snapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	h := snapshotHeader{Version: snapshotVersion, Indexes: map[string]uint64{}}
	for _, k := range []string{idxLast, idxServices, idxChecks} {
		h.Indexes[k] = indexOf(sn.txn, k)
	}
	if err := enc.Encode(h); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	for _, table := range []string{tableServices, tableInstances} {
		it, err := sn.txn.Get(table, "id")
		if err != nil {
			return err
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			var rec snapshotRecord
			switch v := raw.(type) {
			case *serviceRow:
				rec.Service = &v.ServiceSummary
			case *registry.Instance:
				rec.Instance = v
			}
			if err := enc.Encode(rec); err != nil {
				return fmt.Errorf("write snapshot: %w", err)
			}
		}
	}
	return bw.Flush()
}

// Restore replaces the whole state with a snapshot written by Persist and
// wakes every watcher. On error the current state is left as it was.
func (s *Store) Restore(r io.Reader) error {
	db, _, err := readSnapshot(r)
	if err != nil {
		return err
	}
	s.db.Store(db)
	s.hub.notifyAll()
	return nil
}

// readSnapshot builds a database from a snapshot and returns it with the
// highest index the snapshot holds.
func readSnapshot(r io.Reader) (*memdb.MemDB, uint64, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return nil, 0, fmt.Errorf("read snapshot header: %w", err)
	}
	if h.Version != snapshotVersion {
		return nil, 0, fmt.Errorf("snapshot version %d not supported", h.Version)
	}
	var top uint64
	for _, v := range h.Indexes {
		top = max(top, v)
	}
	db := newDB()
	txn := db.Txn(true)
	defer txn.Abort()
	rows := map[string]*serviceRow{}
	for {
		var rec snapshotRecord
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read snapshot: %w", err)
		}
		switch {
		case rec.Service != nil:
			// Counts are derived again from the instances below.
			rows[rec.Service.Name] = &serviceRow{registry.ServiceSummary{Name: rec.Service.Name, ModifyIndex: rec.Service.ModifyIndex}}
			top = max(top, rec.Service.ModifyIndex)
		case rec.Instance != nil:
			in := rec.Instance
			in.ComputeHealth()
			top = max(top, in.ModifyIndex)
			if err := txn.Insert(tableInstances, in); err != nil {
				return nil, 0, fmt.Errorf("restore instance: %w", err)
			}
			row := rows[in.Service]
			if row == nil {
				row = &serviceRow{registry.ServiceSummary{Name: in.Service, ModifyIndex: in.ModifyIndex}}
				rows[in.Service] = row
			}
			row.Instances++
			bump(&row.ServiceSummary, in.Health, +1)
		}
	}
	for _, row := range rows {
		if err := txn.Insert(tableServices, row); err != nil {
			return nil, 0, err
		}
	}
	for k, v := range h.Indexes {
		if err := txn.Insert(tableIndex, &indexRow{Key: k, Value: v}); err != nil {
			return nil, 0, err
		}
	}
	txn.Commit()
	return db, top, nil
}

// Validate reads a whole snapshot without applying it, so a bad upload is
// rejected before it can replace anything. It returns the highest index
// the snapshot holds: the log must install it past that index, or writes
// after it would carry lower indexes than the restored state.
func Validate(r io.Reader) (uint64, error) {
	_, top, err := readSnapshot(r)
	return top, err
}
