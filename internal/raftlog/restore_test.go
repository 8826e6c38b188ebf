package raftlog_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rosterhq/roster/internal/raftlog"
	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// instancesOf returns what a snapshot holds of one service.
func instancesOf(t testing.TB, snap []byte, service string) []*registry.Instance {
	t.Helper()
	st := store.New()
	if err := st.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	_, ins := st.Instances(service)
	return ins
}

// restoreSnapshot is a snapshot with one instance of "up" at the given
// indexes.
func restoreSnapshot(last, create, modify uint64) string {
	return fmt.Sprintf(`{"version":1,"indexes":{"last":%d,"services":%d,"checks":0}}`+"\n", last, last) +
		fmt.Sprintf(`{"instance":{"service":"up","id":"a","address":"10.7.7.7","port":80,"create_index":%d,"modify_index":%d}}`+"\n", create, modify)
}

// TestRestoreIndexes reproduces the restores that once bricked an agent
// for good (a header "last" near 2^64, an instance index near 2^64, a
// "last" a few hundred below 2^64 followed by ordinary writes): each is
// refused, naming the field, and the node keeps accepting writes and
// reopens with its state. A snapshot from a log far ahead of this one is
// installed at this log's index, its indexes moved below it.
func TestRestoreIndexes(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		field string // "" when accepted
	}{
		{"last 2^64-2", `{"version":1,"indexes":{"last":18446744073709551614}}`, "line 1, header.indexes.last"},
		{"last 2^64-1", `{"version":1,"indexes":{"last":18446744073709551615}}`, "line 1, header.indexes.last"},
		{"last a few hundred below 2^64", restoreSnapshot(18446744073709551000, 3, 18446744073709550999), "line 1, header.indexes.last"},
		{"modify_index near 2^64", restoreSnapshot(20, 3, 18446744073709551600), "line 2, instance up/a, modify_index"},
		{"from a log far ahead", restoreSnapshot(1<<40, 1<<40-10, 1<<40), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a := openReady(t, testConfig(dir))
			writeSome(t, a, "old", 5)
			before := a.st.LastIndex()
			err := a.node.Restore(strings.NewReader(tc.data))
			if tc.field != "" {
				var verr *registry.ValidationError
				if !errors.Is(err, raftlog.ErrInvalidSnapshot) || !errors.As(err, &verr) || verr.Fields[0].Field != tc.field {
					t.Fatalf("Restore = %v, want an invalid snapshot naming %q", err, tc.field)
				}
				if _, ins := a.st.Instances("old-1"); len(ins) == 0 {
					t.Fatal("a refused restore dropped the old state")
				}
			} else {
				if err != nil {
					t.Fatalf("Restore: %v", err)
				}
				idx, ins := a.st.Instances("up")
				if len(ins) != 1 || idx <= before || ins[0].ModifyIndex > idx || ins[0].ModifyIndex >= 1<<40 {
					t.Fatalf("after restore: up at %d holds %+v, want one instance, indexes below the service's, past %d", idx, ins, before)
				}
			}
			// Writes go on, many of them, and the node reopens.
			for i := range 600 {
				a.register(t, "after", fmt.Sprintf("w-%d", i))
			}
			want := persist(t, a.st)
			a.close(t)
			b := openReady(t, testConfig(copyDir(t, dir)))
			if got := persist(t, b.st); !bytes.Equal(got, want) {
				t.Errorf("state after reopening differs:\n got %.500s\nwant %.500s", got, want)
			}
			b.register(t, "after", "reopened")
			if left, _ := filepath.Glob(filepath.Join(dir, "restore-*")); len(left) != 0 {
				t.Errorf("restore spool files left: %v", left)
			}
		})
	}
}

// TestRestoreFailsOnLastRecord: an upload refused at its very last record
// leaves every old instance readable and writable.
func TestRestoreFailsOnLastRecord(t *testing.T) {
	a := openReady(t, testConfig(t.TempDir()))
	writeSome(t, a, "old", 9)
	var snap bytes.Buffer
	if err := a.st.Snapshot().Persist(&snap); err != nil {
		t.Fatal(err)
	}
	before := persist(t, a.st)
	// Drop the trailer and add a bad record last.
	lines := strings.SplitAfter(snap.String(), "\n")
	bad := strings.Join(lines[:len(lines)-2], "") +
		`{"instance":{"service":"new","id":"x","address":"10.0.0.1","port":80,"checks":[{"type":"http","target":"http://10.0.0.1/","interval":"1ms"}]}}` + "\n"
	err := a.node.Restore(strings.NewReader(bad))
	var verr *registry.ValidationError
	if !errors.As(err, &verr) || !strings.Contains(verr.Fields[0].Field, "instance new/x, checks[0].interval") {
		t.Fatalf("Restore = %v, want the last record's check interval refused", err)
	}
	if got := persist(t, a.st); !bytes.Equal(got, before) {
		t.Fatal("a refused restore changed the state")
	}
	for i := range 3 {
		svc := fmt.Sprintf("old-%d", i)
		if _, ins := a.st.Instances(svc); len(ins) == 0 {
			t.Errorf("%s lost", svc)
		}
		a.register(t, svc, "again")
	}
	if _, err := a.reg.Deregister(t.Context(), registry.Key{Service: "old-1", ID: "i-1"}); err != nil {
		t.Errorf("deregister after a refused restore: %v", err)
	}
}

// TestRestoreSpoolsInDataDir: an upload is spooled in the data directory
// (not a shared temporary directory) while it is read, nothing of it
// stays, and a spool a crash left is removed at the next start.
func TestRestoreSpoolsInDataDir(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, "restore-123.tmp")
	if err := os.WriteFile(left, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := openReady(t, testConfig(dir))
	if _, err := os.Stat(left); err == nil {
		t.Error("a spool left by a crash is still there after Open")
	}
	r := &spyReader{r: strings.NewReader(restoreSnapshot(5, 1, 2)), dir: dir}
	if err := a.node.Restore(r); err != nil {
		t.Fatal(err)
	}
	if !r.sawSpool {
		t.Error("no spool file in the data directory while the upload was read")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "restore-*")); len(m) != 0 {
		t.Errorf("spool files left: %v", m)
	}
}

// spyReader notes whether a spool file exists in dir while it is read.
type spyReader struct {
	r        *strings.Reader
	dir      string
	sawSpool bool
}

func (s *spyReader) Read(p []byte) (int, error) {
	if m, _ := filepath.Glob(filepath.Join(s.dir, "restore-*.tmp")); len(m) > 0 {
		s.sawSpool = true
	}
	return s.r.Read(p)
}
