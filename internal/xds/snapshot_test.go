package xds

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/rosterhq/roster/internal/registry"
)

// build runs one update of b over reg, as Server.sync does, and checks
// the snapshot's references.
func build(t testing.TB, b *builder, reg *registry.Service) (*cachev3.Snapshot, int) {
	t.Helper()
	snap, rebuilt := update(t, b, reg)
	if snap != nil {
		checkReferences(t, snap)
	}
	return snap, rebuilt
}

// update runs one update of b over reg, as Server.sync does.
func update(t testing.TB, b *builder, reg *registry.Service) (*cachev3.Snapshot, int) {
	t.Helper()
	ctx := context.Background()
	idx, services, err := reg.Services(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	snap, rebuilt, err := b.update(idx, services, func(name string) (serviceRead, error) {
		res, err := reg.Instances(ctx, registry.Query{Service: name}, 0, 0)
		return serviceRead{index: res.Index, instances: res.Instances}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if snap != nil {
		if err := consistent(snap); err != nil {
			t.Fatalf("snapshot not consistent: %v", err)
		}
	}
	return snap, rebuilt
}

// checkReferences follows every reference in snap, the way a client
// does: listener → route configuration (RDS) → cluster → endpoints (EDS).
func checkReferences(t testing.TB, snap *cachev3.Snapshot) {
	t.Helper()
	var all [numKinds]map[string]types.Resource
	for k := range numKinds {
		all[k] = snap.GetResources(typeURL[k])
	}
	res := func(k kind) map[string]types.Resource { return all[k] }
	for name, r := range res(kindListener) {
		hcm := &hcmv3.HttpConnectionManager{}
		if err := r.(*listenerv3.Listener).GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
			t.Fatalf("listener %s: %v", name, err)
		}
		if _, ok := res(kindRoute)[hcm.GetRds().GetRouteConfigName()]; !ok {
			t.Errorf("listener %s names route %q, not served", name, hcm.GetRds().GetRouteConfigName())
		}
	}
	for name, r := range res(kindRoute) {
		for _, vh := range r.(*routev3.RouteConfiguration).GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				if _, ok := res(kindCluster)[rt.GetRoute().GetCluster()]; !ok {
					t.Errorf("route %s names cluster %q, not served", name, rt.GetRoute().GetCluster())
				}
			}
		}
	}
	for name, r := range res(kindCluster) {
		if _, ok := res(kindEndpoints)[r.(*clusterv3.Cluster).GetEdsClusterConfig().GetServiceName()]; !ok {
			t.Errorf("cluster %s: endpoints not served", name)
		}
	}
	if n := len(res(kindEndpoints)); n != len(res(kindCluster)) {
		t.Errorf("%d endpoints for %d clusters", n, len(res(kindCluster)))
	}
}

// versions is every type's version and every resource's version.
type versions struct {
	types     [numKinds]string
	resources [numKinds]map[string]string
}

func versionsOf(s *cachev3.Snapshot) versions {
	var v versions
	for k := range numKinds {
		v.types[k] = s.GetVersion(typeURL[k])
		v.resources[k] = maps.Clone(s.VersionMap[typeURL[k]])
	}
	return v
}

func names(s *cachev3.Snapshot, k kind) []string {
	return slices.Sorted(maps.Keys(s.GetResources(typeURL[k])))
}

func TestBuilderIncremental(t *testing.T) {
	reg := newRegistry()
	for _, svc := range []string{"api", "db", "web"} {
		put(t, reg, registry.Instance{Service: svc, ID: svc + "-1", Address: "10.0.0.1", Port: 80}, registry.Passing)
	}
	b := newBuilder(testOpts)

	snap, rebuilt := build(t, b, reg)
	if snap == nil || rebuilt != 3 {
		t.Fatalf("first build: snapshot %v, rebuilt %d", snap != nil, rebuilt)
	}
	for k := range numKinds {
		if got := names(snap, k); !slices.Equal(got, []string{"api", "db", "web"}) {
			t.Errorf("%s: %v", kindLabel[k], got)
		}
	}
	first := versionsOf(snap)
	if want := fmt.Sprint(reg.LastIndex()); first.types[kindEndpoints] != want {
		t.Errorf("endpoints version %s, want the registry index %s", first.types[kindEndpoints], want)
	}

	t.Run("nothing changed", func(t *testing.T) {
		if snap, rebuilt := build(t, b, reg); snap != nil || rebuilt != 0 {
			t.Errorf("snapshot %v, rebuilt %d", snap != nil, rebuilt)
		}
	})

	t.Run("one service's endpoints change", func(t *testing.T) {
		put(t, reg, registry.Instance{Service: "web", ID: "web-2", Address: "10.0.0.2", Port: 80}, registry.Passing)
		snap, rebuilt := build(t, b, reg)
		if snap == nil || rebuilt != 1 {
			t.Fatalf("snapshot %v, rebuilt %d", snap != nil, rebuilt)
		}
		v := versionsOf(snap)
		for _, k := range []kind{kindCluster, kindListener, kindRoute} {
			if v.types[k] != first.types[k] || !maps.Equal(v.resources[k], first.resources[k]) {
				t.Errorf("%s versions moved: %v %v -> %v %v", kindLabel[k], first.types[k], first.resources[k], v.types[k], v.resources[k])
			}
		}
		if want := fmt.Sprint(reg.LastIndex()); v.types[kindEndpoints] != want {
			t.Errorf("endpoints version %s, want %s", v.types[kindEndpoints], want)
		}
		if v.resources[kindEndpoints]["web"] == first.resources[kindEndpoints]["web"] {
			t.Errorf("endpoints of web changed but kept version %s", v.resources[kindEndpoints]["web"])
		}
		for _, svc := range []string{"api", "db"} {
			if v.resources[kindEndpoints][svc] != first.resources[kindEndpoints][svc] {
				t.Errorf("endpoints of %s moved to %s", svc, v.resources[kindEndpoints][svc])
			}
		}
		cla := snap.GetResources(typeURL[kindEndpoints])["web"].(*endpointv3.ClusterLoadAssignment)
		if n := len(describe(cla)); n != 2 {
			t.Errorf("web has %d endpoints, want 2", n)
		}
		first = v
	})

	t.Run("a change that changes no resource", func(t *testing.T) {
		// Warning is served HEALTHY by default: the service's index moves,
		// its resources do not.
		put(t, reg, registry.Instance{Service: "db", ID: "db-1", Address: "10.0.0.1", Port: 80}, registry.Warning)
		snap, rebuilt := build(t, b, reg)
		if rebuilt != 1 || snap != nil {
			t.Errorf("rebuilt %d, snapshot %v: want the service rebuilt and no snapshot", rebuilt, snap != nil)
		}
	})

	t.Run("a service added and one removed", func(t *testing.T) {
		put(t, reg, registry.Instance{Service: "cache", ID: "cache-1", Address: "10.0.0.9", Port: 6379}, registry.Passing)
		remove(t, reg, "api", "api-1")
		snap, rebuilt := build(t, b, reg)
		if snap == nil || rebuilt != 1 {
			t.Fatalf("snapshot %v, rebuilt %d", snap != nil, rebuilt)
		}
		want := fmt.Sprint(reg.LastIndex())
		for k := range numKinds {
			if got := names(snap, k); !slices.Equal(got, []string{"cache", "db", "web"}) {
				t.Errorf("%s: %v", kindLabel[k], got)
			}
			if got := snap.GetVersion(typeURL[k]); got != want {
				t.Errorf("%s version %s, want %s", kindLabel[k], got, want)
			}
			if _, ok := snap.VersionMap[typeURL[k]]["api"]; ok {
				t.Errorf("%s: api still has a version", kindLabel[k])
			}
		}
	})
}

// TestBuilderSharesUnchangedTypes checks that a snapshot after an
// endpoints-only change reuses the other types' maps instead of copying
// them, which is what keeps a change cheap with many services.
func TestBuilderSharesUnchangedTypes(t *testing.T) {
	reg := newRegistry()
	for i := range 10 {
		put(t, reg, registry.Instance{Service: fmt.Sprintf("s%d", i), ID: "1", Address: "10.0.0.1", Port: 80}, registry.Passing)
	}
	b := newBuilder(testOpts)
	first, _ := build(t, b, reg)
	put(t, reg, registry.Instance{Service: "s3", ID: "2", Address: "10.0.0.2", Port: 80}, registry.Passing)
	next, rebuilt := build(t, b, reg)
	if rebuilt != 1 {
		t.Fatalf("rebuilt %d services, want 1", rebuilt)
	}
	same := func(a, b map[string]string) bool {
		return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
	}
	if !same(first.VersionMap[typeURL[kindCluster]], next.VersionMap[typeURL[kindCluster]]) {
		t.Error("cluster versions copied, want shared")
	}
	if same(first.VersionMap[typeURL[kindEndpoints]], next.VersionMap[typeURL[kindEndpoints]]) {
		t.Error("endpoint versions shared, want a new map")
	}
	if first.VersionMap[typeURL[kindEndpoints]]["s3"] == next.VersionMap[typeURL[kindEndpoints]]["s3"] {
		t.Error("the old snapshot's map was changed")
	}
}

// TestBuilderReadErrorRetries checks that a failed read loses nothing:
// services rebuilt before it reach the next snapshot.
func TestBuilderReadErrorRetries(t *testing.T) {
	reg := newRegistry()
	put(t, reg, registry.Instance{Service: "a", ID: "1", Address: "10.0.0.1", Port: 80}, registry.Passing)
	put(t, reg, registry.Instance{Service: "b", ID: "1", Address: "10.0.0.2", Port: 80}, registry.Passing)
	b := newBuilder(testOpts)
	build(t, b, reg)
	put(t, reg, registry.Instance{Service: "a", ID: "2", Address: "10.0.0.3", Port: 80}, registry.Passing)
	put(t, reg, registry.Instance{Service: "b", ID: "2", Address: "10.0.0.4", Port: 80}, registry.Passing)

	ctx := context.Background()
	idx, services, err := reg.Services(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	failB := func(name string) (serviceRead, error) {
		if name == "b" {
			return serviceRead{}, registry.ErrNotReady
		}
		res, err := reg.Instances(ctx, registry.Query{Service: name}, 0, 0)
		return serviceRead{index: res.Index, instances: res.Instances}, err
	}
	if snap, _, err := b.update(idx, services, failB); err == nil || snap != nil {
		t.Fatalf("update with a failing read: snapshot %v, err %v", snap != nil, err)
	}
	snap, rebuilt := build(t, b, reg)
	if snap == nil || rebuilt != 1 {
		t.Fatalf("retry: snapshot %v, rebuilt %d", snap != nil, rebuilt)
	}
	for _, svc := range []string{"a", "b"} {
		if got := describe(snap.GetResources(typeURL[kindEndpoints])[svc].(*endpointv3.ClusterLoadAssignment)); len(got) != 2 {
			t.Errorf("%s endpoints %v, want 2", svc, got)
		}
	}
}

// TestBuilderIndexMovedBack checks that a service whose index moves back,
// as when a restore installs an older state, is rebuilt from what the
// registry now holds rather than kept as it was.
func TestBuilderIndexMovedBack(t *testing.T) {
	b := newBuilder(testOpts)
	at := func(idx uint64, addr string) *cachev3.Snapshot {
		t.Helper()
		services := []registry.ServiceSummary{{Name: "web", ModifyIndex: idx, Instances: 1, Passing: 1}}
		snap, _, err := b.update(idx, services, func(string) (serviceRead, error) {
			in := &registry.Instance{Service: "web", ID: "1", Address: addr, Port: 80, Weight: 1, Health: registry.Passing}
			return serviceRead{index: idx, instances: []*registry.Instance{in}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	at(10, "10.0.0.1")
	snap := at(5, "10.0.0.2")
	if snap == nil {
		t.Fatal("no snapshot after the index moved back to other content")
	}
	cla := snap.GetResources(typeURL[kindEndpoints])["web"].(*endpointv3.ClusterLoadAssignment)
	if got := describe(cla); len(got) != 1 || !strings.Contains(got[0], "10.0.0.2") {
		t.Errorf("web endpoints %v, want 10.0.0.2 only", got)
	}
}

// TestResourceVersionsFollowContent checks that a resource's version
// names its content: the same registry state built with other options
// (an agent restarted with another -xds-warning, say) gives the changed
// resources other versions, so a delta client that reconnects with the
// versions it holds is sent them again; and the same content has the
// same version in another builder (another agent, or this one after a
// restart), so nothing is sent again needlessly.
func TestResourceVersionsFollowContent(t *testing.T) {
	reg := newRegistry()
	put(t, reg, registry.Instance{Service: "web", ID: "1", Address: "10.0.0.1", Port: 80}, registry.Passing)
	put(t, reg, registry.Instance{Service: "web", ID: "2", Address: "10.0.0.2", Port: 80}, registry.Warning)
	healthy, _ := build(t, newBuilder(testOpts), reg)
	again, _ := build(t, newBuilder(testOpts), reg)
	omit := testOpts
	omit.warning = WarningOmit
	omitted, _ := build(t, newBuilder(omit), reg)
	h, a, o := versionsOf(healthy), versionsOf(again), versionsOf(omitted)
	for k := range numKinds {
		if !maps.Equal(h.resources[k], a.resources[k]) {
			t.Errorf("%s: same content, versions %v and %v", kindLabel[k], h.resources[k], a.resources[k])
		}
	}
	if h.resources[kindEndpoints]["web"] == o.resources[kindEndpoints]["web"] {
		t.Errorf("endpoints with and without the warning instance share version %s", o.resources[kindEndpoints]["web"])
	}
	if h.resources[kindCluster]["web"] != o.resources[kindCluster]["web"] {
		t.Error("cluster versions differ for the same cluster")
	}
}
