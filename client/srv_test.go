package client_test

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/client/internal/testagent"
)

// TestSRVDialer resolves through plain DNS SRV records served by the
// agent's DNS interface.
func TestSRVDialer(t *testing.T) {
	t.Parallel()
	a := testagent.Start(t)
	c := newClient(t, a)
	// Priority 0: srv-0 (weight 1) and srv-1 (weight 3); priority 1: srv-2.
	bs, _ := fleet(t, c, "srvweb", 3, func(i int, in *client.Instance) {
		in.Weight = []int{1, 3, 1}[i]
		in.Priority = []int{0, 0, 1}[i]
	})
	d := &client.SRVDialer{Hosts: regexp.MustCompile(`\.service\.roster\.?$`), Server: a.DNS(), CacheFor: -1}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	const url = "http://srvweb.service.roster/"
	eventually(t, 5*time.Second, func() (bool, string) {
		addrs, err := d.Lookup(ctxT(t), "srvweb.service.roster")
		return err == nil && len(addrs) == 3, "SRV answer incomplete"
	})
	const n = 400
	got := map[string]int{}
	for range n {
		got[get(t, hc, url)]++
	}
	if got["srvweb-2"] != 0 {
		t.Fatalf("priority 1 used while priority 0 is up: %v", got)
	}
	if share := float64(got["srvweb-1"]) / n; share < .65 || share > .85 {
		t.Fatalf("weight 3 of 4 got %.0f%%: %v", share*100, got)
	}
	// The better priority's instances die (still registered): dials fail
	// over to the next record.
	bs[0].kill()
	bs[1].kill()
	for range 20 {
		if got := get(t, hc, url); got != "srvweb-2" {
			t.Fatalf("got %s", got)
		}
	}
	// Hosts that do not match are dialled as usual.
	if got := get(t, hc, "http://"+bs[2].addr+"/"); got != "srvweb-2" {
		t.Fatalf("plain dial: %s", got)
	}
}
