package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

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
	Service  *serviceRecord  `json:"service,omitempty"`
	Instance *instanceRecord `json:"instance,omitempty"`
}

// Snapshot is an immutable view of the store, cheap to take (it is the
// published view, which is never written). Persist may run while writes
// continue.
type Snapshot struct {
	v *view
}

// Snapshot captures the current state.
func (s *Store) Snapshot() *Snapshot { return &Snapshot{v: s.read()} }

// Index is the last index the snapshot covers.
func (sn *Snapshot) Index() uint64 { return sn.v.last }

// Snapshot header index names.
const (
	idxLast     = "last"     // last applied write
	idxServices = "services" // last change to any service
	idxChecks   = "checks"   // last change to check definitions
)

// Persist writes the snapshot as JSON lines: a header, then every service
// row (tombstones included, so indexes never go back after a restore),
// then every instance.
func (sn *Snapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	h := snapshotHeader{Version: snapshotVersion, Indexes: map[string]uint64{
		idxLast:     sn.v.last,
		idxServices: sn.v.servicesIdx,
		idxChecks:   sn.v.checksIdx,
	}}
	if err := enc.Encode(h); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	var err error
	sn.v.services.Ascend(func(r *serviceRow) bool {
		err = enc.Encode(snapshotRecord{Service: serviceToRecord(&r.ServiceSummary)})
		return err == nil
	})
	if err == nil {
		var rec instanceRecord // reused: one instance at a time
		sn.v.instances.Ascend(func(in *registry.Instance) bool {
			rec.fill(in)
			err = enc.Encode(snapshotRecord{Instance: &rec})
			return err == nil
		})
	}
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return bw.Flush()
}

// Restore replaces the whole state with a snapshot written by Persist and
// wakes every watcher. On error the current state is left as it was. Like
// ApplyBatch, it is called by the log, never concurrently with it.
func (s *Store) Restore(r io.Reader) error {
	in := newInterner()
	v, _, err := readSnapshot(r, in)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.w, s.intern = v, in
	s.cur.Store(v.clone())
	s.mu.Unlock()
	s.hub.notifyAll()
	return nil
}

// readSnapshot builds a view from a snapshot and returns it with the
// highest index the snapshot holds.
func readSnapshot(r io.Reader, intern *interner) (*view, uint64, error) {
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
	v := newView()
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
			in := rec.Instance.instance()
			in.ComputeHealth()
			if intern != nil {
				intern.instance(in)
			}
			top = max(top, in.ModifyIndex)
			v.put(v.instance(in.Key()), in)
			row := rows[in.Service]
			if row == nil {
				row = &serviceRow{registry.ServiceSummary{Name: in.Service, ModifyIndex: in.ModifyIndex}}
				rows[in.Service] = row
			}
			row.Instances++
			bump(&row.ServiceSummary, in.Health, +1)
		}
	}
	// Service rows and header indexes must be named: an instance without
	// a service, say, is garbage, and snapshots have always been refused
	// for it.
	for _, row := range rows {
		if row.Name == "" {
			return nil, 0, errors.New("restore service: no name")
		}
		v.services.ReplaceOrInsert(row)
	}
	for k := range h.Indexes {
		if k == "" {
			return nil, 0, errors.New("restore index: no name")
		}
	}
	v.last, v.servicesIdx, v.checksIdx = h.Indexes[idxLast], h.Indexes[idxServices], h.Indexes[idxChecks]
	return v, top, nil
}

// Validate reads a whole snapshot without applying it, so a bad upload is
// rejected before it can replace anything. It returns the highest index
// the snapshot holds: the log must install it past that index, or writes
// after it would carry lower indexes than the restored state.
func Validate(r io.Reader) (uint64, error) {
	_, top, err := readSnapshot(r, nil)
	return top, err
}
