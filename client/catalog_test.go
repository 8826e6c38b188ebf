package client_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
)

// TestCatalogRetriesFailedFetchWithBackoff: when the service-list watch
// cannot fetch a service whose index moved, it retries that fetch with
// exponential backoff (the gaps between attempts grow from MinBackoff),
// not at every pacing interval, and it does not re-poll the whole list in
// between: its list query blocks until the retry is due. Meanwhile the
// last known set is served, marked stale.
func TestCatalogRetriesFailedFetchWithBackoff(t *testing.T) {
	t.Parallel()
	const minBackoff = 40 * time.Millisecond
	f := newFakeRegistry(t)
	f.set("x", inst("x", "x-0", 1, nil))
	r := client.NewResolver(f.client(t), client.ResolverConfig{MaxDirectWatches: -1,
		MinInterval: time.Millisecond, Jitter: time.Millisecond,
		MinBackoff: minBackoff, MaxBackoff: 10 * time.Second, Wait: 5 * time.Second, Logger: testLogger(t)})
	defer r.Close()
	if _, err := r.Instances(ctxT(t), "x"); err != nil {
		t.Fatal(err)
	}
	const fetch = "/v1/services/x/instances"
	eventually(t, 5*time.Second, func() (bool, string) {
		return f.inProgress("/v1/services") == 1, "the list watch does not block"
	})
	fetchesBefore, listsBefore := len(f.requests(fetch)), len(f.requests("/v1/services"))

	f.failFetches("x", http.StatusInternalServerError)
	f.set("x", inst("x", "x-1", 1, nil)) // the list watch wakes and fetches x
	const attempts = 5
	eventually(t, 20*time.Second, func() (bool, string) {
		return len(f.requests(fetch))-fetchesBefore >= attempts, fmt.Sprint(len(f.requests(fetch))-fetchesBefore, " attempts")
	})
	got := f.requests(fetch)[fetchesBefore:]
	lists := len(f.requests("/v1/services")) - listsBefore
	// Attempt k+1 comes at least backoff(k) after attempt k: MinBackoff
	// doubled k-1 times, less the jitter of up to half.
	for k := 1; k < attempts; k++ {
		gap := got[k].at.Sub(got[k-1].at)
		if least := (minBackoff << (k - 1)) / 2; gap < least {
			t.Errorf("retry %d came %v after the attempt before it, want at least %v (backoff)", k, gap, least)
		}
	}
	if limit := len(got) + 2; lists > limit {
		t.Errorf("%d list queries for %d fetch attempts: the list is re-polled between retries (limit %d)", lists, len(got), limit)
	}
	if !r.Stale("x") {
		t.Error("a service whose fetch fails is not marked stale")
	}
	if ins, err := r.Instances(ctxT(t), "x"); err != nil || len(ins) != 1 || ins[0].ID != "x-0" {
		t.Fatalf("while its fetch fails: %v, %v; want the last known set", ins, err)
	}

	f.failFetches("x", 0)
	eventually(t, 10*time.Second, func() (bool, string) {
		ins, _ := r.Instances(ctxT(t), "x")
		return len(ins) == 1 && ins[0].ID == "x-1" && !r.Stale("x"), fmt.Sprint(ids(ins))
	})
}
