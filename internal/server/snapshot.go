package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rosterhq/roster/internal/raftlog"
	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// snapshots implements httpapi.Snapshots over the store and the log.
type snapshots struct {
	store    *store.Store
	node     *raftlog.Node
	registry *registry.Service
}

// Save writes a consistent snapshot of the current state.
func (s *snapshots) Save(w io.Writer) error { return s.store.Snapshot().Persist(w) }

// Restore installs a snapshot through the log, then marks every service
// changed so that no watcher stays on an index from before the restore. A
// bad snapshot changes nothing and is the client's error.
func (s *snapshots) Restore(r io.Reader) error {
	err := s.node.Restore(r)
	if errors.Is(err, raftlog.ErrInvalidSnapshot) {
		v := &registry.ValidationError{}
		v.Add("snapshot", err.Error())
		return v
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.registry.Reindex(ctx); err != nil {
		return fmt.Errorf("restored, but marking services changed failed: %w", err)
	}
	return nil
}
