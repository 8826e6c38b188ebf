package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// TestInstanceOutputBytes pins the bytes of one instance with every field
// set, as a read, a list and a watch snapshot write it. The API owns this
// form (output.go): neither the model nor the store's format may move it.
func TestInstanceOutputBytes(t *testing.T) {
	s := newStack(t)
	since := time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
	res := s.register(t, &registry.Instance{
		Service: "web", ID: "a-1", Address: "2001:db8::1", Port: 8443,
		Tags: []string{"v1", "x y"}, Meta: map[string]string{"env": "prod", "empty": "", "html": "<b>&amp;"},
		Weight: 9, Priority: 3, Zone: "eu-1", Region: "eu", Canary: true, Revision: "abc123", Repo: "github.com/x/web",
		Checks: []registry.Check{
			{ID: "ttl", Name: "lease", Type: registry.CheckTTL, TTL: registry.Duration(90 * time.Second),
				DeregisterAfter: registry.Duration(time.Hour)},
			{ID: "probe", Type: registry.CheckTCP, Target: "10.0.0.1:80", Interval: registry.Duration(1500 * time.Millisecond),
				Timeout: registry.Duration(time.Second), FailuresBeforeCritical: 2, SuccessesBeforePassing: 2,
				Status: registry.Critical, Output: "refused \u2603", CriticalSince: since},
		},
	})
	// The indexes are the log's; everything else is fixed.
	want := fmt.Sprintf(`{"service":"web","id":"a-1","address":"2001:db8::1","port":8443,"tags":["v1","x y"],`+
		`"meta":{"empty":"","env":"prod","html":"\u003cb\u003e\u0026amp;"},"weight":9,"priority":3,"zone":"eu-1","region":"eu",`+
		`"canary":true,"revision":"abc123","repo":"github.com/x/web","checks":[`+
		`{"id":"ttl","name":"lease","type":"ttl","ttl":"1m30s","deregister_after":"1h0m0s","status":"passing"},`+
		`{"id":"probe","type":"tcp","target":"10.0.0.1:80","interval":"1.5s","timeout":"1s","failures_before_critical":2,`+
		`"successes_before_passing":2,"status":"critical","output":"refused ☃","critical_since":"2025-03-04T05:06:07.00000089Z"}],`+
		`"health":"critical","create_index":%[1]d,"modify_index":%[1]d}`, res.Index)
	tests := []struct {
		name, path, want string
	}{
		{"read", "/v1/services/web/instances/a-1", want + "\n"},
		{"list", "/v1/services/web/instances", fmt.Sprintf(`{"service":"web","index":%d,"instances":[%s]}`, res.Index, want) + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := s.mustDo(t, http.StatusOK, "GET", tc.path, ""); string(r.body) != tc.want {
				t.Errorf("GET %s =\n%s\nwant\n%s", tc.path, r.body, tc.want)
			}
		})
	}
	t.Run("watch", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", s.srv.URL+"/v1/services/web/watch", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// The first event is the snapshot, up to its blank line.
		var got strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() && sc.Text() != "" {
			got.WriteString(sc.Text() + "\n")
		}
		wantEv := fmt.Sprintf("event: snapshot\nid: %d\ndata: {\"index\":%[1]d,\"instances\":[%s]}\n", res.Index, want)
		if got.String() != wantEv {
			t.Errorf("first event\n%s\nwant\n%s", got.String(), wantEv)
		}
	})
}
