package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// memoryScenario: the agent's resident memory holding a fleet of TTL
// instances after registering and idling (-mem-settle), then two restarts
// on the same data dir, each timed from starting the process until
// /readyz answers 200 and the registry lists every instance:
//   - right after the registrations, when the log has not been compacted
//     into a snapshot yet (the agent replays the whole log), and
//   - once the agent took its periodic snapshot (it restores the snapshot
//     and replays only what followed).
//
// etcd: the same number of keys, each with its own lease (TTL
// -register-ttl, so none expires during the measurement).
func memoryScenario(ctx context.Context, b *bench) error {
	f := fleet{n: b.o.memInstances, services: b.o.memServices, prefix: "mem"}
	dir := b.newDir("roster-memory")
	rs, err := b.startRosterIn(ctx, dir)
	if err != nil {
		return err
	}
	cl := newRosterClient(rs.addr, 40)
	took, err := registerFleet(ctx, cl, f, b.o.registerTTL, 32, nil)
	if err != nil {
		cl.close()
		b.stopServer(rs)
		return fmt.Errorf("registering %d instances: %w", f.n, err)
	}
	rssNow, _, _ := memStatus(rs.pid())
	sleepCtx(ctx, b.o.memSettle)
	rss, hwm, err := memStatus(rs.pid())
	if err != nil {
		cl.close()
		b.stopServer(rs)
		return err
	}
	m, _ := cl.metrics(ctx)
	cl.close()
	if rs.pprof != "" {
		b.saveHeapProfile(rs, "memory-heap")
	}
	b.note("memory/roster: %d instances over %d services registered in %s; RSS %.1f MB right after, %.1f MB after %s idle (peak so far %.1f MB); Go heap in use %.1f MB (live + not yet collected), heap objects %.0f, runtime total from OS %.1f MB; %.0f bytes of RSS per instance.",
		f.n, f.services, took.Round(time.Millisecond), mb(rssNow), mb(rss), b.o.memSettle, mb(hwm),
		m["go_memstats_heap_inuse_bytes"]/(1<<20), m["go_memstats_heap_objects"], m["go_memstats_sys_bytes"]/(1<<20), float64(rss)/float64(f.n))

	// Restart 1: whatever is on disk now (normally the whole log).
	snapBefore := hasSnapshot(dir)
	replay, rs, err := b.restart(ctx, rs, dir, f, "memory-restart")
	if err != nil {
		return err
	}
	b.note("memory/roster restart 1 (%s): start→serving all %d instances %s.", snapshotWord(snapBefore), f.n, replay.Round(time.Millisecond))

	// Restart 2: after the agent's periodic snapshot.
	fromSnap := nan
	rssAfter := nan
	switch {
	case f.n < agentSnapshotThreshold:
		b.stopServer(rs)
		b.note("memory/roster: %d instances are fewer than the agent's snapshot threshold (%d entries); restart from snapshot not measured.", f.n, agentSnapshotThreshold)
	case poll(ctx, 3*time.Minute, func() bool { return hasSnapshot(dir) }):
		sleepCtx(ctx, 2*time.Second) // let the snapshot finish and the log compact
		_, peak, _ := memStatus(rs.pid())
		d, rs2, err := b.restart(ctx, rs, dir, f, "")
		if err != nil {
			return err
		}
		fromSnap = d.Seconds()
		sleepCtx(ctx, min(b.o.memSettle, 5*time.Second))
		r, _, _ := memStatus(rs2.pid())
		rssAfter = mb(r)
		b.stopServer(rs2)
		b.note("memory/roster restart 2 (from the periodic snapshot): start→serving all %s; RSS after it %.1f MB; peak RSS of the agent that took the snapshot %.1f MB.",
			d.Round(time.Millisecond), rssAfter, mb(peak))
	default:
		b.stopServer(rs)
		b.note("memory/roster: the agent took no snapshot within 3 minutes; restart from snapshot not measured.")
	}

	etcdRSS := nan
	if b.etcd() {
		if etcdRSS, err = memoryEtcd(ctx, b, f); err != nil {
			return err
		}
	}
	b.add(row{scenario: "memory", metric: fmt.Sprintf("RSS with %d instances", f.n), unit: "MB", roster: mb(rss), etcd: etcdRSS, ratio: true,
		goal: &goal{max: 150, maxIncl: true}})
	b.add(row{scenario: "memory", metric: "restart to serving all, " + snapshotWord(snapBefore), unit: "s", roster: replay.Seconds(), etcd: nan,
		goal: &goal{max: 3}})
	b.add(row{scenario: "memory", metric: "restart to serving all, from snapshot", unit: "s", roster: fromSnap, etcd: nan,
		goal: &goal{max: 3}})
	b.add(row{scenario: "memory", metric: "RSS after restart from snapshot", unit: "MB", roster: rssAfter, etcd: nan})
	return nil
}

// agentSnapshotThreshold is the agent's default -snapshot-threshold: it
// snapshots (every -snapshot-interval, 30s) once this many entries follow
// the last snapshot.
const agentSnapshotThreshold = 16384

func snapshotWord(had bool) string {
	if had {
		return "snapshot + log tail"
	}
	return "whole log replayed"
}

// hasSnapshot reports whether the agent's data dir holds a completed raft
// snapshot (hashicorp/raft's file store: snapshots/<id>/state.bin and
// meta.json).
func hasSnapshot(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "meta.json"))
	return len(m) > 0
}

// restart stops s with SIGTERM, starts a new agent on dir, and returns the
// time from starting it until every instance of f is listed.
func (b *bench) restart(ctx context.Context, s *server, dir string, f fleet, profile string) (time.Duration, *server, error) {
	stopTook, err := s.stop(30 * time.Second)
	if err != nil {
		return 0, nil, fmt.Errorf("roster shutdown: %w", err)
	}
	var env []string
	if b.o.profileDir != "" && profile != "" {
		env = append(env, "ROSTERPROF_STARTUP_CPUPROFILE="+filepath.Join(b.o.profileDir, profile+".pprof"), "ROSTERPROF_STARTUP_SECONDS=10")
	}
	t0 := time.Now()
	s2, err := b.startRosterIn(ctx, dir, env...)
	if err != nil {
		return 0, nil, err
	}
	ready := time.Since(t0)
	cl := newRosterClient(s2.addr, 4)
	defer cl.close()
	all := poll(ctx, 60*time.Second, func() bool {
		n, err := cl.totalInstances(ctx)
		return err == nil && n == f.n
	})
	took := time.Since(t0)
	if !all {
		b.stopServer(s2)
		return 0, nil, fmt.Errorf("after restart the agent did not list all %d instances within 60s", f.n)
	}
	one, _, _ := cl.countInstances(ctx, f.service(0))
	b.note("memory/roster restart: SIGTERM→exit %s; start→/readyz 200 %s; start→all listed %s; one service lists %d.",
		stopTook.Round(time.Millisecond), ready.Round(time.Millisecond), took.Round(time.Millisecond), one)
	return took, s2, nil
}

func memoryEtcd(ctx context.Context, b *bench, f fleet) (float64, error) {
	ttl, err := time.ParseDuration(b.o.registerTTL)
	if err != nil {
		return nan, fmt.Errorf("-register-ttl: %w", err)
	}
	es, conns, err := b.startEtcd(ctx, "memory", 32)
	if err != nil {
		return nan, err
	}
	defer b.stopServer(es)
	took, err := leaseFleet(ctx, conns, f, ttl, 32, nil, nil)
	closeAll(conns)
	if err != nil {
		return nan, err
	}
	sleepCtx(ctx, b.o.memSettle)
	r, h, err := memStatus(es.pid())
	if err != nil {
		return nan, err
	}
	b.note("memory/etcd: %d keys each with its own lease written in %s; RSS %.1f MB after %s idle (peak %.1f MB); %.0f bytes per key.",
		f.n, took.Round(time.Millisecond), mb(r), b.o.memSettle, mb(h), float64(r)/float64(f.n))
	return mb(r), nil
}

// saveHeapProfile saves the profiling agent's heap profile (after a GC).
func (b *bench) saveHeapProfile(s *server, name string) {
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + s.pprof + "/debug/pprof/heap?gc=1")
	if err != nil {
		progress("heap profile: %v", err)
		return
	}
	defer resp.Body.Close()
	path := filepath.Join(b.o.profileDir, name+".pprof")
	out, err := os.Create(path)
	if err != nil {
		progress("heap profile: %v", err)
		return
	}
	defer out.Close()
	if _, err := io.Copy(out, resp.Body); err != nil {
		progress("heap profile: %v", err)
		return
	}
	progress("heap profile saved: %s", path)
}
