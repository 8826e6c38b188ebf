package server

import (
	"fmt"
	"io"
	"os"

	"github.com/rosterhq/roster/internal/raftlog"
	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// snapshots implements httpapi.Snapshots over the store and the log.
type snapshots struct {
	store *store.Store
	node  *raftlog.Node
}

// Save writes a consistent snapshot of the current state.
func (s *snapshots) Save(w io.Writer) error { return s.store.Snapshot().Persist(w) }

// Restore spools the upload to a temporary file, checks all of it, and only
// then hands it to the log, which installs it on every node. A bad upload
// changes nothing.
func (s *snapshots) Restore(r io.Reader) error {
	f, err := os.CreateTemp("", "roster-restore-*.snap")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	size, err := io.Copy(f, r)
	if err != nil {
		return fmt.Errorf("restore: read upload: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := store.Validate(f); err != nil {
		v := &registry.ValidationError{}
		v.Add("snapshot", err.Error())
		return v
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return s.node.Restore(f, size)
}
