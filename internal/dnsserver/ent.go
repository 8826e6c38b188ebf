package dnsserver

import (
	"context"
	"strings"
	"sync"

	"github.com/rosterhq/roster/internal/registry"
)

// entIndex answers whether the empty non-terminals that depend on
// registry data exist (RFC 8020: a name exists while names below it do):
// ZONE.D and service.ZONE.D while a healthy instance is in the zone,
// _TAG.D and _TAG.service[.ZONE].D while a healthy instance has the tag.
//
// It is rebuilt, reading every instance, on the first lookup after the
// registry's index moved, so its answers are never stale; rebuilds
// happen at most once per registry write, however many questions come.
// Lookups are serialised by mu, which only these names take.
type entIndex struct {
	mu    sync.Mutex
	index uint64 // the registry index built from; 0: never built
	zones map[string]struct{}
	// tags holds lower-case tags, under zone "" (any zone) and under the
	// zone of each instance that has them.
	tags map[zoneTag]struct{}
}

type zoneTag struct{ zone, tag string }

// exists reports whether the empty non-terminal n (kindZone or kindTag)
// has healthy instances below it.
func (e *entIndex) exists(ctx context.Context, h *Handler, n name) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if idx := h.reg.LastIndex(); idx != e.index {
		if err := e.rebuild(ctx, h, idx); err != nil {
			return false, err
		}
	}
	if n.kind == kindTag {
		_, ok := e.tags[zoneTag{n.zone, strings.ToLower(n.tag)}]
		return ok, nil
	}
	_, ok := e.zones[n.zone]
	return ok, nil
}

func (e *entIndex) rebuild(ctx context.Context, h *Handler, idx uint64) error {
	_, services, err := h.reg.Services(ctx, 0, 0)
	if err != nil {
		return err
	}
	zones := make(map[string]struct{})
	tags := make(map[zoneTag]struct{})
	for _, s := range services {
		res, err := h.reg.Instances(ctx, registry.Query{Service: s.Name, Health: h.health}, 0, 0)
		if err != nil {
			return err
		}
		for _, in := range res.Instances {
			if _, ok := targetOf(in); !ok {
				continue
			}
			if in.Zone != "" {
				zones[in.Zone] = struct{}{}
			}
			for _, t := range in.Tags {
				t = strings.ToLower(t)
				tags[zoneTag{"", t}] = struct{}{}
				if in.Zone != "" {
					tags[zoneTag{in.Zone, t}] = struct{}{}
				}
			}
		}
	}
	e.zones, e.tags, e.index = zones, tags, idx
	return nil
}
