package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInterrupt: a command whose agent stalls returns promptly once its
// context is canceled (as SIGINT or SIGTERM cancel Main's), with a
// one-line reason and exit 1; watch, which runs until interrupted, exits 0.
func TestInterrupt(t *testing.T) {
	tests := []struct {
		name       string
		args       []string // {dir}: a temp dir
		midBody    bool     // the agent sends headers and some body, then stalls
		wantCode   int
		wantStderr string
	}{
		{name: "snapshot save before the answer", args: []string{"snapshot", "save", "{dir}/s.snap"}, wantCode: 1, wantStderr: "roster snapshot: interrupted\n"},
		{name: "snapshot save mid-transfer", args: []string{"snapshot", "save", "{dir}/s.snap"}, midBody: true, wantCode: 1, wantStderr: "roster snapshot: interrupted\n"},
		{name: "snapshot restore", args: []string{"snapshot", "restore", "{dir}/in.snap"}, wantCode: 1, wantStderr: "roster snapshot: interrupted\n"},
		{name: "register", args: []string{"register", "--service", "web", "--address", "10.0.0.1", "--port", "80"}, wantCode: 1, wantStderr: "roster register: interrupted\n"},
		{name: "instances", args: []string{"instances", "web"}, wantCode: 1, wantStderr: "roster instances: interrupted\n"},
		{name: "members", args: []string{"members"}, wantCode: 1, wantStderr: "roster members: interrupted\n"},
		{name: "watch", args: []string{"watch", "web"}, midBody: true, wantCode: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.midBody {
					w.Header().Set("Content-Type", "text/event-stream")
					_, _ = w.Write([]byte("event: snapshot\nid: 1\ndata: {\"index\":1,\"instances\":[]}\n\n"))
					w.(http.Flusher).Flush()
				}
				select {
				case arrived <- struct{}{}:
				default:
				}
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			defer srv.Close()
			defer close(release)
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "in.snap"), []byte("{\"version\":1}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"--http-addr", srv.Listener.Addr().String()}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "{dir}", dir))
			}
			args = append(args[2:], args[:2]...)

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stdout, stderr bytes.Buffer
			done := make(chan int, 1)
			go func() {
				done <- run(ctx, &env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}, args)
			}()
			select {
			case <-arrived:
			case <-time.After(10 * time.Second):
				t.Fatal("the request never reached the agent")
			}
			cancel()
			start := time.Now()
			var code int
			select {
			case code = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the command did not return after its context was canceled")
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("the command took %v to return after the interrupt", d)
			}
			if code != tc.wantCode || stderr.String() != tc.wantStderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tc.wantCode, tc.wantStderr)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("the interrupted command left files in its directory: %v", entries)
			}
		})
	}
}
