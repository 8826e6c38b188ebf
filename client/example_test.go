package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/balance"
)

// The examples run against a real agent that TestMain starts and names in
// $ROSTER_HTTP_ADDR, which an empty Config.Address reads.

// serve starts an HTTP server on a loopback port that answers name, and
// returns its port.
func serve(name string) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
	return ln.Addr().(*net.TCPAddr).Port
}

func Example() {
	ctx := context.Background()
	c, err := client.New(client.Config{}) // $ROSTER_HTTP_ADDR or 127.0.0.1:8500
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// A service registers; its lease is kept alive in the background.
	reg, err := c.Register(ctx, client.Instance{
		Service: "payment-service", ID: "payment-1",
		Address: "127.0.0.1", Port: serve("payment-1"),
		TTL: client.Duration(10 * time.Second),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()

	// A caller sends plain HTTP requests to the service by name.
	r := client.NewResolver(c, client.ResolverConfig{})
	defer r.Close()
	hc := &http.Client{Transport: &client.Transport{Resolver: r, Match: client.MatchHosts("payment-service")}}
	resp, err := hc.Get("http://payment-service/charge")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: payment-1
}

func ExampleClient_Register() {
	ctx := context.Background()
	c, err := client.New(client.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	reg, err := c.Register(ctx, client.Instance{
		Service: "inventory", ID: "inventory-1", Address: "127.0.0.1", Port: 8080,
		Meta: map[string]string{"version": "v2"},
		TTL:  client.Duration(10 * time.Second), DeregisterAfter: client.Duration(time.Minute),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("registered", reg.Key().ID)
	if err := reg.Deregister(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("deregistered")
	// Output:
	// registered inventory-1
	// deregistered
}

func ExampleResolver_Target() {
	ctx := context.Background()
	c, err := client.New(client.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for i, version := range []string{"v1", "v1", "v2"} {
		_, err := c.Put(ctx, &client.Instance{Service: "search", ID: "search-" + strconv.Itoa(i),
			Address: "10.0.0." + strconv.Itoa(i+1), Port: 80, Meta: map[string]string{"version": version}})
		if err != nil {
			log.Fatal(err)
		}
	}
	r := client.NewResolver(c, client.ResolverConfig{})
	defer r.Close()
	// 90% of users on v1, 10% on v2; a user stays on one side.
	t, err := r.Target(ctx, "search", client.Filter{
		Balancer: balance.RingHash(),
		Subsets: []client.Subset{
			{Name: "stable", Meta: map[string]string{"version": "v1"}, Weight: 90},
			{Name: "canary", Meta: map[string]string{"version": "v2"}, Weight: 10},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	perVersion := map[string]int{}
	for i := range 1000 {
		e, err := t.Pick("user-" + strconv.Itoa(i))
		if err != nil {
			log.Fatal(err)
		}
		perVersion[e.Meta["version"]]++
	}
	fmt.Println("v2 share within 7-13%:", perVersion["v2"] >= 70 && perVersion["v2"] <= 130)
	// Output: v2 share within 7-13%: true
}

func ExampleResolver_Pick() {
	ctx := context.Background()
	c, err := client.New(client.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(ctx, &client.Instance{Service: "cache", ID: "cache-1", Address: "10.0.0.7", Port: 6379}); err != nil {
		log.Fatal(err)
	}
	r := client.NewResolver(c, client.ResolverConfig{})
	defer r.Close()
	// The first pick fetches and starts a watch; later picks read memory.
	e, err := r.Pick(ctx, "cache", "")
	if err != nil {
		log.Fatal(err)
	}
	e.Begin()
	// ... use e.Addr ...
	e.End(true) // the outcome feeds outlier detection
	fmt.Println(e.Addr)
	// Output: 10.0.0.7:6379
}

func ExampleSRVDialer() {
	// Hosts under .service.roster resolve through SRV records of the DNS
	// server at 127.0.0.1:8600 (any DNS-SD server works).
	d := &client.SRVDialer{Hosts: regexp.MustCompile(`\.service\.roster\.?$`), Server: "127.0.0.1:8600"}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	_ = hc // hc.Get("http://web.service.roster/")
}

func ExampleServeGracefully() {
	ctx, cancel := context.WithCancel(context.Background())
	c, err := client.New(client.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	reg, err := c.Register(ctx, client.Instance{Service: "orders", ID: "orders-1", Address: "127.0.0.1",
		Port: ln.Addr().(*net.TCPAddr).Port, TTL: client.Duration(10 * time.Second)})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	cancel() // here: stop at once; in a program, SIGTERM or SIGINT does it
	err = client.ServeGracefully(ctx, srv, ln, []*client.Registration{reg}, client.ShutdownOptions{DrainTimeout: 10 * time.Second})
	fmt.Println("shut down:", err)
	// Output: shut down: <nil>
}
