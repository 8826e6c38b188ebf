package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rosterhq/roster/internal/registry"
)

var update = flag.Bool("update", false, "rewrite testdata/wire/*.json from the encoder")

// wireInstanceFixture sets every field an instance carries.
func wireInstanceFixture() *registry.Instance {
	since := time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)
	return &registry.Instance{
		Service: "web", ID: "web-1", Address: "10.0.0.1", Port: 8080,
		Tags: []string{"primary", "v2"}, Meta: map[string]string{"build": "abc", "owner": "team-a"},
		Weight: 3, Priority: 1, Zone: "eu-west-1a", Region: "eu-west-1", Canary: true,
		Revision: "r42", Repo: "git.example/web",
		Checks: []registry.Check{
			{ID: "ttl", Name: "heartbeat", Type: registry.CheckTTL, TTL: registry.Duration(30 * time.Second),
				DeregisterAfter: registry.Duration(10 * time.Minute), Status: registry.Passing, Output: "ok"},
			{ID: "http", Type: registry.CheckHTTP, Target: "http://10.0.0.1:8080/health",
				Interval: registry.Duration(10 * time.Second), Timeout: registry.Duration(2 * time.Second),
				FailuresBeforeCritical: 3, SuccessesBeforePassing: 2, Status: registry.Critical,
				Output: "HTTP 500", CriticalSince: since},
		},
		Health: registry.Critical, CreateIndex: 7, ModifyIndex: 42,
	}
}

// TestWireBytes pins the bytes of the internal RPCs: agents of two
// versions talk to each other during a rolling upgrade, so a change here
// must stay readable by the version before. The files were written by
// the encoder as it was when the RPCs got their own wire types.
func TestWireBytes(t *testing.T) {
	verr := &registry.ValidationError{}
	verr.Add("port", "must be 1-65535")
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"result", wireResult{Index: 42, Instance: wireInstanceFixture(), Created: true}},
		{"result_error", wireResult{Index: 43, Err: toWire(fmt.Errorf("check web/web-1/nope: %w", registry.ErrNotFound))}},
		{"error_validation", toWire(verr)},
		{"errors", []*wireError{
			toWire(fmt.Errorf("x: %w", registry.ErrNotFound)),
			toWire(fmt.Errorf("x: %w", registry.ErrConflict)),
			toWire(fmt.Errorf("x: %w", registry.ErrNoTTL)),
			toWire(fmt.Errorf("x: %w", registry.ErrNotReady)),
			toWire(fmt.Errorf("%w: %w", registry.ErrNotLeader, raft.ErrNotLeader)),
			toWire(fmt.Errorf("x: %w", registry.ErrNotLeader)),
			toWire(fmt.Errorf("x: %w", context.DeadlineExceeded)),
			toWire(fmt.Errorf("x: %w", context.Canceled)),
			toWire(errors.New("disk on fire")),
		}},
		{"request_leases", []wireLease{{Service: "web", ID: "web-1"}, {Service: "db", ID: "db-1", Forget: true}}},
		{"request_join", joinRequest{ID: "node-2", Addr: "127.0.0.1:8302", Expect: 3,
			Known: []peer{{ID: "node-1", Addr: "127.0.0.1:8301"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "wire", tc.name+".json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, bytes.TrimSuffix(want, []byte("\n"))) {
				t.Fatalf("wire bytes of %s changed:\n got %s\nwant %s", tc.name, got, want)
			}
		})
	}
}
