package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/testutil"
)

// runDev runs a dev agent until the test ends and waits until it is ready.
func runDev(t *testing.T) (*Server, string) {
	t.Helper()
	cfg := devConfig(t)
	cfg.DNSAddr, cfg.XDSAddr, cfg.SDSAddr, cfg.ProxyAddr = "off", "off", "", "off"
	cfg.SnapshotMaxBytes = "64KiB"
	s, err := New(cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	base := "http://" + s.HTTPAddr()
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		status, _, body := testutil.Do(t, "GET", base+"/readyz", nil)
		return status == http.StatusOK, string(body)
	})
	return s, base
}

type errorAnswer struct {
	Error  string                `json:"error"`
	Fields []registry.FieldError `json:"fields"`
}

// TestSnapshotRestoreRefusals: over HTTP, every refused restore answers
// 4xx naming what was wrong, and the agent goes on accepting writes.
func TestSnapshotRestoreRefusals(t *testing.T) {
	_, base := runDev(t)
	put := func(i int) {
		t.Helper()
		testutil.DoJSON(t, "PUT", fmt.Sprintf("%s/v1/services/web/instances/w-%d", base, i),
			map[string]any{"address": "10.0.0.1", "port": 80}, http.StatusCreated, nil)
	}
	put(0)
	hdr := `{"version":1,"indexes":{"last":5,"services":5,"checks":0}}` + "\n"
	tests := []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"last 2^64-2", `{"version":1,"indexes":{"last":18446744073709551614}}`, 400, "line 1, header.indexes.last"},
		{"last 2^64-1", `{"version":1,"indexes":{"last":18446744073709551615}}`, 400, "line 1, header.indexes.last"},
		{"modify_index near 2^64", hdr + `{"instance":{"service":"web","id":"x","address":"10.0.0.1","port":80,"modify_index":18446744073709551600}}`, 400, "line 2, instance web/x, modify_index"},
		{"1ms check", hdr + `{"instance":{"service":"web","id":"x","address":"10.0.0.1","port":80,"checks":[{"type":"http","target":"http://10.0.0.1/","interval":"1ms"}]}}`, 400, "line 2, instance web/x, checks[0].interval"},
		{"not a snapshot", "garbage", 400, "snapshot"},
		{"too large", hdr + strings.Repeat(" ", 70<<10), 413, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := testutil.Do(t, "PUT", base+"/v1/registry/snapshot", tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			var ans errorAnswer
			if err := json.Unmarshal(body, &ans); err != nil {
				t.Fatal(err)
			}
			if tc.field != "" && (len(ans.Fields) == 0 || ans.Fields[0].Field != tc.field) {
				t.Errorf("fields %+v, want %q", ans.Fields, tc.field)
			}
			// Writes go on; the old state is there.
			put(i + 1)
			testutil.DoJSON(t, "GET", base+"/v1/services/web/instances/w-0", nil, http.StatusOK, nil)
		})
	}
}

// blockingReader hands out data, then blocks until released.
type blockingReader struct {
	data    *strings.Reader
	reading chan struct{} // closed at the first read past data
	release chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if b.data.Len() > 0 {
		return b.data.Read(p)
	}
	select {
	case <-b.reading:
	default:
		close(b.reading)
	}
	<-b.release
	return 0, errors.New("client went away")
}

// TestSnapshotRestoreOneAtATime: while one restore reads its upload, a
// second is refused at once with a conflict (409), not queued; once the
// first ends, restores are accepted again.
func TestSnapshotRestoreOneAtATime(t *testing.T) {
	s, _ := runDev(t)
	snaps := &snapshots{store: s.store, local: localRestore{node: s.node, registry: s.registry, busy: new(atomic.Bool)}}
	first := &blockingReader{data: strings.NewReader(`{"version":1,"indexes":{"last":1}}` + "\n"),
		reading: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- snaps.Restore(first) }()
	ctx := testutil.Context(t, 10*time.Second)
	select {
	case <-first.reading:
	case <-ctx.Done():
		t.Fatal("the first restore never read its body")
	}
	start := time.Now()
	err := snaps.Restore(strings.NewReader(`{"version":1,"indexes":{"last":1}}`))
	if registry.KindOf(err) != registry.KindConflict {
		t.Errorf("second restore: %v (kind %v), want a conflict", err, registry.KindOf(err))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second restore waited %v", d)
	}
	close(first.release)
	if err := <-done; err == nil {
		t.Error("the first restore succeeded with a broken body")
	}
	if err := snaps.Restore(strings.NewReader(`{"version":1,"indexes":{"last":1}}`)); err != nil {
		t.Errorf("restore after the first ended: %v", err)
	}
}
