package grpcresolver_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/grpcresolver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The example runs against a real agent that TestMain starts and names in
// $ROSTER_HTTP_ADDR, which an empty client.Config.Address reads.

func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(client.Config{}) // $ROSTER_HTTP_ADDR or 127.0.0.1:8500
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// A gRPC server (here, gRPC's standard health service) registers in
	// roster under the name callers dial.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	defer srv.Stop()
	reg, err := c.Register(ctx, client.Instance{
		Service: "payment-service", ID: "payment-1",
		Address: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port,
		Weight: 2, TTL: client.Duration(10 * time.Second),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Deregister(ctx)

	// A caller dials the service by name. The resolver's cache (one per
	// process) follows the registry; the roster balancer picks an instance
	// for every RPC with the SDK's policies.
	r := client.NewResolver(c, client.ResolverConfig{})
	defer r.Close()
	conn, err := grpc.NewClient("roster:///payment-service?balancer=weighted_random",
		grpc.WithResolvers(grpcresolver.NewBuilder(r)),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetStatus())
	// Output: SERVING
}
