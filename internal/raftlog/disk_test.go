package raftlog_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/raftlog"
	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
	"github.com/rosterhq/roster/internal/testutil"
)

// logBuf collects a node's log lines for a test to read.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func withLog(cfg raftlog.Config) (raftlog.Config, *logBuf) {
	lb := &logBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(lb, nil))
	return cfg, lb
}

// segments returns the WAL's segment files, oldest first.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment files in %s: %v", dir, err)
	}
	sort.Strings(segs)
	return segs
}

// replaceOnce changes the one occurrence of old in file to new.
func replaceOnce(t *testing.T, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte(old)); n != 1 {
		t.Fatalf("%q occurs %d times in %s, want once", old, n, file)
	}
	if err := os.WriteFile(file, bytes.Replace(b, []byte(old), []byte(new), 1), 0o600); err != nil {
		t.Fatal(err)
	}
}

func openErr(t *testing.T, cfg raftlog.Config) error {
	t.Helper()
	n, err := raftlog.Open(cfg, store.New())
	if err == nil {
		n.Close()
		t.Fatal("Open succeeded, want a refusal")
	}
	return err
}

func wantAll(t *testing.T, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%q\ndoes not say %q", s, w)
		}
	}
}

func addr(a string) func(*registry.Instance) {
	return func(in *registry.Instance) { in.Address = a }
}

func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	a := open(t, testConfig(dir))
	err := openErr(t, testConfig(dir))
	if !errors.Is(err, raftlog.ErrDirLocked) {
		t.Errorf("second Open: %v, want ErrDirLocked", err)
	}
	wantAll(t, err.Error(), "data dir "+dir+" in use by pid "+strconv.Itoa(os.Getpid()))
	a.close(t)

	// The lock file stays, with a pid that holds no lock: not a lock.
	if err := os.WriteFile(filepath.Join(dir, "roster.lock"), []byte("999999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openReady(t, testConfig(dir))
}

// TestCorruptEntryRefusesStart: a changed byte inside a committed entry
// (not in the last batch, which raft-wal itself checks) fails Open with
// the file, the index and the recovery steps; -recover-from-snapshot
// starts from the snapshot before it.
func TestCorruptEntryRefusesStart(t *testing.T) {
	dir := t.TempDir()
	a := openReady(t, testConfig(dir))
	a.register(t, "svc", "before")
	if err := a.node.TakeSnapshot(); err != nil {
		t.Fatal(err)
	}
	bad := a.register(t, "svc", "victim", addr("10.7.7.7")).Index
	for i := range 5 {
		a.register(t, "svc", fmt.Sprintf("after-%d", i))
	}
	a.close(t)
	segs := segments(t, dir)
	replaceOnce(t, segs[len(segs)-1], "10.7.7.7", "10.7.7.8")

	cfg := testConfig(copyDir(t, dir))
	err := openErr(t, cfg)
	if !errors.Is(err, raftlog.ErrDataDir) || !errors.Is(err, raftlog.ErrCorruptEntry) {
		t.Errorf("Open: %v, want ErrDataDir and ErrCorruptEntry", err)
	}
	wantAll(t, err.Error(), filepath.Base(segs[len(segs)-1]), fmt.Sprintf("log entry %d ", bad),
		"to recover", "-recover-from-snapshot", "rejoin")

	cfg.RecoverFromSnapshot = true
	cfg, lb := withLog(cfg)
	b := openReady(t, cfg)
	_, ins := b.st.Instances("svc")
	if len(ins) != 1 || ins[0].ID != "before" {
		t.Errorf("after recovery: %v, want only the instance in the snapshot", ins)
	}
	wantAll(t, lb.String(), "corrupt log entry", fmt.Sprintf("lost_from=%d", bad))
	b.register(t, "svc", "later")
	b.close(t)
	openReady(t, testConfig(copyDir(t, cfg.Dir)))
}

// TestTornTailWarns: a last batch that fails raft-wal's CRC is dropped,
// and the node says which indexes.
func TestTornTailWarns(t *testing.T) {
	dir := t.TempDir()
	a := openReady(t, testConfig(dir))
	a.register(t, "svc", "kept")
	last := a.register(t, "svc", "torn", addr("10.7.7.7")).Index
	a.close(t)
	segs := segments(t, dir)
	replaceOnce(t, segs[len(segs)-1], "10.7.7.7", "10.7.7.8")

	cfg, lb := withLog(testConfig(copyDir(t, dir)))
	b := openReady(t, cfg)
	wantAll(t, lb.String(), "log tail truncated", fmt.Sprintf("from=%d to=%d", last, last), filepath.Base(segs[len(segs)-1]))
	if _, ins := b.st.Instances("svc"); len(ins) != 1 {
		t.Errorf("%d instances, want the one before the torn batch", len(ins))
	}
}

// snapshotted writes before, snapshots, writes after, and returns the
// closed data dir with the state at the snapshot and at the end.
func snapshotted(t *testing.T, cfg raftlog.Config) (dir string, atSnap, atEnd []byte) {
	t.Helper()
	a := openReady(t, cfg)
	writeSome(t, a, "before", 10)
	if err := a.node.TakeSnapshot(); err != nil {
		t.Fatal(err)
	}
	atSnap = persist(t, a.st)
	writeSome(t, a, "after", 5)
	atEnd = persist(t, a.st)
	a.close(t)
	return cfg.Dir, atSnap, atEnd
}

func TestLogMissingBesideSnapshot(t *testing.T) {
	dir, atSnap, _ := snapshotted(t, testConfig(t.TempDir()))
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string
	}{
		{"wal dir removed", func(t *testing.T, dir string) { os.RemoveAll(filepath.Join(dir, "wal")) },
			[]string{"log", "missing beside a snapshot"}},
		{"wal dir emptied", func(t *testing.T, dir string) {
			ents, _ := os.ReadDir(filepath.Join(dir, "wal"))
			for _, e := range ents {
				os.Remove(filepath.Join(dir, "wal", e.Name()))
			}
		}, []string{"missing beside a snapshot"}},
		{"meta db removed", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "wal", "wal-meta.db")) },
			[]string{"wal-meta.db is missing beside 1 log segment files"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(copyDir(t, dir))
			tc.damage(t, cfg.Dir)
			err := openErr(t, cfg)
			if !errors.Is(err, raftlog.ErrDataDir) {
				t.Errorf("Open: %v, want ErrDataDir", err)
			}
			wantAll(t, err.Error(), append(tc.want, "to recover")...)
			if strings.Contains(err.Error(), "file exists") {
				t.Errorf("Open: %v", err)
			}

			cfg.RecoverFromSnapshot = true
			cfg, lb := withLog(cfg)
			b := openReady(t, cfg)
			if got := persist(t, b.st); !bytes.Equal(got, atSnap) {
				t.Error("state after recovery is not the snapshot's")
			}
			wantAll(t, lb.String(), "-recover-from-snapshot", "lost")
			b.register(t, "svc", "later")
			want := persist(t, b.st)
			b.close(t)
			c := openReady(t, testConfig(copyDir(t, cfg.Dir)))
			if got := persist(t, c.st); !bytes.Equal(got, want) {
				t.Error("state after reopening the recovered dir differs")
			}
		})
	}
}

// TestLogEndsBeforeSnapshot: a log older than the snapshot beside it (an
// old copy of wal/) refuses to start; recovering empties it so that the
// next append is not out of order.
func TestLogEndsBeforeSnapshot(t *testing.T) {
	cfg := testConfig(t.TempDir())
	a := openReady(t, cfg)
	a.register(t, "svc", "early")
	a.close(t)
	early := copyDir(t, filepath.Join(cfg.Dir, "wal"))
	dir, _, atEnd := snapshotted(t, cfg)
	if err := os.RemoveAll(filepath.Join(dir, "wal")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "wal"), os.DirFS(early)); err != nil {
		t.Fatal(err)
	}
	_ = atEnd

	cfg.Dir = copyDir(t, dir)
	err := openErr(t, cfg)
	if !errors.Is(err, raftlog.ErrDataDir) {
		t.Errorf("Open: %v, want ErrDataDir", err)
	}
	wantAll(t, err.Error(), "the log ends at index", "before the snapshot at index", "to recover")

	cfg.RecoverFromSnapshot = true
	cfg, lb := withLog(cfg)
	b := openReady(t, cfg)
	wantAll(t, lb.String(), "writes lost", "the log ends at index", "any write after index")
	b.register(t, "svc", "later")
	want := persist(t, b.st)
	b.close(t)
	c := openReady(t, testConfig(copyDir(t, cfg.Dir)))
	if got := persist(t, c.st); !bytes.Equal(got, want) {
		t.Error("state after reopening the recovered dir differs")
	}
}

// TestCorruptNewestSnapshot: raft falls back to an older snapshot when the
// newest fails its CRC. That is allowed only while the log still holds
// every entry after the older one.
func TestCorruptNewestSnapshot(t *testing.T) {
	tests := []struct {
		name     string
		trailing uint64
		refused  bool
	}{
		{name: "log covers it", trailing: 10240},
		{name: "log compacted", trailing: 2, refused: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.TrailingLogs = tc.trailing
			a := openReady(t, cfg)
			writeSome(t, a, "one", 5)
			if err := a.node.TakeSnapshot(); err != nil {
				t.Fatal(err)
			}
			writeSome(t, a, "two", 5)
			if err := a.node.TakeSnapshot(); err != nil {
				t.Fatal(err)
			}
			writeSome(t, a, "three", 2)
			want := persist(t, a.st)
			a.close(t)

			cfg.Dir = copyDir(t, cfg.Dir)
			snaps, _ := filepath.Glob(filepath.Join(cfg.Dir, "snapshots", "*", "state.bin"))
			sort.Slice(snaps, func(i, j int) bool { return snapIndex(snaps[i]) < snapIndex(snaps[j]) })
			if len(snaps) != 2 {
				t.Fatalf("snapshots: %v, want 2", snaps)
			}
			flipByte(t, snaps[1])
			if tc.refused {
				err := openErr(t, cfg)
				if !errors.Is(err, raftlog.ErrDataDir) {
					t.Errorf("Open: %v, want ErrDataDir", err)
				}
				wantAll(t, err.Error(), "is corrupt", "to recover")
				return
			}
			cfg, lb := withLog(cfg)
			b := openReady(t, cfg)
			if got := persist(t, b.st); !bytes.Equal(got, want) {
				t.Error("state differs after starting from the older snapshot and the log")
			}
			wantAll(t, lb.String(), "newest snapshot is corrupt", "corrupt snapshot moved aside")
		})
	}
}

// flipByte changes one bit in the middle of file.
func flipByte(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func snapIndex(path string) uint64 {
	parts := strings.Split(filepath.Base(filepath.Dir(path)), "-")
	n, _ := strconv.ParseUint(parts[1], 10, 64)
	return n
}

// TestRestoreThenReopen: a restore leaves an empty log beside its
// snapshot, which is not a lost log.
func TestRestoreThenReopen(t *testing.T) {
	dir := t.TempDir()
	a := openReady(t, testConfig(dir))
	writeSome(t, a, "kept", 5)
	saved := persist(t, a.st)
	writeSome(t, a, "dropped", 5)
	if err := a.node.Restore(bytes.NewReader(saved)); err != nil {
		t.Fatal(err)
	}
	want := persist(t, a.st)
	a.close(t)
	ctx := testutil.Context(t, 30*time.Second)
	b := open(t, testConfig(copyDir(t, dir)))
	if err := b.node.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := persist(t, b.st); !bytes.Equal(got, want) {
		t.Error("state after reopening a restore differs")
	}
}
