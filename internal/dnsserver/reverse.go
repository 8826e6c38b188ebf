package dnsserver

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// reverseRebuildEvery bounds how often the reverse index is rebuilt while
// the registry keeps changing: a rebuild reads every instance.
const reverseRebuildEvery = 250 * time.Millisecond

// reverseIndex maps registered addresses to the services that use them,
// for PTR answers. It is rebuilt from the registry on a lookup after the
// registry changed, at most every reverseRebuildEvery.
type reverseIndex struct {
	mu     sync.Mutex
	index  uint64
	built  time.Time
	byAddr map[netip.Addr][]string
}

// lookup returns the names of the services with an instance at addr
// (any health), in name order.
func (r *reverseIndex) lookup(ctx context.Context, reg Registry, addr netip.Addr) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	idx := reg.LastIndex()
	if r.byAddr == nil || (idx != r.index && time.Since(r.built) >= reverseRebuildEvery) {
		if err := r.rebuild(ctx, reg, idx); err != nil {
			return nil, err
		}
	}
	return r.byAddr[addr], nil
}

func (r *reverseIndex) rebuild(ctx context.Context, reg Registry, idx uint64) error {
	_, services, err := reg.Services(ctx, 0, 0)
	if err != nil {
		return err
	}
	m := make(map[netip.Addr][]string)
	for _, s := range services {
		res, err := reg.Instances(ctx, registry.Query{Service: s.Name}, 0, 0)
		if err != nil {
			return err
		}
		for _, in := range res.Instances {
			ip, err := netip.ParseAddr(in.Address)
			if err != nil {
				continue
			}
			ip = ip.Unmap().WithZone("")
			if l := m[ip]; !slices.Contains(l, s.Name) {
				m[ip] = append(l, s.Name)
			}
		}
	}
	r.byAddr, r.index, r.built = m, idx, time.Now()
	return nil
}
