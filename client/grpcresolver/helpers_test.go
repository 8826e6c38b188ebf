package grpcresolver_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/grpcresolver"
	"github.com/rosterhq/roster/client/internal/testagent"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) {
	os.Exit(testagent.RunMain(m, client.AddressEnv))
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	testagent.Eventually(t, timeout, cond)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newClient(t testing.TB, a *testagent.Agent) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Address: a.Addr, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fastResolver follows changes and reconnects quickly, for tests.
func fastResolver(t testing.TB, c *client.Client) *client.Resolver {
	t.Helper()
	r := client.NewResolver(c, client.ResolverConfig{
		MinInterval: 10 * time.Millisecond, Jitter: 10 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Wait: 5 * time.Second, Logger: testLogger(t),
	})
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// backend is a real gRPC server (the standard health service) on a
// loopback port that counts the RPCs it serves and can be told to fail
// them.
type backend struct {
	name   string
	port   int
	srv    *grpc.Server
	health *health.Server
	calls  atomic.Int64
	fail   atomic.Bool  // answer Unavailable
	hold   atomic.Value // chan struct{}: calls wait for it to close
}

func newBackend(t testing.TB, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, health: health.NewServer()}
	b.port = ln.Addr().(*net.TCPAddr).Port
	b.srv = grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if info.FullMethod == healthpb.Health_Check_FullMethodName && isProbe(ctx) {
			return h(ctx, req) // the agent's health check: not counted
		}
		b.calls.Add(1)
		if ch, _ := b.hold.Load().(chan struct{}); ch != nil {
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if b.fail.Load() {
			return nil, status.Error(codes.Unavailable, b.name+" failing")
		}
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(b.srv, b.health)
	go b.srv.Serve(ln)
	t.Cleanup(b.srv.Stop)
	return b
}

// isProbe tells the agent's health checks from the test's calls: the test
// calls carry a "caller: test" metadata pair.
func isProbe(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get("caller")) == 0
}

// instance is b's registration under service, with a TTL lease.
func (b *backend) instance(service string) client.Instance {
	return client.Instance{Service: service, ID: b.name, Address: "127.0.0.1", Port: b.port, TTL: client.Duration(10 * time.Second)}
}

// fleet starts n backends and registers them under service.
func fleet(t testing.TB, c *client.Client, service string, n int, edit func(i int, in *client.Instance)) ([]*backend, []*client.Registration) {
	t.Helper()
	var bs []*backend
	var regs []*client.Registration
	for i := range n {
		b := newBackend(t, fmt.Sprintf("%s-%d", service, i))
		in := b.instance(service)
		if edit != nil {
			edit(i, &in)
		}
		reg, err := c.Register(ctxT(t), in)
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
		regs = append(regs, reg)
	}
	return bs, regs
}

// dial connects to target through a builder over r.
func dial(t testing.TB, r *client.Resolver, target string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append(opts, grpc.WithResolvers(grpcresolver.NewBuilder(r)), grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// call makes one RPC (the health check) with a 5s deadline.
func call(ctx context.Context, conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(outgoingTest(ctx), 5*time.Second)
	defer cancel()
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// calls makes n RPCs and returns how many each backend served during them
// and the first error.
func calls(ctx context.Context, conn *grpc.ClientConn, bs []*backend, n int) ([]int64, error) {
	before := make([]int64, len(bs))
	for i, b := range bs {
		before[i] = b.calls.Load()
	}
	var first error
	for range n {
		if err := call(ctx, conn); err != nil && first == nil {
			first = err
		}
	}
	got := make([]int64, len(bs))
	for i, b := range bs {
		got[i] = b.calls.Load() - before[i]
	}
	return got, first
}

// warm waits until every backend of bs has served a call through conn
// (every connection is ready).
func warm(t testing.TB, conn *grpc.ClientConn, bs []*backend) {
	t.Helper()
	seen := make([]bool, len(bs))
	eventually(t, 15*time.Second, func() (bool, string) {
		got, err := calls(ctxT(t), conn, bs, 10)
		all := true
		for i := range bs {
			seen[i] = seen[i] || got[i] > 0
			all = all && seen[i]
		}
		return all && err == nil, fmt.Sprintf("served: %v, err %v", seen, err)
	})
}

// within reports whether got is within tol (a fraction) of want.
func within(got int64, want, tol float64) bool {
	d := float64(got) - want
	return d >= -tol*want && d <= tol*want
}

// outgoingTest marks the test's calls (see isProbe).
func outgoingTest(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "caller", "test")
}
