package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rosterhq/roster/internal/cluster"
	"github.com/rosterhq/roster/internal/raftlog"
	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// snapshots implements httpapi.Snapshots over the store and the log.
type snapshots struct {
	store *store.Store
	local localRestore
	// cluster, when set, takes a restore received by a follower to the
	// leader.
	cluster *cluster.Cluster
}

// Save writes a consistent snapshot of the current state.
func (s *snapshots) Save(w io.Writer) error { return s.store.Snapshot().Persist(w) }

// Restore installs a snapshot through the log, then marks every service
// changed so that no watcher stays on an index from before the restore. A
// bad snapshot changes nothing and is the client's error.
func (s *snapshots) Restore(r io.Reader) error {
	if s.cluster != nil && !s.local.node.IsLeader() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_, err := s.cluster.RestoreThroughLeader(ctx, r)
		return err
	}
	_, err := s.local.restore(r)
	return err
}

// localRestore restores through this agent's log. It is apart from
// snapshots because the cluster, which snapshots needs, is built over it.
type localRestore struct {
	node     *raftlog.Node
	registry *registry.Service
}

// restore installs a snapshot through the log (this agent must lead) and
// returns the registry's index after.
func (l localRestore) restore(r io.Reader) (uint64, error) {
	err := l.node.Restore(r)
	if errors.Is(err, raftlog.ErrInvalidSnapshot) {
		v := &registry.ValidationError{}
		v.Add("snapshot", err.Error())
		return 0, v
	}
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	idx, err := l.registry.Reindex(ctx)
	if err != nil {
		return 0, fmt.Errorf("restored, but marking services changed failed: %w", err)
	}
	return idx, nil
}
