package xds

import (
	"fmt"
	"slices"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/rosterhq/roster/internal/registry"
)

var testOpts = buildOptions{warning: WarningHealthy, connectTimeout: 5 * time.Second}

// inst is a shorthand instance of service "pay".
func inst(id, addr string, port int, f ...func(*registry.Instance)) *registry.Instance {
	in := &registry.Instance{Service: "pay", ID: id, Address: addr, Port: port, Weight: 1, Health: registry.Passing}
	for _, fn := range f {
		fn(in)
	}
	return in
}

func weight(w int) func(*registry.Instance) { return func(in *registry.Instance) { in.Weight = w } }
func prio(p int) func(*registry.Instance)   { return func(in *registry.Instance) { in.Priority = p } }
func health(h registry.Health) func(*registry.Instance) {
	return func(in *registry.Instance) { in.Health = h }
}
func zone(region, zone string) func(*registry.Instance) {
	return func(in *registry.Instance) { in.Region, in.Zone = region, zone }
}
func canary(in *registry.Instance) { in.Canary = true }

// describe writes a load assignment as one line per endpoint:
// "p<priority> <region>/<zone>(<locality weight>) <addr:port> w<weight> <status> [canary]".
func describe(cla *endpointv3.ClusterLoadAssignment) []string {
	var out []string
	for _, l := range cla.GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			line := fmt.Sprintf("p%d %s/%s(%d) %s:%d w%d %s", l.GetPriority(), l.GetLocality().GetRegion(), l.GetLocality().GetZone(),
				l.GetLoadBalancingWeight().GetValue(), sa.GetAddress(), sa.GetPortValue(), e.GetLoadBalancingWeight().GetValue(), e.GetHealthStatus())
			if e.GetMetadata().GetFilterMetadata()[lbNamespace].GetFields()["canary"].GetBoolValue() {
				line += " canary"
			}
			out = append(out, line)
		}
	}
	return out
}

func TestLoadAssignment(t *testing.T) {
	tests := []struct {
		name      string
		warning   WarningMode
		instances []*registry.Instance
		want      []string
	}{
		{name: "empty", instances: nil, want: nil},
		{
			name: "weights and one locality",
			instances: []*registry.Instance{
				inst("b", "10.0.0.2", 80, weight(3)),
				inst("a", "10.0.0.1", 80, weight(10)),
			},
			want: []string{
				"p0 /(13) 10.0.0.1:80 w10 HEALTHY",
				"p0 /(13) 10.0.0.2:80 w3 HEALTHY",
			},
		},
		{
			name: "critical left out; warning served healthy by default",
			instances: []*registry.Instance{
				inst("a", "10.0.0.1", 80, health(registry.Critical)),
				inst("b", "10.0.0.2", 80, health(registry.Warning)),
				inst("c", "10.0.0.3", 80),
			},
			want: []string{
				"p0 /(2) 10.0.0.2:80 w1 HEALTHY",
				"p0 /(2) 10.0.0.3:80 w1 HEALTHY",
			},
		},
		{
			name:    "warning degraded",
			warning: WarningDegraded,
			instances: []*registry.Instance{
				inst("b", "10.0.0.2", 80, health(registry.Warning)),
				inst("c", "10.0.0.3", 80),
			},
			want: []string{
				"p0 /(2) 10.0.0.2:80 w1 DEGRADED",
				"p0 /(2) 10.0.0.3:80 w1 HEALTHY",
			},
		},
		{
			name:    "warning omitted",
			warning: WarningOmit,
			instances: []*registry.Instance{
				inst("b", "10.0.0.2", 80, health(registry.Warning)),
				inst("c", "10.0.0.3", 80),
			},
			want: []string{"p0 /(1) 10.0.0.3:80 w1 HEALTHY"},
		},
		{
			name: "localities from region and zone, sorted",
			instances: []*registry.Instance{
				inst("a", "10.0.0.1", 80, zone("us", "us-1a"), weight(2)),
				inst("b", "10.0.0.2", 80, zone("eu", "eu-1b")),
				inst("c", "10.0.0.3", 80, zone("eu", "eu-1a"), weight(5)),
				inst("d", "10.0.0.4", 80, zone("eu", "eu-1a"), weight(4)),
				inst("e", "10.0.0.5", 80),
			},
			want: []string{
				"p0 /(1) 10.0.0.5:80 w1 HEALTHY",
				"p0 eu/eu-1a(9) 10.0.0.3:80 w5 HEALTHY",
				"p0 eu/eu-1a(9) 10.0.0.4:80 w4 HEALTHY",
				"p0 eu/eu-1b(1) 10.0.0.2:80 w1 HEALTHY",
				"p0 us/us-1a(2) 10.0.0.1:80 w2 HEALTHY",
			},
		},
		{
			name: "priorities made dense in order",
			instances: []*registry.Instance{
				inst("a", "10.0.0.1", 80, prio(500)),
				inst("b", "10.0.0.2", 80, prio(10)),
				inst("c", "10.0.0.3", 80, prio(10), zone("eu", "eu-1a")),
				inst("d", "10.0.0.4", 80, prio(65535)),
			},
			want: []string{
				"p0 /(1) 10.0.0.2:80 w1 HEALTHY",
				"p0 eu/eu-1a(1) 10.0.0.3:80 w1 HEALTHY",
				"p1 /(1) 10.0.0.1:80 w1 HEALTHY",
				"p2 /(1) 10.0.0.4:80 w1 HEALTHY",
			},
		},
		{
			name: "a priority with only critical instances leaves no gap",
			instances: []*registry.Instance{
				inst("a", "10.0.0.1", 80, prio(1)),
				inst("b", "10.0.0.2", 80, prio(2), health(registry.Critical)),
				inst("c", "10.0.0.3", 80, prio(3)),
			},
			want: []string{
				"p0 /(1) 10.0.0.1:80 w1 HEALTHY",
				"p1 /(1) 10.0.0.3:80 w1 HEALTHY",
			},
		},
		{
			name: "host names left out, IPv6 kept",
			instances: []*registry.Instance{
				inst("a", "db.example.com", 80),
				inst("b", "2001:db8::1", 443),
			},
			want: []string{"p0 /(1) 2001:db8::1:443 w1 HEALTHY"},
		},
		{
			name: "one endpoint per address: the better priority, then the lower ID",
			instances: []*registry.Instance{
				inst("z", "10.0.0.1", 80, prio(0), weight(7)),
				inst("a", "10.0.0.1", 80, prio(1), weight(9)),
				inst("m", "10.0.0.1", 80, prio(0), weight(8)),
				inst("n", "10.0.0.1", 81),
			},
			want: []string{
				"p0 /(9) 10.0.0.1:80 w8 HEALTHY",
				"p0 /(9) 10.0.0.1:81 w1 HEALTHY",
			},
		},
		{
			name:      "canary in envoy.lb metadata",
			instances: []*registry.Instance{inst("a", "10.0.0.1", 80, canary), inst("b", "10.0.0.2", 80)},
			want: []string{
				"p0 /(2) 10.0.0.1:80 w1 HEALTHY canary",
				"p0 /(2) 10.0.0.2:80 w1 HEALTHY",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testOpts
			if tc.warning != "" {
				o.warning = tc.warning
			}
			cla := loadAssignment("pay", tc.instances, o)
			if cla.GetClusterName() != "pay" {
				t.Errorf("cluster name %q", cla.GetClusterName())
			}
			if diff := cmp.Diff(tc.want, describe(cla)); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
			if err := cla.ValidateAll(); err != nil {
				t.Errorf("Envoy's validation: %v", err)
			}
		})
	}
}

func TestLoadAssignmentClampsPriority(t *testing.T) {
	var ins []*registry.Instance
	for i := range 200 {
		ins = append(ins, inst(fmt.Sprint(i), fmt.Sprintf("10.0.%d.%d", i/250, i%250), 80, prio(i)))
	}
	cla := loadAssignment("pay", ins, testOpts)
	if err := cla.ValidateAll(); err != nil {
		t.Fatalf("Envoy's validation: %v", err)
	}
	ls := cla.GetEndpoints()
	if len(ls) != maxEDSPriority+1 {
		t.Fatalf("%d localities, want %d", len(ls), maxEDSPriority+1)
	}
	last := ls[len(ls)-1]
	if last.GetPriority() != maxEDSPriority || len(last.GetLbEndpoints()) != 200-maxEDSPriority {
		t.Errorf("last locality: priority %d with %d endpoints", last.GetPriority(), len(last.GetLbEndpoints()))
	}
}

func TestEndpointMetadata(t *testing.T) {
	in := inst("pay-1", "10.0.0.1", 80, func(in *registry.Instance) {
		in.Tags, in.Meta, in.Revision = []string{"v2", "blue"}, map[string]string{"version": "v2"}, "abc123"
	})
	md := endpointMetadata(in).GetFilterMetadata()
	if _, ok := md[lbNamespace]; ok {
		t.Errorf("envoy.lb set for a non-canary: %v", md[lbNamespace])
	}
	r := md[rosterNamespace].AsMap()
	want := map[string]any{"id": "pay-1", "revision": "abc123", "tags": []any{"v2", "blue"}, "meta": map[string]any{"version": "v2"}}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("roster metadata (-want +got):\n%s", diff)
	}
}

// TestServiceResources checks the four resources of a service against
// Envoy's validation rules and what a gRPC client needs: each references
// the next by the service's name over ADS.
func TestServiceResources(t *testing.T) {
	res := serviceResources("payment", []*registry.Instance{inst("a", "10.0.0.1", 80)}, testOpts)
	for k, r := range res {
		v, ok := r.(interface{ ValidateAll() error })
		if !ok {
			t.Fatalf("%s: %T has no ValidateAll", kindLabel[k], r)
		}
		if err := v.ValidateAll(); err != nil {
			t.Errorf("%s: Envoy's validation: %v", kindLabel[k], err)
		}
	}

	c := res[kindCluster].(*clusterv3.Cluster)
	if c.GetName() != "payment" || c.GetType() != clusterv3.Cluster_EDS || c.GetEdsClusterConfig().GetServiceName() != "payment" ||
		c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil || c.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN ||
		c.GetConnectTimeout().AsDuration() != 5*time.Second {
		t.Errorf("cluster: %v", c)
	}

	l := res[kindListener].(*listenerv3.Listener)
	hcm := &hcmv3.HttpConnectionManager{}
	if err := l.GetApiListener().GetApiListener().UnmarshalTo(hcm); err != nil {
		t.Fatalf("listener: api_listener: %v", err)
	}
	if l.GetName() != "payment" || hcm.GetRds().GetRouteConfigName() != "payment" || hcm.GetRds().GetConfigSource().GetAds() == nil {
		t.Errorf("listener: %v", hcm)
	}
	filters := hcm.GetHttpFilters()
	if len(filters) != 1 || filters[0].GetName() != "envoy.filters.http.router" ||
		filters[0].GetTypedConfig().GetTypeUrl() != "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" {
		t.Errorf("listener: http filters %v: the router must be last", filters)
	}

	rc := res[kindRoute].(*routev3.RouteConfiguration)
	vhs := rc.GetVirtualHosts()
	if rc.GetName() != "payment" || len(vhs) != 1 || !slices.Equal(vhs[0].GetDomains(), []string{"*"}) || len(vhs[0].GetRoutes()) != 1 ||
		vhs[0].GetRoutes()[0].GetMatch().GetPrefix() != "/" || vhs[0].GetRoutes()[0].GetRoute().GetCluster() != "payment" {
		t.Errorf("route: %v", rc)
	}
}

func TestWarningModeValid(t *testing.T) {
	for _, m := range []WarningMode{WarningHealthy, WarningDegraded, WarningOmit} {
		if !m.Valid() {
			t.Errorf("%q not valid", m)
		}
	}
	for _, m := range []WarningMode{"", "HEALTHY", "drop"} {
		if m.Valid() {
			t.Errorf("%q valid", m)
		}
	}
}
