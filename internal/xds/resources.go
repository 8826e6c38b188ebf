package xds

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rosterhq/roster/internal/registry"
)

// kind is one of the four resource types served; every service has one
// resource of each, all named after the service.
type kind int

const (
	kindCluster kind = iota
	kindEndpoints
	kindListener
	kindRoute
	numKinds
)

// typeURL is each kind's xDS type URL.
var typeURL = [numKinds]string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType}

// responseType is each kind's slot in a cache snapshot.
var responseType = [numKinds]types.ResponseType{types.Cluster, types.Endpoint, types.Listener, types.Route}

// kindLabel names each kind in metrics and logs.
var kindLabel = [numKinds]string{"cluster", "endpoints", "listener", "route"}

// kindOf returns the kind of an xDS type URL, or numKinds for another.
func kindOf(url string) kind {
	for k, u := range typeURL {
		if u == url {
			return kind(k)
		}
	}
	return numKinds
}

// maxEDSPriority is the largest priority an EDS locality may carry (the
// limit in Envoy's endpoint_components.proto).
const maxEDSPriority = 128

// Metadata namespaces on endpoints.
const (
	// lbNamespace is read by Envoy's load balancers: canary, and the
	// subset selectors.
	lbNamespace = "envoy.lb"
	// rosterNamespace carries what the registry knows of the instance.
	rosterNamespace = "roster"
)

// WarningMode says how instances whose health is warning are served.
type WarningMode string

// Warning modes.
const (
	// WarningHealthy serves warning instances as HEALTHY endpoints, as DNS
	// and the HTTP API count them healthy.
	WarningHealthy WarningMode = "healthy"
	// WarningDegraded serves them as DEGRADED: Envoy sends them traffic
	// only when too few hosts are healthy; gRPC leaves them out.
	WarningDegraded WarningMode = "degraded"
	// WarningOmit leaves them out of EDS: passing instances only.
	WarningOmit WarningMode = "omit"
)

// Valid reports whether m is one of the three modes.
func (m WarningMode) Valid() bool {
	return m == WarningHealthy || m == WarningDegraded || m == WarningOmit
}

// buildOptions are the settings resources are built with.
type buildOptions struct {
	warning        WarningMode
	connectTimeout time.Duration
}

// serviceResources builds the four resources of one service from its
// instances (any order, any health). They reference each other by the
// service's name: listener → route → cluster → endpoints.
func serviceResources(name string, instances []*registry.Instance, o buildOptions) [numKinds]types.Resource {
	return [numKinds]types.Resource{
		kindCluster:   cluster(name, o),
		kindEndpoints: loadAssignment(name, instances, o),
		kindListener:  apiListener(name),
		kindRoute:     routeConfig(name),
	}
}

// adsSource points a resource's dependents at the ADS stream it came on.
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// cluster is the service's EDS cluster: round robin, with locality
// weights honoured, so Envoy spreads load across zones as gRPC does.
func cluster(name string, o buildOptions) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		ConnectTimeout:       durationpb.New(o.connectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		CommonLbConfig: &clusterv3.Cluster_CommonLbConfig{
			LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
				LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{},
			},
		},
	}
}

// endpoint is one instance chosen for EDS with its health status.
type endpoint struct {
	in     *registry.Instance
	status corev3.HealthStatus
}

// chooseEndpoints picks the instances EDS serves, ordered by priority and
// ID: not critical (warning per the mode), with an IP address (EDS
// carries no host names), and one per address and port (gRPC refuses an
// assignment that repeats one; the first in that order wins).
func chooseEndpoints(instances []*registry.Instance, mode WarningMode) []endpoint {
	out := make([]endpoint, 0, len(instances))
	for _, in := range instances {
		status := corev3.HealthStatus_HEALTHY
		switch in.Health {
		case registry.Passing:
		case registry.Warning:
			switch mode {
			case WarningOmit:
				continue
			case WarningDegraded:
				status = corev3.HealthStatus_DEGRADED
			}
		default:
			continue
		}
		if _, err := netip.ParseAddr(in.Address); err != nil {
			continue
		}
		out = append(out, endpoint{in: in, status: status})
	}
	slices.SortFunc(out, func(a, b endpoint) int {
		return cmp.Or(cmp.Compare(a.in.Priority, b.in.Priority), cmp.Compare(a.in.ID, b.in.ID))
	})
	seen := make(map[netip.AddrPort]bool, len(out))
	return slices.DeleteFunc(out, func(e endpoint) bool {
		a, _ := netip.ParseAddr(e.in.Address)
		ap := netip.AddrPortFrom(a.Unmap(), uint16(e.in.Port))
		if seen[ap] {
			return true
		}
		seen[ap] = true
		return false
	})
}

// localityKey groups endpoints: one LocalityLbEndpoints per EDS priority,
// region and zone.
type localityKey struct {
	priority uint32
	region   string
	zone     string
}

// loadAssignment is the service's endpoints: grouped into localities by
// region and zone, each locality weighted by the sum of its instances'
// weights, at the dense EDS priority of its instances' priority (the
// lowest roster priority is 0, the next 1, and so on, up to 128).
func loadAssignment(name string, instances []*registry.Instance, o buildOptions) *endpointv3.ClusterLoadAssignment {
	eps := chooseEndpoints(instances, o.warning)
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	groups := map[localityKey]*endpointv3.LocalityLbEndpoints{}
	var keys []localityKey
	dense, last := uint32(0), -1
	for _, e := range eps {
		if last >= 0 && e.in.Priority != last && dense < maxEDSPriority {
			dense++
		}
		last = e.in.Priority
		k := localityKey{priority: dense, region: e.in.Region, zone: e.in.Zone}
		g := groups[k]
		if g == nil {
			g = &endpointv3.LocalityLbEndpoints{
				Locality:            &corev3.Locality{Region: k.region, Zone: k.zone},
				Priority:            k.priority,
				LoadBalancingWeight: wrapperspb.UInt32(0),
			}
			groups[k] = g
			keys = append(keys, k)
		}
		g.LbEndpoints = append(g.LbEndpoints, lbEndpoint(e))
		g.LoadBalancingWeight.Value += uint32(e.in.Weight)
	}
	slices.SortFunc(keys, func(a, b localityKey) int {
		return cmp.Or(cmp.Compare(a.priority, b.priority), cmp.Compare(a.region, b.region), cmp.Compare(a.zone, b.zone))
	})
	for _, k := range keys {
		cla.Endpoints = append(cla.Endpoints, groups[k])
	}
	return cla
}

func lbEndpoint(e endpoint) *endpointv3.LbEndpoint {
	in := e.in
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Protocol:      corev3.SocketAddress_TCP,
				Address:       in.Address,
				PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(in.Port)},
			}}},
		}},
		HealthStatus:        e.status,
		LoadBalancingWeight: wrapperspb.UInt32(uint32(in.Weight)),
		Metadata:            endpointMetadata(in),
	}
}

// endpointMetadata carries canary under envoy.lb (Envoy's canary stats and
// routing read it there) and the instance's ID, revision, tags and
// metadata under roster.
func endpointMetadata(in *registry.Instance) *corev3.Metadata {
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{}}
	if in.Canary {
		md.FilterMetadata[lbNamespace] = &structpb.Struct{Fields: map[string]*structpb.Value{"canary": structpb.NewBoolValue(true)}}
	}
	f := map[string]*structpb.Value{"id": structpb.NewStringValue(in.ID)}
	if in.Revision != "" {
		f["revision"] = structpb.NewStringValue(in.Revision)
	}
	if len(in.Tags) > 0 {
		tags := make([]*structpb.Value, len(in.Tags))
		for i, t := range in.Tags {
			tags[i] = structpb.NewStringValue(t)
		}
		f["tags"] = structpb.NewListValue(&structpb.ListValue{Values: tags})
	}
	if len(in.Meta) > 0 {
		meta := make(map[string]*structpb.Value, len(in.Meta))
		for k, v := range in.Meta {
			meta[k] = structpb.NewStringValue(v)
		}
		f["meta"] = structpb.NewStructValue(&structpb.Struct{Fields: meta})
	}
	md.FilterMetadata[rosterNamespace] = &structpb.Struct{Fields: f}
	return md
}

// apiListener is the listener a proxyless gRPC client asks for when it
// dials xds:///NAME: an API listener whose HTTP connection manager takes
// its routes over RDS (route configuration NAME) and ends in the router.
func apiListener(name string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: name,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
	}
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(hcm)},
	}
}

// routeConfig sends every request, whatever its authority and path, to
// the service's cluster.
func routeConfig(name string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name},
				}},
			}},
		}},
	}
}

// mustAny wraps a message in an Any; marshalling these fixed messages
// cannot fail.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic("xds: " + err.Error())
	}
	return a
}

// version formats a registry index as an xDS version.
func version(idx uint64) string { return strconv.FormatUint(idx, 10) }
