package xds

import (
	"fmt"
	"maps"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/rosterhq/roster/internal/registry"
)

// entry is one service's resources as last built.
type entry struct {
	// index is the service's registry index they were built from.
	index uint64
	res   [numKinds]types.Resource
	// ver is each resource's version: a hash of its content
	// (contentVersion).
	ver [numKinds]string
}

// builder keeps every service's resources and assembles snapshots from
// them. A change rebuilds only the services whose index moved, and a
// resource whose content did not change keeps its version, so delta
// clients are sent only what changed and state-of-the-world clients only
// the types that changed. It is used by one goroutine at a time.
type builder struct {
	opts    buildOptions
	entries map[string]*entry
	// snap is the last snapshot assembled; its maps are never changed
	// once handed out, so the next one copies those it changes.
	snap *cachev3.Snapshot
}

func newBuilder(o buildOptions) *builder {
	return &builder{opts: o, entries: map[string]*entry{}}
}

// serviceRead is one service's instances as read from the registry, and
// the service's index at that read.
type serviceRead struct {
	index     uint64
	instances []*registry.Instance
}

// update brings the resources in line with services (the registry's
// service list, ordered by name, read at index idx), calling read for
// each service whose index moved since it was last built. It returns the
// new snapshot, or nil when no resource changed, and how many services it
// rebuilt.
//
// Each type's version is the index at which one of its resources last
// changed, and each resource's version a hash of its content; a snapshot
// holds, for
// every service, a cluster, its endpoints, a listener and a route built
// from one read: a cluster and its endpoints never disagree.
func (b *builder) update(idx uint64, services []registry.ServiceSummary, read func(name string) (serviceRead, error)) (*cachev3.Snapshot, int, error) {
	var changed [numKinds]map[string]bool // name → present (false: removed)
	dirty := false
	mark := func(k kind, name string, present bool) {
		dirty = true
		if changed[k] == nil {
			changed[k] = map[string]bool{}
		}
		changed[k][name] = present
	}
	rebuilt := 0
	seen := make(map[string]bool, len(services))
	for _, s := range services {
		seen[s.Name] = true
		e := b.entries[s.Name]
		// An index that moved back (a restore installed an older
		// state) is a change too: only an equal index means the entry
		// holds what the registry holds.
		if e != nil && e.index == s.ModifyIndex {
			continue
		}
		r, err := read(s.Name)
		if err != nil {
			// Entries rebuilt so far are not in any snapshot yet: the
			// next update assembles one from every entry.
			b.snap = nil
			return nil, rebuilt, err
		}
		rebuilt++
		idx = max(idx, r.index)
		res := serviceResources(s.Name, r.instances, b.opts)
		if e == nil {
			e = &entry{}
			b.entries[s.Name] = e
		}
		e.index = max(r.index, s.ModifyIndex)
		for k := range numKinds {
			v, err := contentVersion(res[k])
			if err != nil {
				b.snap = nil
				return nil, rebuilt, err
			}
			if e.res[k] != nil && e.ver[k] == v {
				continue
			}
			e.res[k], e.ver[k] = res[k], v
			mark(k, s.Name, true)
		}
	}
	for name := range b.entries {
		if !seen[name] {
			delete(b.entries, name)
			for k := range numKinds {
				mark(k, name, false)
			}
		}
	}
	if b.snap != nil && !dirty {
		return nil, rebuilt, nil
	}
	b.snap = b.assemble(idx, changed)
	return b.snap, rebuilt, nil
}

// contentVersion is a resource's version in delta responses: a hash of
// its content. Equal content has the same version on every agent and
// across restarts, and different content never shares one, which an
// index cannot promise: a -dev agent starts its indexes again at 1, and
// an agent restarted with another -xds-warning builds other endpoints
// from the same index.
func contentVersion(r types.Resource) (string, error) {
	b, err := cachev3.MarshalResource(r)
	if err != nil {
		return "", fmt.Errorf("marshal %s: %w", cachev3.GetResourceName(r), err)
	}
	return cachev3.HashResource(b), nil
}

// assemble builds the next snapshot: the types in changed get new maps
// (copies of the last with the changes applied) and version idx; the
// others are shared with the last snapshot.
func (b *builder) assemble(idx uint64, changed [numKinds]map[string]bool) *cachev3.Snapshot {
	prev := b.snap
	next := &cachev3.Snapshot{VersionMap: make(map[string]map[string]string, numKinds)}
	for k := range numKinds {
		rt, url := responseType[k], typeURL[k]
		if prev != nil && changed[k] == nil {
			next.Resources[rt] = prev.Resources[rt]
			next.VersionMap[url] = prev.VersionMap[url]
			continue
		}
		var items map[string]types.ResourceWithTTL
		var vers map[string]string
		if prev == nil {
			items = make(map[string]types.ResourceWithTTL, len(b.entries))
			vers = make(map[string]string, len(b.entries))
			for name, e := range b.entries {
				items[name] = types.ResourceWithTTL{Resource: e.res[k]}
				vers[name] = e.ver[k]
			}
		} else {
			items, vers = maps.Clone(prev.Resources[rt].Items), maps.Clone(prev.VersionMap[url])
			for name, present := range changed[k] {
				if !present {
					delete(items, name)
					delete(vers, name)
					continue
				}
				e := b.entries[name]
				items[name] = types.ResourceWithTTL{Resource: e.res[k]}
				vers[name] = e.ver[k]
			}
		}
		next.Resources[rt] = cachev3.Resources{Version: version(idx), Items: items}
		next.VersionMap[url] = vers
	}
	return next
}

// consistent checks that every reference in snap resolves in it: each
// cluster's endpoints, each listener's route configuration and each
// route's cluster, and that no type holds a resource the others do not
// (go-control-plane's Snapshot.Consistent does not follow references out
// of API listeners). All four resources of a service are named after it,
// so this compares names; it reads no Any.
func consistent(snap *cachev3.Snapshot) error {
	clusters := snap.Resources[types.Cluster].Items
	for k := range numKinds {
		items := snap.Resources[responseType[k]].Items
		if len(items) != len(clusters) {
			return fmt.Errorf("%d clusters but %d %s resources", len(clusters), len(items), kindLabel[k])
		}
		for name := range items {
			if _, ok := clusters[name]; !ok {
				return fmt.Errorf("%s %q without a cluster", kindLabel[k], name)
			}
		}
	}
	for name, r := range clusters {
		c, ok := r.Resource.(*clusterv3.Cluster)
		if !ok || c.GetEdsClusterConfig().GetServiceName() != name {
			return fmt.Errorf("cluster %q does not name its endpoints", name)
		}
	}
	for name, r := range snap.Resources[types.Route].Items {
		rc, ok := r.Resource.(*routev3.RouteConfiguration)
		if !ok || rc.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster() != name {
			return fmt.Errorf("route %q does not name its cluster", name)
		}
	}
	return nil
}

// services reports how many services the builder holds.
func (b *builder) services() int { return len(b.entries) }
