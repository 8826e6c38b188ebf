package xds

import (
	"context"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/rosterhq/roster/internal/registry"
)

// waitTimeout bounds every wait for a response: generous, for a loaded
// machine; the latency itself is measured by BenchmarkPushLatency.
const waitTimeout = 10 * time.Second

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

var testNode = &corev3.Node{Id: "test-node", Cluster: "test"}

// sotwStream is a state-of-the-world ADS stream whose responses arrive on
// a channel.
type sotwStream struct {
	t      testing.TB
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	resp   chan *discoveryv3.DiscoveryResponse
	subs   map[string][]string // type → names last requested
}

func openSotW(t testing.TB, ctx context.Context, addr string) *sotwStream {
	t.Helper()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(dial(t, addr)).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &sotwStream{t: t, stream: stream, resp: make(chan *discoveryv3.DiscoveryResponse, 16), subs: map[string][]string{}}
	go func() {
		defer close(s.resp)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			s.resp <- r
		}
	}()
	return s
}

// request subscribes to names of a type (none: wildcard), acknowledging
// version and nonce.
func (s *sotwStream) request(typ string, names []string, version, nonce string) {
	s.t.Helper()
	s.subs[typ] = names
	err := s.stream.Send(&discoveryv3.DiscoveryRequest{Node: testNode, TypeUrl: typ, ResourceNames: names, VersionInfo: version, ResponseNonce: nonce})
	if err != nil {
		s.t.Fatalf("send %s request: %v", typ, err)
	}
}

// next returns the next response, failing the test after waitTimeout.
func (s *sotwStream) next() *discoveryv3.DiscoveryResponse {
	s.t.Helper()
	select {
	case r, ok := <-s.resp:
		if !ok {
			s.t.Fatal("stream closed")
		}
		return r
	case <-time.After(waitTimeout):
		s.t.Fatalf("no response within %v", waitTimeout)
		return nil
	}
}

// expect returns the next response, which must be of type typ, and
// acknowledges it for names.
func (s *sotwStream) expect(typ string, names []string) *discoveryv3.DiscoveryResponse {
	s.t.Helper()
	r := s.next()
	if r.GetTypeUrl() != typ {
		s.t.Fatalf("response of type %s, want %s", r.GetTypeUrl(), typ)
	}
	s.request(typ, names, r.GetVersionInfo(), r.GetNonce())
	return r
}

// until acknowledges responses of other types until one of type typ
// arrives, and returns it (acknowledged).
func (s *sotwStream) until(typ string) *discoveryv3.DiscoveryResponse {
	s.t.Helper()
	for {
		r := s.next()
		s.request(r.GetTypeUrl(), s.subs[r.GetTypeUrl()], r.GetVersionInfo(), r.GetNonce())
		if r.GetTypeUrl() == typ {
			return r
		}
	}
}

// unpack decodes a response's resources of type T, by name.
func unpack[T proto.Message](t testing.TB, r *discoveryv3.DiscoveryResponse, newT func() T) map[string]T {
	t.Helper()
	out := map[string]T{}
	for _, a := range r.GetResources() {
		m := newT()
		if err := a.UnmarshalTo(m); err != nil {
			t.Fatalf("unmarshal %s: %v", a.GetTypeUrl(), err)
		}
		out[resourceName(m)] = m
	}
	return out
}

func resourceName(m proto.Message) string {
	if n, ok := m.(interface{ GetName() string }); ok {
		return n.GetName()
	}
	return m.(*endpointv3.ClusterLoadAssignment).GetClusterName()
}

func newCLA() *endpointv3.ClusterLoadAssignment { return &endpointv3.ClusterLoadAssignment{} }

func TestStateOfTheWorldADS(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	reg := newRegistry()
	put(t, reg, registry.Instance{Service: "web", ID: "web-1", Address: "10.0.0.1", Port: 80}, registry.Passing)
	put(t, reg, registry.Instance{Service: "api", ID: "api-1", Address: "10.0.1.1", Port: 80}, registry.Passing)
	_, addr := startServer(t, reg)
	s := openSotW(t, ctx, addr)

	// CDS as Envoy asks: wildcard, the full state.
	cds, eds, lds, rds := typeURL[kindCluster], typeURL[kindEndpoints], typeURL[kindListener], typeURL[kindRoute]
	s.request(cds, nil, "", "")
	r := s.expect(cds, nil)
	if got := resourceNames(r); !slices.Equal(got, []string{"api", "web"}) {
		t.Fatalf("clusters %v", got)
	}
	// The rest as gRPC asks: by name.
	s.request(lds, []string{"web"}, "", "")
	if got := resourceNames(s.expect(lds, []string{"web"})); !slices.Equal(got, []string{"web"}) {
		t.Fatalf("listeners %v", got)
	}
	s.request(rds, []string{"web"}, "", "")
	if got := resourceNames(s.expect(rds, []string{"web"})); !slices.Equal(got, []string{"web"}) {
		t.Fatalf("routes %v", got)
	}
	s.request(eds, []string{"web"}, "", "")
	r = s.expect(eds, []string{"web"})
	if got := describe(unpack(t, r, newCLA)["web"]); len(got) != 1 {
		t.Fatalf("web endpoints %v", got)
	}

	// A new instance is pushed as EDS only: the cluster did not change.
	put(t, reg, registry.Instance{Service: "web", ID: "web-2", Address: "10.0.0.2", Port: 80}, registry.Passing)
	r = s.expect(eds, []string{"web"})
	if got := describe(unpack(t, r, newCLA)["web"]); len(got) != 2 {
		t.Fatalf("web endpoints after a registration: %v", got)
	}
	if want := []string{"web"}; !slices.Equal(resourceNames(r), want) {
		t.Errorf("EDS response named %v, want only %v", resourceNames(r), want)
	}

	// Turning critical leaves the endpoint out.
	put(t, reg, registry.Instance{Service: "web", ID: "web-1", Address: "10.0.0.1", Port: 80}, registry.Critical)
	for {
		r = s.expect(eds, []string{"web"})
		if got := describe(unpack(t, r, newCLA)["web"]); len(got) == 1 {
			break
		}
	}

	// A removed service leaves CDS (the full state) and EDS.
	remove(t, reg, "api", "api-1")
	r = s.until(cds)
	if got := resourceNames(r); !slices.Equal(got, []string{"web"}) {
		t.Fatalf("clusters after removing api: %v", got)
	}
}

func resourceNames(r *discoveryv3.DiscoveryResponse) []string {
	var out []string
	for _, a := range r.GetResources() {
		m, err := a.UnmarshalNew()
		if err != nil {
			continue
		}
		out = append(out, resourceName(m))
	}
	slices.Sort(out)
	return out
}

// deltaStream is a delta ADS stream whose responses arrive on a channel.
type deltaStream struct {
	t      testing.TB
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	resp   chan *discoveryv3.DeltaDiscoveryResponse
}

func openDelta(t testing.TB, ctx context.Context, addr string) *deltaStream {
	t.Helper()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(dial(t, addr)).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &deltaStream{t: t, stream: stream, resp: make(chan *discoveryv3.DeltaDiscoveryResponse, 16)}
	go func() {
		defer close(s.resp)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			s.resp <- r
		}
	}()
	return s
}

func (s *deltaStream) send(req *discoveryv3.DeltaDiscoveryRequest) {
	s.t.Helper()
	req.Node = testNode
	if err := s.stream.Send(req); err != nil {
		s.t.Fatalf("send delta %s request: %v", req.GetTypeUrl(), err)
	}
}

// expect returns the next response, which must be of type typ, and
// acknowledges it.
func (s *deltaStream) expect(typ string) *discoveryv3.DeltaDiscoveryResponse {
	s.t.Helper()
	var r *discoveryv3.DeltaDiscoveryResponse
	select {
	case resp, ok := <-s.resp:
		if !ok {
			s.t.Fatal("stream closed")
		}
		r = resp
	case <-time.After(waitTimeout):
		s.t.Fatalf("no delta response within %v", waitTimeout)
	}
	if r.GetTypeUrl() != typ {
		s.t.Fatalf("delta response of type %s, want %s", r.GetTypeUrl(), typ)
	}
	s.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typ, ResponseNonce: r.GetNonce()})
	return r
}

func deltaNames(r *discoveryv3.DeltaDiscoveryResponse) []string {
	var out []string
	for _, res := range r.GetResources() {
		out = append(out, res.GetName())
	}
	slices.Sort(out)
	return out
}

func TestDeltaADS(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	reg := newRegistry()
	put(t, reg, registry.Instance{Service: "web", ID: "web-1", Address: "10.0.0.1", Port: 80}, registry.Passing)
	put(t, reg, registry.Instance{Service: "api", ID: "api-1", Address: "10.0.1.1", Port: 80}, registry.Passing)
	put(t, reg, registry.Instance{Service: "db", ID: "db-1", Address: "10.0.2.1", Port: 5432}, registry.Passing)
	_, addr := startServer(t, reg)
	s := openDelta(t, ctx, addr)
	cds, eds := typeURL[kindCluster], typeURL[kindEndpoints]

	// Wildcard CDS: every cluster, each with its version.
	s.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: cds})
	r := s.expect(cds)
	if got := deltaNames(r); !slices.Equal(got, []string{"api", "db", "web"}) {
		t.Fatalf("clusters %v", got)
	}
	for _, res := range r.GetResources() {
		if res.GetVersion() == "" {
			t.Errorf("cluster %s without a version", res.GetName())
		}
	}

	// EDS by name.
	s.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: eds, ResourceNamesSubscribe: []string{"web", "api"}})
	if got := deltaNames(s.expect(eds)); !slices.Equal(got, []string{"api", "web"}) {
		t.Fatalf("endpoints %v", got)
	}

	// A change to web sends web alone; db, not subscribed, is not sent
	// when it changes.
	put(t, reg, registry.Instance{Service: "db", ID: "db-2", Address: "10.0.2.2", Port: 5432}, registry.Passing)
	put(t, reg, registry.Instance{Service: "web", ID: "web-2", Address: "10.0.0.2", Port: 80}, registry.Passing)
	r = s.expect(eds)
	if got := deltaNames(r); !slices.Equal(got, []string{"web"}) {
		t.Fatalf("endpoints after a change to web: %v", got)
	}
	cla := &endpointv3.ClusterLoadAssignment{}
	if err := r.GetResources()[0].GetResource().UnmarshalTo(cla); err != nil {
		t.Fatal(err)
	}
	if got := describe(cla); len(got) != 2 {
		t.Errorf("web endpoints %v", got)
	}

	// Removing api's last instance removes its cluster and endpoints.
	remove(t, reg, "api", "api-1")
	got := map[string][]string{}
	for len(got) < 2 {
		r := s.next()
		got[r.GetTypeUrl()] = r.GetRemovedResources()
		s.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()})
	}
	for _, typ := range []string{cds, eds} {
		if !slices.Equal(got[typ], []string{"api"}) {
			t.Errorf("%s removed %v, want [api]", typ, got[typ])
		}
	}
}

func (s *deltaStream) next() *discoveryv3.DeltaDiscoveryResponse {
	s.t.Helper()
	select {
	case r, ok := <-s.resp:
		if !ok {
			s.t.Fatal("stream closed")
		}
		return r
	case <-time.After(waitTimeout):
		s.t.Fatalf("no delta response within %v", waitTimeout)
		return nil
	}
}

// TestPushReachesStream checks that a registration reaches an open
// stream, with a generous bound; BenchmarkPushLatency measures it.
func TestPushReachesStream(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	reg := newRegistry()
	put(t, reg, registry.Instance{Service: "web", ID: "web-1", Address: "10.0.0.1", Port: 80}, registry.Passing)
	_, addr := startServer(t, reg)
	s := openSotW(t, ctx, addr)
	eds := typeURL[kindEndpoints]
	s.request(eds, []string{"web"}, "", "")
	s.expect(eds, []string{"web"})

	start := time.Now()
	put(t, reg, registry.Instance{Service: "web", ID: "web-1", Address: "10.0.0.1", Port: 80, Weight: 42}, registry.Passing)
	r := s.expect(eds, []string{"web"})
	took := time.Since(start)
	if got := describe(unpack(t, r, newCLA)["web"]); !slices.Equal(got, []string{"p0 /(42) 10.0.0.1:80 w42 HEALTHY"}) {
		t.Fatalf("web endpoints %v", got)
	}
	t.Logf("registration to response on the stream: %v", took)
}

// TestNotReadyHoldsRequests checks that nothing is answered before the
// registry is ready, and that the first answer is the full state.
func TestNotReadyHoldsRequests(t *testing.T) {
	ctx := ctxFor(t, 30*time.Second)
	reg := &gatedRegistry{Service: newRegistry(), ready: make(chan struct{})}
	put(t, reg.Service, registry.Instance{Service: "web", ID: "web-1", Address: "10.0.0.1", Port: 80}, registry.Passing)
	_, addr := startServer(t, reg)
	s := openSotW(t, ctx, addr)
	cds := typeURL[kindCluster]
	s.request(cds, nil, "", "")
	select {
	case r := <-s.resp:
		t.Fatalf("answered before ready: %v", r)
	case <-time.After(200 * time.Millisecond):
	}
	close(reg.ready)
	if got := resourceNames(s.expect(cds, nil)); !slices.Equal(got, []string{"web"}) {
		t.Fatalf("clusters %v", got)
	}
}

// gatedRegistry is not ready until ready is closed.
type gatedRegistry struct {
	*registry.Service
	ready chan struct{}
}

func (g *gatedRegistry) Ready() bool {
	select {
	case <-g.ready:
		return true
	default:
		return false
	}
}
