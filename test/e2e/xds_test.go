package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/xds"

	"github.com/rosterhq/roster/internal/testutil"
)

// xdsBackend is a real gRPC server on a loopback port serving the standard
// health service, which the test calls as its "payment" API.
type xdsBackend struct {
	name   string
	addr   string
	health *health.Server
}

func startXDSBackend(t *testing.T, name string) *xdsBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return &xdsBackend{name: name, addr: ln.Addr().String(), health: hs}
}

// registerXDSBackend registers b as an instance of payment with a gRPC
// health check run by the agent every 200 ms.
func registerXDSBackend(t *testing.T, a *testutil.Agent, b *xdsBackend) {
	t.Helper()
	host, port, _ := net.SplitHostPort(b.addr)
	var p int
	fmt.Sscan(port, &p)
	register(t, a, "payment", b.name, map[string]any{
		"address": host, "port": p,
		"checks": []map[string]any{{
			"id": "grpc", "type": "grpc", "target": b.addr,
			"interval": "200ms", "timeout": "150ms", "failures_before_critical": 1,
		}},
	})
}

// xdsClient dials xds:///payment with gRPC's own xDS client, bootstrapped
// to the agent's xDS server.
func xdsClient(t *testing.T, a *testutil.Agent) healthpb.HealthClient {
	t.Helper()
	if a.XDSAddr == "" {
		t.Fatal("the agent logged no xds address")
	}
	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "e2e-payment-client", "locality": {"zone": "z1"}}
	}`, a.XDSAddr)
	rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatalf("xds resolver: %v", err)
	}
	conn, err := grpc.NewClient("xds:///payment", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(rb))
	if err != nil {
		t.Fatalf("dial xds:///payment: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// xdsSpread makes n calls and counts them by the backend that answered.
func xdsSpread(ctx context.Context, c healthpb.HealthClient, byAddr map[string]string, n int) (map[string]int, error) {
	got := map[string]int{}
	for range n {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var p peer.Peer
		_, err := c.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true))
		cancel()
		if err != nil {
			return got, err
		}
		name := byAddr[p.Addr.String()]
		if name == "" {
			name = "unknown " + p.Addr.String()
		}
		got[name]++
	}
	return got, nil
}

func countsString(m map[string]int) string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestXDSGRPCClient: gRPC's xDS client, bootstrapped to the agent, calls
// real gRPC servers registered in roster, spreads its calls across them,
// and stops calling one when it is deregistered, then another when its
// health check turns critical.
func TestXDSGRPCClient(t *testing.T) {
	ctx := bound(t)
	a := startAgent(t, testutil.AgentOptions{Dev: true})
	backends := []*xdsBackend{startXDSBackend(t, "b1"), startXDSBackend(t, "b2"), startXDSBackend(t, "b3")}
	byAddr := map[string]string{}
	for _, b := range backends {
		byAddr[b.addr] = b.name
		registerXDSBackend(t, a, b)
	}
	client := xdsClient(t, a)

	// expect polls, 30 calls at a time, until they reach exactly the
	// backends in want, each at least 5 times (round robin gives 10).
	expect := func(what string, want ...string) {
		t.Helper()
		testutil.WaitFor(t, ctx, what, func() bool {
			got, err := xdsSpread(ctx, client, byAddr, 30)
			if err != nil {
				t.Logf("calls: %v", err)
				return false
			}
			if len(got) != len(want) {
				t.Logf("calls reached %s", countsString(got))
				return false
			}
			for _, w := range want {
				if got[w] < 5 {
					t.Logf("calls reached %s", countsString(got))
					return false
				}
			}
			return true
		})
	}
	expect("calls spread over b1, b2 and b3", "b1", "b2", "b3")

	deregister(t, a, "payment", "b1")
	expect("calls spread over b2 and b3 after b1 is deregistered", "b2", "b3")

	backends[1].health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		_, in := getInstance(t, a, "payment", "b2")
		return in.Health == "critical", "b2 is " + in.Health
	})
	expect("calls reach only b3 after b2 turns critical", "b3")

	// The agent's metrics count the client's stream and the pushes.
	status, _, body := testutil.Do(t, "GET", a.URL+"/metrics", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	for _, want := range []string{`roster_xds_streams{protocol="sotw"} 1`, `roster_xds_responses_total{protocol="sotw",type="endpoints"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestXDSOff: with -xds-addr off the agent serves no xDS and logs no
// address.
func TestXDSOff(t *testing.T) {
	a := startAgent(t, testutil.AgentOptions{Dev: true, Args: []string{"-xds-addr", "off"}})
	if a.XDSAddr != "" {
		t.Errorf("xds listening on %s with -xds-addr off", a.XDSAddr)
	}
	if strings.Contains(a.Logs(), "xds listening") {
		t.Error("logs say xds is listening")
	}
}
