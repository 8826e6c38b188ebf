package raftlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFileName is the file in the data directory that an agent holds an
// exclusive flock on while it runs. It holds the pid of that agent, for
// the message a second agent prints; the lock itself, not the file's
// presence, is what counts, so a file left by a killed agent (the kernel
// drops the lock with the process) does not block the next start.
const lockFileName = "roster.lock"

// ErrDirLocked is returned by Open when another process holds the data
// directory.
var ErrDirLocked = errors.New("data dir in use")

// dirLock is the held lock on a data directory.
type dirLock struct{ f *os.File }

// lockDir takes the data directory's lock without waiting: another agent
// holding it fails Open at once, naming its pid.
func lockDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("raftlog: lock data dir: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			pid := "unknown"
			if b, rerr := os.ReadFile(path); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
				pid = strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("raftlog: %w: data dir %s in use by pid %s", ErrDirLocked, dir, pid)
		}
		return nil, fmt.Errorf("raftlog: lock data dir %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

// Close releases the lock. The file stays: removing it would let a third
// agent lock a new file while a second one still waits on the old one.
func (l *dirLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
