package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/rosterhq/roster/internal/registry"
)

// snapshotVersion is written first in every snapshot.
const snapshotVersion = 1

type snapshotHeader struct {
	Version int `json:"version"`
	// Kind is snapshotKind; older snapshots have none.
	Kind     string            `json:"kind,omitempty"`
	Indexes  map[string]uint64 `json:"indexes"`
	Services int               `json:"services"`
	// Checksum names the trailer's checksum (snapfile.go); older
	// snapshots have neither.
	Checksum string `json:"checksum,omitempty"`
}

// A snapshot record carries one service row or one instance, or is the
// trailer.
type snapshotRecord struct {
	Service  *serviceRecord  `json:"service,omitempty"`
	Instance *instanceRecord `json:"instance,omitempty"`
	Trailer  *trailerRecord  `json:"trailer,omitempty"`
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
// then every instance, then the trailer with their checksum.
func (sn *Snapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	sw := newSnapshotWriter(bw)
	h := snapshotHeader{Version: snapshotVersion, Indexes: map[string]uint64{
		idxLast:     sn.v.last,
		idxServices: sn.v.servicesIdx,
		idxChecks:   sn.v.checksIdx,
	}}
	if err := sw.header(h); err != nil {
		return err
	}
	var err error
	sn.v.services.Ascend(func(r *serviceRow) bool {
		err = sw.record(snapshotRecord{Service: serviceToRecord(&r.ServiceSummary)})
		return err == nil
	})
	if err == nil {
		var rec instanceRecord // reused: one instance at a time
		sn.v.instances.Ascend(func(in *registry.Instance) bool {
			rec.fill(in)
			err = sw.record(snapshotRecord{Instance: &rec})
			return err == nil
		})
	}
	if err == nil {
		err = sw.end()
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
// highest index the snapshot holds. It reads what this agent wrote (its
// own snapshots, and uploads CheckSnapshot rewrote): it checks the format
// and the trailer, not the registration rules.
func readSnapshot(r io.Reader, intern *interner) (*view, uint64, error) {
	sr := newSnapReader(r)
	if err := sr.readHeader(); err != nil {
		return nil, 0, err
	}
	h := sr.header
	var top uint64
	for _, v := range h.Indexes {
		top = max(top, v)
	}
	v := newView()
	// Rows are found by name: a service record sets the row's index, the
	// instances its counts, in whatever order they come.
	rows := map[string]*serviceRow{}
	row := func(name string) *serviceRow {
		r := rows[name]
		if r == nil {
			r = &serviceRow{registry.ServiceSummary{Name: name}}
			rows[name] = r
		}
		return r
	}
	for {
		var rec snapshotRecord
		err := sr.next(&rec)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		switch {
		case rec.Service != nil:
			// Counts are derived again from the instances.
			row(rec.Service.Name).ModifyIndex = rec.Service.ModifyIndex
			top = max(top, rec.Service.ModifyIndex)
		case rec.Instance != nil:
			in := rec.Instance.instance()
			in.ComputeHealth()
			if intern != nil {
				intern.instance(in)
			}
			top = max(top, in.ModifyIndex)
			v.put(v.instance(in.Key()), in)
			r := row(in.Service)
			if r.ModifyIndex == 0 {
				r.ModifyIndex = in.ModifyIndex
			}
			r.Instances++
			bump(&r.ServiceSummary, in.Health, +1)
		}
	}
	// Service rows must be named: an instance without a service, say, is
	// garbage, and snapshots have always been refused for it.
	for _, row := range rows {
		if row.Name == "" {
			return nil, 0, errors.New("restore service: no name")
		}
		v.services.ReplaceOrInsert(row)
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
