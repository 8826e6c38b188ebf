package store

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/rosterhq/roster/internal/registry"
)

// MaxIndex is the highest index a snapshot may carry: 2^53, which a log
// writing a million entries a second reaches in 285 years, and the
// largest integer a JSON client (JavaScript's Number) reads exactly. An
// index past it is garbage, never history.
const MaxIndex = 1 << 53

// Uploaded is what CheckSnapshot found in an upload.
type Uploaded struct {
	// Size is the length of the snapshot written.
	Size int64
	// Services and Instances count the records.
	Services, Instances int
	// Shift is how far every index of the file was moved down (0 when
	// none was above the restore's index).
	Shift uint64
}

// CheckSnapshot reads a snapshot an operator uploaded (as Persist wrote
// it, by this or an older version) and writes to w the snapshot to
// install at log index at. It refuses the whole upload at the first
// problem, with a *registry.ValidationError naming the line, the record
// and the field; a read error from r is returned wrapped as it is. It
// reads r once, a line at a time, and checks the header before anything
// else.
//
// Every record must pass what a registration must (registry.Normalize,
// the check rules among it); it is written as normalised, with its health
// derived again. Indexes are the agent's, not the file's (ARCHITECTURE.md,
// "The durable format"): each index of the file must be at most MaxIndex
// and at most the header's "last"; when "last" is at or past at, every
// instance index is moved down by last-at+1 (to at least 1), so none is
// at or above the restore's own index; every service row, and the
// header's indexes, become at, so that every watcher sees each service
// change forward.
func CheckSnapshot(r io.Reader, w io.Writer, at uint64) (Uploaded, error) {
	var out Uploaded
	if at == 0 || at > MaxIndex {
		return out, fmt.Errorf("store: restore index %d out of range", at)
	}
	sr := newSnapReader(r)
	if err := sr.readHeader(); err != nil {
		return out, err
	}
	last, err := checkHeaderIndexes(sr.header)
	if err != nil {
		return out, err
	}
	if last >= at {
		out.Shift = last - at + 1
	}
	cw := &countWriter{w: w}
	sw := newSnapshotWriter(cw)
	if err := sw.header(snapshotHeader{Version: snapshotVersion, Indexes: map[string]uint64{
		idxLast: at, idxServices: at, idxChecks: at,
	}}); err != nil {
		return out, err
	}
	c := uploadCheck{last: last, shift: out.Shift, at: at,
		services: map[string]bool{}, rows: map[string]bool{}, keys: map[registry.Key]bool{}}
	var rec snapshotRecord
	for {
		err := sr.next(&rec)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, err
		}
		if err := c.record(sr.line, &rec); err != nil {
			return out, err
		}
		if err := sw.record(rec); err != nil {
			return out, fmt.Errorf("write snapshot: %w", err)
		}
	}
	// A service with instances and no row of its own gets one, at the
	// restore's index like every other.
	for name := range c.services {
		if !c.rows[name] {
			if err := sw.record(snapshotRecord{Service: &serviceRecord{Name: name, ModifyIndex: at}}); err != nil {
				return out, fmt.Errorf("write snapshot: %w", err)
			}
		}
	}
	if err := sw.end(); err != nil {
		return out, err
	}
	out.Size, out.Services, out.Instances = cw.n, len(c.rows), len(c.keys)
	return out, nil
}

// checkHeaderIndexes returns the header's last index, refusing one that
// is out of range or below another index of the header.
func checkHeaderIndexes(h snapshotHeader) (uint64, error) {
	last := h.Indexes[idxLast]
	for _, k := range []string{idxLast, idxServices, idxChecks} {
		v := h.Indexes[k]
		switch {
		case v > MaxIndex:
			return 0, snapErr(1, "header.indexes."+k, fmt.Sprintf("%d is past the highest index a log can reach (%d)", v, uint64(MaxIndex)))
		case v > last:
			return 0, snapErr(1, "header.indexes."+k, fmt.Sprintf("%d is past the snapshot's last index %d", v, last))
		}
	}
	return last, nil
}

// uploadCheck checks and rewrites the records of one upload.
type uploadCheck struct {
	last, shift, at uint64
	// services holds every service an instance names; rows those with a
	// service record; keys every instance.
	services, rows map[string]bool
	keys           map[registry.Key]bool
}

// record checks rec, read from line, and rewrites it as it is to be
// installed.
func (c *uploadCheck) record(line int, rec *snapshotRecord) error {
	switch {
	case rec.Service != nil && rec.Instance != nil:
		return snapErr(line, "", "a record holds a service or an instance, not both")
	case rec.Service != nil:
		return c.service(line, rec.Service)
	case rec.Instance != nil:
		return c.instance(line, rec.Instance)
	}
	return snapErr(line, "", "neither a service nor an instance")
}

func (c *uploadCheck) service(line int, s *serviceRecord) error {
	name := registry.NormalizeName(s.Name)
	f := "service " + short(s.Name)
	switch {
	case !registry.ValidName(name):
		return snapErr(line, f+", name", "must be a DNS label: 1-63 letters, digits or '-', not starting or ending with '-'")
	case c.rows[name]:
		return snapErr(line, f, "a second record of the service")
	}
	if err := c.index(line, f+", modify_index", s.ModifyIndex); err != nil {
		return err
	}
	c.rows[name] = true
	// Counts are derived from the instances; the index is the restore's.
	*s = serviceRecord{Name: name, ModifyIndex: c.at}
	return nil
}

func (c *uploadCheck) instance(line int, r *instanceRecord) error {
	f := "instance " + short(r.Service) + "/" + short(r.ID)
	for _, ix := range []struct {
		name string
		v    uint64
	}{{"create_index", r.CreateIndex}, {"modify_index", r.ModifyIndex}} {
		if err := c.index(line, f+", "+ix.name, ix.v); err != nil {
			return err
		}
	}
	in := r.instance()
	create, modify := in.CreateIndex, in.ModifyIndex
	if in.ID == "" {
		return snapErr(line, f+", id", "is required")
	}
	if err := registry.Normalize(in); err != nil {
		var verr *registry.ValidationError
		if !errors.As(err, &verr) {
			return err
		}
		out := &registry.ValidationError{}
		for _, fe := range verr.Fields {
			out.Add(snapField(line, f+", "+fe.Field), fe.Message)
		}
		return out
	}
	if c.keys[in.Key()] {
		return snapErr(line, f, "a second record of the instance")
	}
	c.keys[in.Key()] = true
	c.services[in.Service] = true
	in.CreateIndex, in.ModifyIndex = c.rebase(create), c.rebase(modify)
	r.fill(in)
	return nil
}

// index refuses an index of the file past its last one.
func (c *uploadCheck) index(line int, field string, v uint64) error {
	if v > c.last {
		return snapErr(line, field, fmt.Sprintf("%d is past the snapshot's last index %d", v, c.last))
	}
	return nil
}

// rebase moves an index of the file below the restore's index.
func (c *uploadCheck) rebase(v uint64) uint64 {
	if v == 0 || c.shift == 0 {
		return v
	}
	if v <= c.shift {
		return 1
	}
	return v - c.shift
}

// snapErr is a problem with a snapshot: on line (0: the whole file), in
// field (empty: the line as a whole).
func snapErr(line int, field, msg string) error {
	v := &registry.ValidationError{}
	v.Add(snapField(line, field), msg)
	return v
}

func snapField(line int, field string) string {
	switch {
	case line == 0:
		return "snapshot"
	case field == "":
		return "line " + strconv.Itoa(line)
	}
	return "line " + strconv.Itoa(line) + ", " + field
}

// short quotes s when it is not plain, and cuts it when it is long, for
// naming a record in an error.
func short(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "..."
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '/' || c == ',' {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// countWriter counts what it writes.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
