package server

import (
	"errors"
	"io"

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

// Restore installs a snapshot through the log; a bad one changes nothing
// and is the client's error.
func (s *snapshots) Restore(r io.Reader) error {
	err := s.node.Restore(r)
	if errors.Is(err, raftlog.ErrInvalidSnapshot) {
		v := &registry.ValidationError{}
		v.Add("snapshot", err.Error())
		return v
	}
	return err
}
