package raftlog

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/store"
)

// TestServingLeaderWriteFailure: a leader whose last write failed is not
// serving, says why, and recovers by itself once a barrier passes.
func TestServingLeaderWriteFailure(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeID = "n1"
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.RaftLogOutput = io.Discard
	n, err := Open(cfg, store.New())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	poll := func(what string, ok func(error) bool) {
		t.Helper()
		for {
			err := n.Serving()
			if ok(err) {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: Serving still %v", what, err)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	poll("single node leads", func(err error) bool { return err == nil })

	// Outcomes that say nothing of the log leave it serving.
	n.noteWrite(context.DeadlineExceeded)
	n.noteWrite(errClosed)
	if err := n.Serving(); err != nil {
		t.Fatalf("Serving after a caller gave up: %v", err)
	}

	n.noteWrite(errors.New("write wal: no space left on device"))
	err = n.Serving()
	if !errors.Is(err, ErrNotServing) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Serving after a failed write: %v", err)
	}
	poll("probe barrier clears it", func(err error) bool { return err == nil })
}
