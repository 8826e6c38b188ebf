package testutil

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestListenAddr(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{"listening", `{"time":"x","level":"INFO","msg":"http api listening","addr":"127.0.0.1:4321","node":"n"}`, "127.0.0.1:4321"},
		{"other message", `{"msg":"raft log opened","addr":"127.0.0.1:1"}`, ""},
		{"text log", `2026-01-01T00:00:00Z [WARN]  raft: heartbeat timeout reached`, ""},
		{"broken json", `{"msg":"http api listening",`, ""},
		{"empty", ``, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ListenAddr([]byte(tc.line)); got != tc.want {
				t.Errorf("ListenAddr(%q) = %q, want %q", tc.line, got, tc.want)
			}
		})
	}
}

func TestLogSinkFindsAddressAcrossWrites(t *testing.T) {
	s := newLogSink(1)
	chunks := []string{
		"2026 [WARN] raft: text line\n{\"msg\":\"raft log op",
		"ened\"}\n{\"msg\":\"http api list",
		"ening\",\"addr\":\"127.0.0.1:999\"}\n{\"msg\":\"later\"}\n",
	}
	for _, c := range chunks {
		if _, err := s.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case got := <-s.addr:
		if got != "127.0.0.1:999" {
			t.Fatalf("address %q", got)
		}
	default:
		t.Fatal("no address found")
	}
	if want := chunks[0] + chunks[1] + chunks[2]; s.String() != want {
		t.Fatalf("logs %q, want %q", s.String(), want)
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "roster")); err != nil {
		t.Fatalf("module root %s has no cmd/roster: %v", root, err)
	}
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, 5*time.Second, func() (bool, string) {
		n++
		return n >= 3, "counting"
	})
	if n != 3 {
		t.Fatalf("cond ran %d times, want 3", n)
	}
	if msg, ok := poll(t, 50*time.Millisecond, func() (bool, string) { return false, "never" }); ok || msg != "never" {
		t.Fatalf("poll = %q, %v; want never, false", msg, ok)
	}
}
