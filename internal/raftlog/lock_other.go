//go:build !unix

package raftlog

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("would block")

// flock is a no-op where flock(2) does not exist: the data directory is
// not locked there.
func flock(*os.File) error { return nil }
