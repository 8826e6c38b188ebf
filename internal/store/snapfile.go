package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// The snapshot file: a header line, one record per line, and (since the
// header learned "checksum") a trailer line holding the CRC32C of every
// byte before it and the number of records. An older reader skips the
// trailer (a record with neither a service nor an instance) and ignores
// the header's new fields, so the version stays 1. A header that names a
// checksum makes the trailer required: a snapshot cut at a line boundary
// is refused, not restored short.

// snapshotKind is the header's "kind": what the file is.
const snapshotKind = "roster-registry"

// checksumCRC32C names the trailer's checksum in the header.
const checksumCRC32C = "crc32c"

// maxSnapshotLine bounds one line of a snapshot (a record): far above
// what a valid instance encodes to, so only garbage reaches it.
const maxSnapshotLine = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// trailerRecord ends a snapshot.
type trailerRecord struct {
	CRC32C  string `json:"crc32c"`
	Records int    `json:"records"`
}

// snapReader reads a snapshot line by line, checking the trailer.
type snapReader struct {
	br      *bufio.Reader
	buf     []byte
	line    int // of the last line read
	crc     hash.Hash32
	records int
	header  snapshotHeader
	trailer bool
}

func newSnapReader(r io.Reader) *snapReader {
	return &snapReader{br: bufio.NewReaderSize(r, 256<<10), crc: crc32.New(castagnoli)}
}

// readLine returns the next line with its newline (none at the end of
// the input), io.EOF when there is none.
func (s *snapReader) readLine() ([]byte, error) {
	s.buf = s.buf[:0]
	for {
		frag, err := s.br.ReadSlice('\n')
		s.buf = append(s.buf, frag...)
		if len(s.buf) > maxSnapshotLine {
			return nil, snapErr(s.line+1, "", fmt.Sprintf("line longer than %d bytes", maxSnapshotLine))
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(s.buf) > 0:
			err = nil
		case err != nil && !errors.Is(err, io.EOF):
			return nil, fmt.Errorf("read snapshot: %w", err)
		}
		if err == nil {
			s.line++
		}
		return s.buf, err
	}
}

// readHeader reads and checks the first line: a header of a version this
// agent reads, of a registry snapshot.
func (s *snapReader) readHeader() error {
	b, err := s.readLine()
	if errors.Is(err, io.EOF) {
		return snapErr(0, "", "empty; a snapshot starts with its header line")
	}
	if err != nil {
		return err
	}
	s.crc.Write(b)
	var h struct {
		snapshotHeader
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &h); err != nil || h.Version == nil {
		return snapErr(0, "", "line 1 is not a roster snapshot header")
	}
	s.header = h.snapshotHeader
	s.header.Version = *h.Version
	switch {
	case s.header.Version != snapshotVersion:
		return snapErr(1, "header.version", fmt.Sprintf("%d is not supported (this agent reads version %d)", s.header.Version, snapshotVersion))
	case s.header.Kind != "" && s.header.Kind != snapshotKind:
		return snapErr(1, "header.kind", fmt.Sprintf("%q is not a registry snapshot (%q)", s.header.Kind, snapshotKind))
	case s.header.Checksum != "" && s.header.Checksum != checksumCRC32C:
		return snapErr(1, "header.checksum", fmt.Sprintf("%q is not supported (%q)", s.header.Checksum, checksumCRC32C))
	}
	for k := range s.header.Indexes {
		if k == "" {
			return snapErr(1, "header.indexes", "an index has no name")
		}
	}
	return nil
}

// next reads the next record into rec; io.EOF at the end, once the
// trailer (when there is one) matched.
func (s *snapReader) next(rec *snapshotRecord) error {
	for {
		b, err := s.readLine()
		if errors.Is(err, io.EOF) {
			if s.header.Checksum != "" && !s.trailer {
				return snapErr(0, "", "truncated: the trailer the header announces is missing")
			}
			return io.EOF
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			if !s.trailer {
				s.crc.Write(b)
			}
			continue
		}
		if s.trailer {
			return snapErr(s.line, "", "data after the trailer")
		}
		*rec = snapshotRecord{}
		if err := json.Unmarshal(b, rec); err != nil {
			return snapErr(s.line, "", "not a snapshot record: "+jsonProblem(err))
		}
		if t := rec.Trailer; t != nil {
			if got := fmt.Sprintf("%08x", s.crc.Sum32()); got != t.CRC32C {
				return snapErr(s.line, "trailer.crc32c", fmt.Sprintf("checksum mismatch: the data before it sums to %s, the trailer says %q; the file is damaged", got, t.CRC32C))
			}
			if t.Records != s.records {
				return snapErr(s.line, "trailer.records", fmt.Sprintf("%d records before it, the trailer says %d", s.records, t.Records))
			}
			s.trailer = true
			continue
		}
		s.crc.Write(b)
		s.records++
		return nil
	}
}

// jsonProblem says briefly what is wrong with a JSON line.
func jsonProblem(err error) string {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at offset %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("%s must be a JSON %s, not %s", typ.Field, typ.Type, typ.Value)
	}
	return err.Error()
}

// snapshotWriter writes snapshot lines, summing them for the trailer.
type snapshotWriter struct {
	w       io.Writer
	crc     hash.Hash32
	enc     *json.Encoder
	records int
}

func newSnapshotWriter(w io.Writer) *snapshotWriter {
	sw := &snapshotWriter{w: w, crc: crc32.New(castagnoli)}
	sw.enc = json.NewEncoder(io.MultiWriter(w, sw.crc))
	return sw
}

func (sw *snapshotWriter) header(h snapshotHeader) error {
	h.Kind, h.Checksum = snapshotKind, checksumCRC32C
	if err := sw.enc.Encode(h); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	return nil
}

func (sw *snapshotWriter) record(rec snapshotRecord) error {
	sw.records++
	return sw.enc.Encode(rec)
}

// end writes the trailer.
func (sw *snapshotWriter) end() error {
	t := snapshotRecord{Trailer: &trailerRecord{CRC32C: fmt.Sprintf("%08x", sw.crc.Sum32()), Records: sw.records}}
	if err := json.NewEncoder(sw.w).Encode(t); err != nil {
		return fmt.Errorf("write snapshot trailer: %w", err)
	}
	return nil
}
