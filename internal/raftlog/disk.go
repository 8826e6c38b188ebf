package raftlog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// ErrDataDir marks a data directory the agent refuses to start on: a
// corrupt log entry, a log missing or ending before the latest snapshot.
// The message names what was found and how to recover.
var ErrDataDir = errors.New("data dir cannot be trusted")

// disk is a data directory checked and opened for raft.
type disk struct {
	lock  *dirLock
	wal   *raftwal.WAL
	meta  *metadb.BoltMetaDB
	snaps *raft.FileSnapshotStore
}

func (d *disk) Close() error {
	var first error
	if d.wal != nil {
		first = d.wal.Close()
	}
	if d.meta != nil {
		if err := d.meta.Close(); err != nil && first == nil {
			first = err
		}
	}
	if err := d.lock.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

// recoverySteps is the end of every refusal to start.
func recoverySteps(dir string) string {
	return fmt.Sprintf("to recover: restore the data dir from a backup; or start with -recover-from-snapshot "+
		"to accept losing the writes that are not in the latest snapshot; or, in a cluster, stop the agent, "+
		"remove it from the cluster (`roster operator raft remove-peer ID` on another server), remove %s and "+
		"start it again to rejoin and copy the state from its peers (a single agent can then be given a saved "+
		"snapshot with `roster snapshot restore FILE`)", dir)
}

// openDisk locks dir and opens its log and snapshots, checking, before
// raft starts, that together they hold every write they once held:
//
//   - every log entry decodes, has the index it is stored at, and matches
//     its checksum (sealed raft-wal segments are never re-read by
//     raft-wal's own CRC, which covers only the tail's last batch);
//   - a tail batch that raft-wal drops as torn is named in a WARN line;
//   - the newest snapshot that passes its CRC is the one raft restores:
//     a newer corrupt one is moved aside only when the log covers it;
//   - the log follows that snapshot without a gap.
//
// Anything else fails with ErrDataDir unless cfg.RecoverFromSnapshot, in
// which case the log is cut to what can follow the snapshot and the loss
// is logged.
func openDisk(cfg Config, hl hclog.Logger, lg *slog.Logger) (_ *disk, err error) {
	d := &disk{}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.lock, err = lockDir(cfg.Dir); err != nil {
		return nil, err
	}
	if d.snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.Dir, cfg.RetainSnapshots, hl.Named("snapshot")); err != nil {
		return nil, fmt.Errorf("raftlog: open snapshots: %w", err)
	}
	sn, err := checkSnapshots(d.snaps, filepath.Join(cfg.Dir, "snapshots"))
	if err != nil {
		return nil, err
	}

	walDir := filepath.Join(cfg.Dir, "wal")
	logMissing, err := checkWALFiles(cfg, walDir, sn, lg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(walDir, 0o750); err != nil {
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	// raft-wal does not close a meta store it opened itself, which would
	// keep its file lock until the process exits: own it here.
	d.meta = &metadb.BoltMetaDB{}
	state, err := d.meta.Load(walDir)
	if err != nil {
		return nil, fmt.Errorf("raftlog: open log %s: %w", walDir, err)
	}
	tail := scanTail(walDir, state)
	if d.wal, err = raftwal.Open(walDir, raftwal.WithLogger(hl.Named("wal")), raftwal.WithMetaStore(d.meta)); err != nil {
		return nil, fmt.Errorf("raftlog: open log %s: %w: %w; %s", walDir, ErrDataDir, err, recoverySteps(cfg.Dir))
	}
	last, _ := d.wal.LastIndex()
	tail.report(last, lg)

	start := time.Now()
	n, err := verifyLog(cfg, d.wal, walDir, state, sn, lg)
	if err != nil {
		return nil, err
	}
	lg.Info("log verified", "entries", n, "took", time.Since(start).Round(time.Millisecond))
	if err := checkLogFollowsSnapshot(cfg, d.wal, tail, sn, logMissing, lg); err != nil {
		return nil, err
	}
	if err := sn.moveAsideBad(cfg.Dir, lg); err != nil {
		return nil, err
	}
	return d, nil
}

// snapState is what the snapshot directory holds.
type snapState struct {
	// good is the newest snapshot passing its CRC; nil if none.
	good *raft.SnapshotMeta
	// newest is the highest index of any snapshot there, good or not.
	newest uint64
	// bad are snapshots newer than good that fail to open.
	bad []badSnapshot
}

type badSnapshot struct {
	id    string
	index uint64
	err   error
}

func (s snapState) goodIndex() uint64 {
	if s.good == nil {
		return 0
	}
	return s.good.Index
}

func (s snapState) any() bool { return s.good != nil || len(s.bad) > 0 }

// checkSnapshots opens each snapshot newest first (raft's store checks
// the CRC64 in its meta.json as it opens) until one passes. A directory
// whose meta.json cannot be read is a bad snapshot too: raft's List skips
// it silently; its index is in its name (term-index-millis).
func checkSnapshots(fs *raft.FileSnapshotStore, dir string) (snapState, error) {
	var s snapState
	metas, err := fs.List()
	if err != nil {
		return s, fmt.Errorf("raftlog: list snapshots: %w", err)
	}
	listed := map[string]bool{}
	for _, m := range metas {
		listed[m.ID] = true
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("raftlog: list snapshots: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") || listed[e.Name()] {
			continue
		}
		parts := strings.Split(e.Name(), "-")
		if len(parts) != 3 {
			continue
		}
		idx, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil {
			continue
		}
		s.bad = append(s.bad, badSnapshot{id: e.Name(), index: idx, err: errors.New("meta.json cannot be read")})
		s.newest = max(s.newest, idx)
	}
	for _, m := range metas {
		s.newest = max(s.newest, m.Index)
		if s.good != nil {
			continue
		}
		_, rc, err := fs.Open(m.ID)
		if err != nil {
			s.bad = append(s.bad, badSnapshot{id: m.ID, index: m.Index, err: err})
			continue
		}
		rc.Close()
		s.good = m
	}
	// Only snapshots newer than the good one matter: older ones are
	// never restored while a newer one opens.
	kept := s.bad[:0]
	for _, b := range s.bad {
		if b.index > s.goodIndex() {
			kept = append(kept, b)
		}
	}
	s.bad = kept
	return s, nil
}

// moveAsideBad moves the snapshots that failed out of raft's way, into
// snapshots.corrupt/, so that raft restores the good one (it would skip
// them too, but silently) and an operator can still inspect them.
func (s snapState) moveAsideBad(dir string, lg *slog.Logger) error {
	if len(s.bad) == 0 {
		return nil
	}
	to := filepath.Join(dir, "snapshots.corrupt")
	if err := os.MkdirAll(to, 0o750); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	for _, b := range s.bad {
		if err := os.Rename(filepath.Join(dir, "snapshots", b.id), filepath.Join(to, b.id)); err != nil {
			return fmt.Errorf("raftlog: move corrupt snapshot aside: %w", err)
		}
		lg.Warn("corrupt snapshot moved aside", "snapshot", b.id, "index", b.index, "err", b.err, "to", to)
	}
	return nil
}

// checkWALFiles looks at the log's files before raft-wal opens them: a
// missing wal-meta.db beside segment files would otherwise fail as "file
// exists", and a log missing beside a snapshot would start from the
// snapshot alone. It reports whether the log is missing (and accepted so).
func checkWALFiles(cfg Config, walDir string, sn snapState, lg *slog.Logger) (missing bool, err error) {
	_, err = os.Stat(filepath.Join(walDir, metadb.FileName))
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("raftlog: open log %s: %w", walDir, err)
	}
	segs, _ := filepath.Glob(filepath.Join(walDir, "*.wal"))
	switch {
	case len(segs) > 0 && (!cfg.RecoverFromSnapshot || !sn.any()):
		return false, fmt.Errorf("raftlog: %w: %s is missing beside %d log segment files in %s: without it the log cannot be read; %s",
			ErrDataDir, metadb.FileName, len(segs), walDir, recoverySteps(cfg.Dir))
	case len(segs) > 0:
		aside := fmt.Sprintf("%s.lost-%d", walDir, time.Now().Unix())
		if err := os.Rename(walDir, aside); err != nil {
			return false, fmt.Errorf("raftlog: move unreadable log aside: %w", err)
		}
		lg.Warn("log unreadable without its meta database; moved aside, starting from the snapshot (-recover-from-snapshot)",
			"moved_to", aside, "segments", len(segs), "snapshot_index", sn.goodIndex(),
			"lost", fmt.Sprintf("every write after index %d", sn.goodIndex()))
		return true, nil
	case !sn.any():
		return false, nil // a new data directory
	case !cfg.RecoverFromSnapshot:
		return false, fmt.Errorf("raftlog: %w: the log %s is missing beside a snapshot at index %d: starting would undo every write after it; %s",
			ErrDataDir, walDir, sn.newest, recoverySteps(cfg.Dir))
	}
	lg.Warn("log missing; starting from the snapshot (-recover-from-snapshot)", "dir", walDir,
		"snapshot_index", sn.goodIndex(), "lost", fmt.Sprintf("every write after index %d", sn.goodIndex()))
	return true, nil
}

// tailScan is what the tail segment file held before raft-wal recovered
// it: raft-wal drops a last batch whose CRC fails (a torn write) and any
// entries after the last commit frame, without saying so.
type tailScan struct {
	file string
	// base is the tail segment's first index; entries the number of
	// entry frames in it, committed the number before its last commit
	// frame.
	base, entries, committed uint64
	ok                       bool
}

// scanTail reads the tail segment's frames the way raft-wal lays them out
// (a 32-byte file header, then 8-byte frame headers: type, 3 reserved
// bytes, a little-endian length or, for a commit frame, CRC; payloads
// padded to 8 bytes). It only counts; raft-wal decides what to keep.
func scanTail(walDir string, st types.PersistentState) tailScan {
	var t tailScan
	if len(st.Segments) == 0 {
		return t
	}
	info := st.Segments[len(st.Segments)-1]
	if !info.SealTime.IsZero() {
		return t
	}
	t.file, t.base = filepath.Join(walDir, segment.FileName(info)), info.BaseIndex
	f, err := os.Open(t.file)
	if err != nil {
		return t
	}
	defer f.Close()
	// Stream it: a segment is preallocated (64 MiB), mostly zeros.
	r := bufio.NewReaderSize(f, 64<<10)
	const fileHeader, frameHeader = 32, 8
	if _, err := r.Discard(fileHeader); err != nil {
		return t
	}
	t.ok = true
	var h [frameHeader]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return t
		}
		n := int(binary.LittleEndian.Uint32(h[4:]))
		switch h[0] {
		case segment.FrameEntry, segment.FrameIndex:
			if h[0] == segment.FrameEntry {
				t.entries++
			}
			if _, err := r.Discard(n + (frameHeader-n%frameHeader)%frameHeader); err != nil {
				return t
			}
		case segment.FrameCommit:
			t.committed = t.entries
		default:
			return t
		}
	}
}

// held is the last index the tail segment held, 0 if it held none.
func (t tailScan) held() uint64 {
	if !t.ok || t.entries == 0 {
		return 0
	}
	return t.base + t.entries - 1
}

// report logs what raft-wal dropped from the tail, last being its last
// index after recovery.
func (t tailScan) report(last uint64, lg *slog.Logger) {
	held := t.held()
	if held == 0 || last >= held {
		return
	}
	from := max(last+1, t.base)
	attrs := []any{"file", t.file, "from", from, "to", held}
	if committed := t.base + t.committed - 1; t.committed > 0 && committed >= from {
		// A batch with its commit frame written whose CRC failed: a write
		// torn by a crash, or a changed byte in the last batch.
		attrs = append(attrs, "committed_batch_to", committed)
	}
	lg.Warn("log tail truncated: the last batch was incomplete or failed its CRC", attrs...)
}

// segmentFile names the segment file of walDir that holds idx.
func segmentFile(walDir string, st types.PersistentState, idx uint64) string {
	name := "unknown segment"
	for _, s := range st.Segments {
		if s.BaseIndex <= idx {
			name = segment.FileName(s)
		}
	}
	return filepath.Join(walDir, name)
}

// verifyLog reads every entry of the log and checks it (verifyEntry, and
// that it is stored at its own index). On a bad entry it fails with
// ErrDataDir, or with cfg.RecoverFromSnapshot and a snapshot cuts the
// log: the entries up to it when the snapshot covers them, else all of
// them (raft then starts from the snapshot). It returns how many entries
// it read.
func verifyLog(cfg Config, w *raftwal.WAL, walDir string, st types.PersistentState, sn snapState, lg *slog.Logger) (int, error) {
	read := 0
	for {
		first, _ := w.FirstIndex()
		last, _ := w.LastIndex()
		bad, err := firstBadEntry(w, first, last)
		read += int(bad - first)
		if err == nil {
			return read, nil
		}
		file := segmentFile(walDir, st, bad)
		snap := sn.goodIndex()
		if !cfg.RecoverFromSnapshot || sn.good == nil {
			return read, fmt.Errorf("raftlog: %w: log entry %d in %s is corrupt (%w); the latest snapshot is at index %d; %s",
				ErrDataDir, bad, file, err, snap, recoverySteps(cfg.Dir))
		}
		// Only prefixes are cut: raft-wal v0.4.0 marks a segment cut at
		// its end sealed without writing its index, and cannot read it
		// again (hashicorp/raft-wal#31).
		to := last
		if bad <= snap {
			to = bad
		}
		if derr := w.DeleteRange(first, to); derr != nil {
			return read, fmt.Errorf("raftlog: drop corrupt log entries: %w", derr)
		}
		if bad <= snap {
			lg.Warn("corrupt log entry dropped with the entries before it; the snapshot holds them (-recover-from-snapshot)",
				"file", file, "index", bad, "from", first, "to", bad, "snapshot_index", snap, "err", err)
			continue
		}
		lg.Warn("corrupt log entry: log emptied, starting from the snapshot; writes lost (-recover-from-snapshot)",
			"file", file, "index", bad, "snapshot_index", snap, "lost_from", snap+1, "lost_to", last, "err", err)
		return read, nil
	}
}

// firstBadEntry returns the first index in [first, last] that cannot be
// read or fails its checks, with the reason; last+1 and nil if none.
func firstBadEntry(w *raftwal.WAL, first, last uint64) (uint64, error) {
	if last == 0 {
		return first, nil
	}
	var l raft.Log
	for i := first; i <= last; i++ {
		if err := w.GetLog(i, &l); err != nil {
			return i, err
		}
		if l.Index != i {
			return i, fmt.Errorf("%w: entry stored at %d says index %d", ErrCorruptEntry, i, l.Index)
		}
		if err := verifyEntry(&l); err != nil {
			return i, err
		}
	}
	return last + 1, nil
}

// checkLogFollowsSnapshot checks that the log continues the snapshot raft
// will restore, and covers any newer snapshot that failed its CRC:
// otherwise raft would start from the snapshot and silently lose the
// writes after it (and raft-wal would refuse the next append as out of
// order). An empty log beside a snapshot is what a restore or a snapshot
// installed from a leader leaves (raft empties the log), and is accepted
// when the stable state survived; a single agent's first segment always
// holds the bootstrap entry, so an empty first segment there is a lost log.
func checkLogFollowsSnapshot(cfg Config, w *raftwal.WAL, tail tailScan, sn snapState, logMissing bool, lg *slog.Logger) error {
	if !sn.any() || logMissing {
		return nil
	}
	first, _ := w.FirstIndex()
	last, _ := w.LastIndex()
	snap := sn.goodIndex()
	term, _ := w.GetUint64([]byte("CurrentTerm"))
	var problem string
	switch {
	case last == 0 && term == 0:
		problem = fmt.Sprintf("the log is empty and has lost its term beside a snapshot at index %d", sn.newest)
	case last == 0 && len(sn.bad) == 0 && (cfg.Stream != nil || tail.base > 1):
		return nil
	case last == 0:
		problem = fmt.Sprintf("the log is empty beside a snapshot at index %d", sn.newest)
	case last < sn.newest:
		problem = fmt.Sprintf("the log ends at index %d, before the snapshot at index %d", last, sn.newest)
	case first > snap+1:
		problem = fmt.Sprintf("the log starts at index %d, after a gap from the snapshot at index %d", first, snap)
	default:
		if len(sn.bad) > 0 {
			lg.Warn("newest snapshot is corrupt; starting from an older one and the log, which covers it",
				"snapshot", sn.bad[0].id, "err", sn.bad[0].err, "restoring_index", snap, "log_first", first, "log_last", last)
		}
		return nil
	}
	if len(sn.bad) > 0 {
		problem += fmt.Sprintf(" (snapshot %s at index %d is corrupt: %v; the newest good one is at index %d)",
			sn.bad[0].id, sn.bad[0].index, sn.bad[0].err, snap)
	}
	if !cfg.RecoverFromSnapshot {
		return fmt.Errorf("raftlog: %w: %s: starting would undo the writes after index %d; %s",
			ErrDataDir, problem, snap, recoverySteps(cfg.Dir))
	}
	keptTo := last
	if last > 0 && (last < snap || first > snap+1) {
		// The log cannot follow the snapshot: empty it, as raft does
		// after a restore, keeping the stable state (term and vote).
		if err := w.DeleteRange(first, last); err != nil {
			return fmt.Errorf("raftlog: empty the log: %w", err)
		}
		keptTo = 0
	}
	keptTo = max(keptTo, snap)
	attrs := []any{"problem", problem, "snapshot_index", snap, "restored_to", keptTo}
	if lostTo := max(last, sn.newest); lostTo > keptTo {
		attrs = append(attrs, "lost_from", keptTo+1, "lost_to", lostTo)
	}
	if last == 0 || keptTo == snap {
		attrs = append(attrs, "lost", fmt.Sprintf("any write after index %d that only the log held", keptTo))
	}
	lg.Warn("starting from the snapshot; writes lost (-recover-from-snapshot)", attrs...)
	return nil
}

var _ io.Closer = (*disk)(nil)
