package raftlog

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

func TestVerifyEntry(t *testing.T) {
	data := []byte("\x01{\"instance\":{}}")
	good := checksumExt(data)
	flipped := append([]byte(nil), good...)
	flipped[4] ^= 1
	tests := []struct {
		name string
		data []byte
		ext  []byte
		bad  bool
	}{
		{name: "written before checksums", data: data},
		{name: "checksum matches", data: data, ext: good},
		{name: "data changed", data: []byte("\x01{\"instance\":{ }"), ext: good, bad: true},
		{name: "checksum changed", data: data, ext: flipped, bad: true},
		{name: "checksum cut short", data: data, ext: good[:3], bad: true},
		{name: "unknown extension of a newer agent", data: data, ext: []byte{0x7f, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyEntry(&raft.Log{Index: 7, Data: tc.data, Extensions: tc.ext})
			if got := errors.Is(err, ErrCorruptEntry); got != tc.bad {
				t.Errorf("verifyEntry: %v, want corrupt %v", err, tc.bad)
			}
		})
	}
}
