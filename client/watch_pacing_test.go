package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
)

// TestWatchPacesAfterAWake: after a blocking query returns with a change
// (which wakes every client of a fleet at the same moment), the next query
// waits at least MinInterval (plus jitter) from that answer, so the fleet's
// next queries are spread out, not sent as one wave. Pacing from the start
// of the previous query would not delay them at all after a long block.
func TestWatchPacesAfterAWake(t *testing.T) {
	t.Parallel()
	const (
		minInterval = 300 * time.Millisecond
		block       = 600 * time.Millisecond // longer than minInterval + jitter
	)
	tests := []struct {
		name   string
		direct int
		path   string // the watched query
	}{
		{"blocking query per service", 0, "/v1/services/x/instances"},
		{"service list watch", -1, "/v1/services"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var (
				mu       sync.Mutex
				n        int
				answered time.Time // when the second (blocking) query was answered
				third    = make(chan time.Time, 1)
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(client.IndexHeader, "1")
				if r.URL.Path != tc.path {
					// The list watch's fetch of the service: nothing passing.
					fmt.Fprint(w, `{"service":"x","index":1,"instances":[]}`)
					return
				}
				mu.Lock()
				n++
				i := n
				mu.Unlock()
				switch i {
				case 1:
				case 2:
					select {
					case <-time.After(block): // then a change wakes it
					case <-r.Context().Done():
						return
					}
					w.Header().Set(client.IndexHeader, "2")
					mu.Lock()
					answered = time.Now()
					mu.Unlock()
				default:
					if i == 3 {
						third <- time.Now()
					}
					<-r.Context().Done()
					return
				}
				if tc.direct == 0 {
					fmt.Fprint(w, `{"service":"x","index":1,"instances":[]}`)
				} else {
					fmt.Fprint(w, `{"index":1,"services":[]}`)
				}
			}))
			defer srv.Close()
			c, err := client.New(client.Config{Address: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			r := client.NewResolver(c, client.ResolverConfig{MaxDirectWatches: tc.direct, MinInterval: minInterval, Jitter: time.Millisecond})
			defer r.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := r.Instances(ctx, "x"); err != nil {
				t.Fatal(err)
			}
			var at time.Time
			select {
			case at = <-third:
			case <-time.After(10 * time.Second):
				t.Fatal("no third query")
			}
			mu.Lock()
			gap := at.Sub(answered)
			mu.Unlock()
			if gap < minInterval {
				t.Fatalf("the query after a wake came %v after the answer, want at least MinInterval (%v)", gap, minInterval)
			}
		})
	}
}
