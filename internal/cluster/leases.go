package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/rosterhq/roster/internal/lease"
	"github.com/rosterhq/roster/internal/registry"
)

// Leases is registry.Leases for an agent in a cluster. Only the leader
// expires leases, so a heartbeat must reach the leader's table: on the
// leader Renew and Forget go straight to it; on a follower they are
// queued and a single sender passes them on in batches (one request
// while the previous is in flight, so renewals that arrive together share
// it, and a key renewed twice meanwhile is sent once). The leader renews
// each key by the TTL check it holds itself.
//
// A renewal lost on the way (no leader, a leader change) costs nothing
// the fail-over does not already cover: a new leader gives every lease a
// full TTL of grace (lease.Table.Run).
type Leases struct {
	c     *Cluster
	table *lease.Table

	mu      sync.Mutex
	pending map[registry.Key]bool // key → forget
	kick    chan struct{}
}

func newLeases(c *Cluster, t *lease.Table) *Leases {
	return &Leases{c: c, table: t, pending: map[registry.Key]bool{}, kick: make(chan struct{}, 1)}
}

var _ registry.Leases = (*Leases)(nil)

// Renew implements registry.Leases.
func (l *Leases) Renew(key registry.Key, c registry.Check) {
	if l.c.node.IsLeader() {
		l.table.Renew(key, c)
		return
	}
	l.queue(key, false)
}

// Forget implements registry.Leases.
func (l *Leases) Forget(key registry.Key) {
	if l.c.node.IsLeader() {
		l.table.Forget(key)
		return
	}
	l.queue(key, true)
}

// maxPending bounds the queue while no leader takes it; past it the
// oldest state is dropped (the next leader's grace covers it).
const maxPending = 1 << 20

func (l *Leases) queue(key registry.Key, forget bool) {
	l.mu.Lock()
	if len(l.pending) >= maxPending {
		clear(l.pending)
	}
	l.pending[key] = forget
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// run sends queued renewals to the leader until ctx ends.
func (l *Leases) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		}
		l.mu.Lock()
		batch := make([]wireLease, 0, len(l.pending))
		for k, forget := range l.pending {
			batch = append(batch, wireLease{Service: k.Service, ID: k.ID, Forget: forget})
		}
		clear(l.pending)
		l.mu.Unlock()
		if len(batch) > 0 {
			l.send(ctx, batch)
		}
	}
}

func (l *Leases) send(ctx context.Context, batch []wireLease) {
	b, err := json.Marshal(batch)
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err = l.c.toLeader(cctx, func() error {
		l.applyRemote(batch) // this agent leads now
		return nil
	}, func(cctx context.Context, addr string) error {
		err := l.c.call(cctx, http.MethodPost, addr, pathLeases, bytes.NewReader(b), nil)
		var re *remoteError
		if err != nil && !errors.As(err, &re) {
			// Renewals are idempotent: try the next leader.
			return kindError(registry.ErrNotLeader, err.Error(), true)
		}
		return err
	})
	if err != nil {
		l.c.metrics.leaseErrors.Inc()
		l.c.log.Debug("lease renewals not delivered to the leader", "renewals", len(batch), "err", err)
		return
	}
	l.c.metrics.leasesForwarded.Add(float64(len(batch)))
}

// applyRemote renews (or forgets) leases sent by a follower, each by the
// TTL check this agent's store holds.
func (l *Leases) applyRemote(batch []wireLease) {
	for _, wl := range batch {
		key := registry.Key{Service: wl.Service, ID: wl.ID}
		if wl.Forget {
			l.table.Forget(key)
			continue
		}
		in, err := l.c.reg.Get(key)
		if err != nil {
			continue
		}
		if c := in.TTLCheck(); c != nil {
			l.table.Renew(key, *c)
		}
	}
}
