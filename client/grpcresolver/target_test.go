package grpcresolver

import (
	"reflect"
	"strings"
	"testing"

	"github.com/rosterhq/roster/client"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		authority, endpoint, query string
		want                       *spec // filter.Balancer not compared
		err                        string
	}{
		{endpoint: "payment-service", want: &spec{service: "payment-service", policy: "round_robin"}},
		{endpoint: "Payment-Service", want: &spec{service: "payment-service", policy: "round_robin"}},
		{endpoint: "web", query: "tag=a&tag=b&meta=version=v2&meta=k=x=y&canary=exclude&zone=EU-1a&balancer=ring_hash&hash_header=User-Id",
			want: &spec{service: "web", policy: "ring_hash", hashHeader: "user-id", filter: client.Filter{
				Tags: []string{"a", "b"}, Meta: map[string]string{"version": "v2", "k": "x=y"},
				Canary: client.CanaryExclude, Zone: "eu-1a"}}},
		{endpoint: "web", query: "canary=only&subset=90:version=v1&subset=10:version=v2,track=b",
			want: &spec{service: "web", policy: "round_robin", filter: client.Filter{Canary: client.CanaryOnly, Subsets: []client.Subset{
				{Name: "version=v1", Meta: map[string]string{"version": "v1"}, Weight: 90},
				{Name: "version=v2,track=b", Meta: map[string]string{"version": "v2", "track": "b"}, Weight: 10},
			}}}},
		{endpoint: "web", query: "canary=include", want: &spec{service: "web", policy: "round_robin"}},
		{authority: "agent:8500", endpoint: "web", err: "authority"},
		{endpoint: "", err: "service"},
		{endpoint: "a/b", err: "service"},
		{endpoint: "-web", err: "service"},
		{endpoint: strings.Repeat("a", 64), err: "service"},
		{endpoint: "web", query: "balancer=fastest", err: "balancer="},
		{endpoint: "web", query: "zone=eu_1", err: "zone"},
		{endpoint: "web", query: "zone=a&zone=b", err: "2 times"},
		{endpoint: "web", query: "canary=maybe", err: "canary"},
		{endpoint: "web", query: "meta=version", err: "key=value"},
		{endpoint: "web", query: "meta==v", err: "key=value"},
		{endpoint: "web", query: "tag=", err: "empty tag"},
		{endpoint: "web", query: "subset=version=v1", err: "subset"},
		{endpoint: "web", query: "subset=-1:version=v1", err: "subset"},
		{endpoint: "web", query: "subset=10:", err: "key=value"},
		{endpoint: "web", query: "hash_header=", err: "hash_header"},
		{endpoint: "web", query: "hash_header=a:b", err: "hash_header"},
		{endpoint: "web", query: "wieght=2", err: "unknown parameter"},
		{endpoint: "web", query: "tag=%zz", err: "query"},
	}
	for _, tc := range tests {
		t.Run(tc.endpoint+"?"+tc.query, func(t *testing.T) {
			got, err := parseTarget(tc.authority, tc.endpoint, tc.query)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want an error containing %q, got %v", tc.err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.filter.Balancer == nil {
				t.Fatal("no balancer")
			}
			got.filter.Balancer = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseTarget(f *testing.F) {
	f.Add("", "web", "tag=a&meta=k=v&canary=exclude&zone=z1&balancer=ring_hash&hash_header=user-id")
	f.Add("", "web", "subset=90:version=v1&subset=10:version=v2,track=b")
	f.Add("host", "a/b", "%zz&&=")
	f.Fuzz(func(t *testing.T, authority, endpoint, query string) {
		s, err := parseTarget(authority, endpoint, query)
		if err != nil {
			if s != nil {
				t.Fatal("a spec with an error")
			}
			return
		}
		if authority != "" || !validLabel(s.service) || s.filter.Balancer == nil || policies[s.policy] == nil {
			t.Fatalf("accepted %q %q %q as %+v", authority, endpoint, query, s)
		}
		if s.filter.Zone != "" && !validLabel(s.filter.Zone) {
			t.Fatalf("invalid zone %q accepted", s.filter.Zone)
		}
		for _, sub := range s.filter.Subsets {
			if sub.Weight < 0 || len(sub.Meta) == 0 {
				t.Fatalf("bad subset %+v", sub)
			}
		}
		// Parsing is deterministic.
		again, err := parseTarget(authority, endpoint, query)
		if err != nil || again.service != s.service || again.policy != s.policy || !reflect.DeepEqual(again.filter.Tags, s.filter.Tags) {
			t.Fatalf("second parse differs: %+v, %v", again, err)
		}
	})
}
