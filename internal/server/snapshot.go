package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
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
	// forwarding is set while this agent sends a restore to the leader.
	forwarding atomic.Bool
}

// Save writes a consistent snapshot of the current state.
func (s *snapshots) Save(w io.Writer) error { return s.store.Snapshot().Persist(w) }

// Restore installs a snapshot through the log, then marks every service
// changed so that no watcher stays on an index from before the restore. A
// bad snapshot changes nothing and is the client's error. One restore
// runs at a time: another is refused at once (ErrConflict), not queued.
func (s *snapshots) Restore(r io.Reader) error {
	if s.cluster != nil && !s.local.node.IsLeader() {
		if !s.forwarding.CompareAndSwap(false, true) {
			return errRestoreBusy
		}
		defer s.forwarding.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_, err := s.cluster.RestoreThroughLeader(ctx, r)
		return err
	}
	_, err := s.local.restore(r)
	return err
}

// errRestoreBusy refuses a restore while another runs.
var errRestoreBusy = fmt.Errorf("another snapshot restore is in progress; try again when it ends: %w", registry.ErrConflict)

// localRestore restores through this agent's log. It is apart from
// snapshots because the cluster, which snapshots needs, is built over it.
type localRestore struct {
	node     *raftlog.Node
	registry *registry.Service
	// maxBytes bounds an upload (-snapshot-max-bytes), whoever sends it:
	// a client of this agent or a follower passing one on.
	maxBytes int64
	// busy is set while a restore runs here.
	busy *atomic.Bool
}

// restore installs a snapshot through the log (this agent must lead) and
// returns the registry's index after.
func (l localRestore) restore(r io.Reader) (uint64, error) {
	if !l.busy.CompareAndSwap(false, true) {
		return 0, errRestoreBusy
	}
	defer l.busy.Store(false)
	err := l.node.Restore(&sizeLimit{r: r, left: l.maxBytes, max: l.maxBytes})
	var verr *registry.ValidationError
	switch {
	case errors.As(err, &verr):
		return 0, err
	case errors.Is(err, raftlog.ErrInvalidSnapshot):
		v := &registry.ValidationError{}
		v.Add("snapshot", err.Error())
		return 0, v
	case err != nil:
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

// sizeLimit fails a read past max bytes with ErrTooLarge.
type sizeLimit struct {
	r         io.Reader
	left, max int64
}

func (s *sizeLimit) Read(p []byte) (int, error) {
	if s.max <= 0 {
		return s.r.Read(p)
	}
	if s.left <= 0 {
		// One byte more tells a body of exactly max from a longer one.
		var b [1]byte
		n, err := s.r.Read(b[:])
		if n > 0 {
			return 0, fmt.Errorf("snapshot larger than %d bytes (-snapshot-max-bytes): %w", s.max, registry.ErrTooLarge)
		}
		return 0, err
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	return n, err
}
