package cli

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterhq/roster/client"
	"github.com/rosterhq/roster/internal/cluster"
)

// TestMembersJSON: members --json prints client.ClusterMember, which must
// encode every field as the agent's cluster.Member does.
func TestMembersJSON(t *testing.T) {
	tests := []struct {
		name string
		m    cluster.Member
	}{
		{"every field", cluster.Member{ID: "s1", Address: "127.0.0.1:7001", Voter: true, HTTPAddr: "127.0.0.1:8501", Role: "leader", Leader: "s1",
			LastContactMS: 3, Term: 4, LastIndex: 5, CommitIndex: 6, AppliedIndex: 7, Ready: true, Healthy: true, Error: "e"}},
		{"zero", cluster.Member{}},
		{"unreachable", cluster.Member{ID: "s3", Role: "unreachable", LastContactMS: -1, Error: "dial tcp: refused"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			var cm client.ClusterMember
			if err := json.Unmarshal(want, &cm); err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(cm)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(string(want), string(got)); d != "" {
				t.Errorf("client.ClusterMember encodes differently (-cluster.Member +client):\n%s", d)
			}
		})
	}
}
