package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
)

// TestLookupEndsWhenResolverCloses: a lookup waiting for a service's first
// fetch (here with no deadline of its own) returns ErrClosed when the
// resolver closes, instead of waiting forever for a fetch that the closed
// watch will never make.
func TestLookupEndsWhenResolverCloses(t *testing.T) {
	t.Parallel()
	for _, direct := range []int{0, -1} { // a direct watch, the service list watch
		asked := make(chan struct{})
		var once sync.Once
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			once.Do(func() { close(asked) })
			<-r.Context().Done() // the agent never answers
		}))
		c, err := client.New(client.Config{Address: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		r := client.NewResolver(c, client.ResolverConfig{MaxDirectWatches: direct})
		done := make(chan error, 1)
		go func() {
			_, err := r.Instances(context.Background(), "web")
			done <- err
		}()
		select {
		case <-asked:
		case <-time.After(10 * time.Second):
			t.Fatal("no fetch")
		}
		_ = r.Close()
		select {
		case err := <-done:
			if !errors.Is(err, client.ErrClosed) {
				t.Fatalf("direct=%d: lookup after Close: %v, want ErrClosed", direct, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("direct=%d: a lookup waiting for the first fetch hangs after Close", direct)
		}
		srv.Close()
	}
}
