package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterhq/roster/internal/raftlog"
	"github.com/rosterhq/roster/internal/store"
	"github.com/rosterhq/roster/internal/testutil"
)

// TestLeadership: on a single node, which leads, the duties run once the
// log is caught up; they stop in reverse when the context ends, and a duty
// whose failure stops the agent ends Run with its error.
func TestLeadership(t *testing.T) {
	tests := []struct {
		name       string
		failAt     error // the second duty fails at once
		wantEvents []string
		wantErr    string
	}{
		{name: "duties stop with the context", wantEvents: []string{"stop checks", "stop leases"}},
		{name: "a failing duty ends Run", failAt: errors.New("boom"), wantEvents: []string{"stop leases"}, wantErr: "checks: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testutil.Context(t, 20*time.Second)
			rc := raftlog.DefaultConfig()
			rc.NodeID, rc.RaftLogOutput = "n1", io.Discard
			node, err := raftlog.Open(rc, store.New())
			if err != nil {
				t.Fatal(err)
			}
			defer node.Close()
			ev := &events{}
			leases := &fake{name: "leases", ev: ev, started: make(chan struct{})}
			checks := &fake{name: "checks", ev: ev, started: make(chan struct{}), failAtStart: tc.failAt}
			l := &leadership{node: node, log: slog.New(slog.NewTextHandler(t.Output(), nil)), duties: []component{
				{name: "leases", run: leases, failure: stopAgent},
				{name: "checks", run: checks, failure: stopAgent},
			}}
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			ran := make(chan error, 1)
			go func() { ran <- l.Run(runCtx) }()
			for _, f := range []*fake{leases, checks} {
				select {
				case <-f.started:
				case <-ctx.Done():
					t.Fatalf("%s did not start", f.name)
				}
			}
			if tc.failAt == nil {
				stop()
			}
			var gotErr string
			select {
			case err := <-ran:
				if err != nil {
					gotErr = err.Error()
				}
			case <-ctx.Done():
				t.Fatal("Run did not return")
			}
			if gotErr != tc.wantErr {
				t.Errorf("error = %q, want %q", gotErr, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantEvents, ev.list()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}
