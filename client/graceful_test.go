package client_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/internal/testagent"
)

func TestServeGracefully(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		signal bool // shut down by SIGTERM instead of ctx
	}{
		{"context", false},
		{"sigterm", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := testagent.Start(t)
			c := newClient(t, a)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := ln.Addr().(*net.TCPAddr).Port
			started, release := make(chan struct{}, 1), make(chan struct{})
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					started <- struct{}{}
					<-release
				}
				fmt.Fprint(w, "ok")
			})}
			reg, err := c.Register(ctxT(t), client.Instance{Service: "gs-" + tc.name, ID: "gs-1", Address: "127.0.0.1", Port: port,
				TTL: client.Duration(10 * time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- client.ServeGracefully(ctx, srv, ln, []*client.Registration{reg},
					client.ShutdownOptions{LameDuck: 300 * time.Millisecond, DrainTimeout: 10 * time.Second, Logger: testLogger(t)})
			}()
			base := "http://127.0.0.1:" + strconv.Itoa(port)
			eventually(t, 5*time.Second, func() (bool, string) {
				resp, err := http.Get(base + "/")
				if err != nil {
					return false, err.Error()
				}
				resp.Body.Close()
				return true, ""
			})
			// A request in flight when the shutdown starts.
			inflight := make(chan string, 1)
			go func() {
				resp, err := http.Get(base + "/slow")
				if err != nil {
					inflight <- "error: " + err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				inflight <- string(b)
			}()
			<-started
			if tc.signal {
				if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			} else {
				cancel()
			}
			// 1. Deregistered first...
			eventually(t, 5*time.Second, func() (bool, string) {
				return health(t, c, "gs-"+tc.name, "gs-1") == "", "still registered"
			})
			// 2. ...while still accepting (the lame-duck pause)...
			noKeepAlive := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			if resp, err := noKeepAlive.Get(base + "/"); err != nil {
				t.Fatalf("stopped accepting before the lame-duck pause ended: %v", err)
			} else {
				resp.Body.Close()
			}
			// 3. ...then stops accepting, while the request in flight goes on.
			eventually(t, 5*time.Second, func() (bool, string) {
				resp, err := noKeepAlive.Get(base + "/")
				if err == nil {
					resp.Body.Close()
					return false, "still accepting"
				}
				return true, ""
			})
			select {
			case err := <-done:
				t.Fatalf("returned with a request in flight: %v", err)
			default:
			}
			// 4. The in-flight request completes; then it returns.
			close(release)
			if got := <-inflight; got != "ok" {
				t.Fatalf("in-flight request: %s", got)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("did not return after draining")
			}
		})
	}
}
