package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/hashicorp/raft"
)

// Every command entry this node appends carries a checksum of its data in
// raft.Log.Extensions: one kind byte, extCRC32C, then the CRC32C
// (Castagnoli) of Data, big-endian. raft-wal stores Extensions beside Data
// and raft's transports carry it to followers, so the sum travels with the
// entry from the leader that wrote it to every disk and back. The entry's
// data (the store's encoding, see store/codec.go) is untouched: older
// agents ignore Extensions, and entries written before checksums (empty
// Extensions) are accepted unverified. Extensions of another kind, from a
// newer agent, are accepted unverified too.
const (
	extCRC32C byte = 1
	extLen         = 1 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptEntry marks a log entry whose data does not match its checksum.
var ErrCorruptEntry = errors.New("log entry fails its checksum")

// checksumExt returns the Extensions that carry data's checksum.
func checksumExt(data []byte) []byte {
	ext := make([]byte, extLen)
	ext[0] = extCRC32C
	binary.BigEndian.PutUint32(ext[1:], crc32.Checksum(data, castagnoli))
	return ext
}

// verifyEntry checks l's data against the checksum in its Extensions, if
// it has one.
func verifyEntry(l *raft.Log) error {
	ext := l.Extensions
	if len(ext) == 0 || ext[0] != extCRC32C {
		return nil
	}
	if len(ext) != extLen {
		return fmt.Errorf("%w: index %d: checksum extension of %d bytes", ErrCorruptEntry, l.Index, len(ext))
	}
	want := binary.BigEndian.Uint32(ext[1:])
	if got := crc32.Checksum(l.Data, castagnoli); got != want {
		return fmt.Errorf("%w: index %d: crc32c %08x, entry says %08x", ErrCorruptEntry, l.Index, got, want)
	}
	return nil
}
