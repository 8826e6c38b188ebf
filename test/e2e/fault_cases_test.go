package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFault runs every fault scenario on the harness of fault_test.go:
// clients write and read through every agent while the fault happens;
// the history must be linearizable and, once the fault is healed, every
// agent must hold the state it implies. One subtest per fault:
//
//	go test -race -run 'TestFault/kill-leader' ./test/e2e/
//
// `make soak` runs them all many times (test/e2e/README.md).
func TestFault(t *testing.T) {
	for _, fc := range faultCases {
		t.Run(fc.name, func(t *testing.T) {
			f := newFault(t, fc.opts)
			f.load()
			f.waitOps(150, 15*time.Second)
			fc.inject(f)
			f.finish()
		})
	}
}

type faultCase struct {
	name string
	opts faultOptions
	// inject causes the fault under load and heals it: on return every
	// agent is up again.
	inject func(f *faultRun)
}

var faultCases = []faultCase{
	{"kill-leader", faultOptions{servers: 3}, func(f *faultRun) {
		li := f.leader()
		f.kill(li)
		f.leader()
		f.waitAcked(100, 15*time.Second)
		f.event("the survivors took 100 writes")
		f.restart(li)
	}},
	{"kill-follower", faultOptions{servers: 3}, func(f *faultRun) {
		fi := (f.leader() + 1) % 3
		f.kill(fi)
		f.waitAcked(100, 15*time.Second)
		f.event("the survivors took 100 writes")
		f.restart(fi)
	}},
}

func init() {
	faultCases = append(faultCases,
		faultCase{"kill-two-of-five", faultOptions{servers: 5}, func(f *faultRun) {
			li := f.leader()
			other := (li + 2) % 5
			f.kill(li)
			f.kill(other)
			f.leader()
			f.waitAcked(100, 15*time.Second)
			f.event("the three survivors took 100 writes")
			f.restart(li)
			f.restart(other)
		}},
		faultCase{"pause-leader", faultOptions{servers: 3}, pauseLeader},
		faultCase{"partition-leader-minority", faultOptions{servers: 5, netns: true}, func(f *faultRun) {
			li := f.leader()
			oldID := f.leaderID(li)
			side := []int{li, (li + 1) % 5}
			var majority []int
			for i := range 5 {
				if !slices.Contains(side, i) {
					majority = append(majority, i)
				}
			}
			f.lab.split(side)
			f.event("partition: agents %v (the leader and one more) cut off from %v", side, majority)
			nl := f.leaderAmong(majority, oldID)
			f.event("the majority elected agent %d", nl)
			// Clients wait up to 5 s for answers from the cut-off pair,
			// so fewer writes get through; some must.
			f.waitAcked(20, 20*time.Second)
			f.event("the majority took 20 writes")
			f.lab.healSplit(side)
			f.event("partition healed")
		}},
		faultCase{"partition-flapping", faultOptions{servers: 3, netns: true}, func(f *faultRun) {
			rng := rand.New(rand.NewPCG(f.seed, 99))
			end := time.Now().Add(10 * time.Second)
			for i := 0; time.Now().Before(end); i++ {
				target := f.leaderNow()
				if i%2 == 1 || target < 0 {
					target = rng.IntN(3)
				}
				f.lab.cut(target)
				f.event("agent %d cut off", target)
				f.hold(time.Second)
				f.lab.heal(target)
				f.event("agent %d healed", target)
				f.hold(time.Second)
			}
		}},
		faultCase{"disk-full", faultOptions{servers: 3, tmpfs: "96m"}, diskFull},
		faultCase{"restart-rolling", faultOptions{servers: 3}, func(f *faultRun) {
			for i, nd := range f.c.nodes {
				nd.down.Store(true)
				if err := nd.a.Stop(); err != nil {
					f.t.Fatalf("stop agent %d: %v", i, err)
				}
				f.event("agent %d stopped (SIGTERM)", i)
				f.restart(i)
				f.waitAcked(30, 15*time.Second)
			}
		}},
		faultCase{"restart-all", faultOptions{servers: 3}, func(f *faultRun) {
			for i := range f.c.nodes {
				f.c.nodes[i].down.Store(true)
			}
			var wg sync.WaitGroup
			for _, nd := range f.c.nodes {
				wg.Go(nd.a.Kill)
			}
			wg.Wait()
			f.event("every agent killed (kill -9)")
			for _, nd := range f.c.nodes {
				nd.a.Restart(f.t) // NoWaitReady: none is ready alone
			}
			for _, nd := range f.c.nodes {
				nd.a.WaitReady(f.t, 30*time.Second)
			}
			for _, nd := range f.c.nodes {
				u := nd.a.URL
				nd.u.Store(&u)
				nd.down.Store(false)
			}
			f.event("every agent restarted and ready")
		}},
	)
}

// pauseLeader stops the leader with SIGSTOP (a long GC pause) until the
// others have elected a new leader and taken writes, then lets it run
// again. Requests reach the paused agent while it sleeps and are answered
// when it wakes: among them a deregister, a heartbeat and a consistent
// read of instances registered through the new leader during the pause,
// none of which may be answered 404 from the old leader's stale state.
func pauseLeader(f *faultRun) {
	t := f.t
	li := f.leader()
	oldID := f.leaderID(li)
	old := f.c.nodes[li]
	old.down.Store(true) // the clients use the others; the probes below go to it
	if err := syscall.Kill(old.a.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	f.event("agent %d (the leader) stopped with SIGSTOP", li)
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(old.a.Pid(), syscall.SIGCONT)
		}
	}
	defer resume()
	var others []int
	for i := range f.c.nodes {
		if i != li {
			others = append(others, i)
		}
	}
	nl := f.leaderAmong(others, oldID)
	f.event("agent %d elected", nl)
	f.waitAcked(50, 15*time.Second)

	// Instances registered through the new leader while the old sleeps.
	probes := []linInput{{kind: linDeregister, key: "p-del"}, {kind: linHeartbeat, key: "p-beat"}, {kind: linRead, key: "p-read"}}
	client := f.clients + 1
	for _, p := range probes {
		in := linInput{kind: linRegister, key: p.key, value: "10.99.0.1"}
		if out, what, _ := f.do(f.ctx, client, nl, in); !out.ok {
			t.Fatalf("register %s through the new leader: %s", p.key, what)
		}
	}
	f.event("probes registered through agent %d", nl)
	// The probes, and some of the usual workload, go to the sleeper.
	var wrote atomic.Int32 // requests written to the sleeper's socket
	var done sync.WaitGroup
	answers := make([]string, len(probes))
	outs := make([]linOutput, len(probes))
	rng := rand.New(rand.NewPCG(f.seed, 42))
	var queued []linInput
	queued = append(queued, probes...)
	for i := range 12 {
		in := linInput{key: f.keys[rng.IntN(len(f.keys))], kind: linKind(rng.IntN(4))}
		if in.kind == linRegister {
			in.value = fmt.Sprintf("10.98.0.%d", i)
		}
		queued = append(queued, in)
	}
	for i, in := range queued {
		done.Add(1)
		var once sync.Once
		count := func() { wrote.Add(1) }
		ctx := httptrace.WithClientTrace(f.ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(count) }})
		go func() {
			defer done.Done()
			defer once.Do(count)
			out, what, _ := f.do(ctx, client+1+i, li, in)
			if i < len(probes) {
				outs[i], answers[i] = out, what
			}
		}()
	}
	if _, ok := pollFor(5*time.Second, func() bool { return int(wrote.Load()) == len(queued) }); !ok {
		t.Fatalf("the requests to the paused agent were not all sent within 5s")
	}
	f.hold(2*time.Second - time.Since(stopped))
	resume()
	f.event("agent %d continued (SIGCONT) after %v", li, time.Since(stopped).Round(time.Millisecond))
	done.Wait()
	for i, p := range probes {
		f.event("probe %s %s to the woken agent: %s", kindName(p.kind), p.key, answers[i])
		if outs[i].notFound {
			t.Errorf("%s of %s, registered through the new leader during the pause, answered %q by the woken old leader: a stale answer",
				kindName(p.kind), p.key, answers[i])
		}
	}
	old.down.Store(false)
}

// diskFull runs the agents on small tmpfs data directories (96 MiB: the
// log preallocates 64 MiB segments, so an agent does not start on less)
// and fills the leader's: the others carry on; whatever fails on the full
// agent fails with a clear error; once the space is back it catches up,
// and it restarts from its own disk (kill -9 first) to show nothing was
// corrupted.
func diskFull(f *faultRun) {
	t := f.t
	li := f.leader()
	dir := f.c.nodes[li].a.DataDir
	filler := filepath.Join(dir, "filler")
	fh, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 256<<10)
	written := 0
	for {
		n, err := fh.Write(chunk)
		written += n
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	_ = fh.Close()
	f.event("agent %d's data dir (the leader's) is full: %d KiB of filler", li, written>>10)
	f.waitAcked(200, 20*time.Second)
	f.event("the cluster took 200 writes with agent %d's disk full", li)
	var full []string
	for _, line := range strings.Split(f.c.nodes[li].a.Logs(), "\n") {
		if strings.Contains(line, "no space left on device") {
			full = append(full, line)
		}
	}
	if len(full) > 0 {
		t.Logf("agent %d says its disk is full (%d lines), e.g. %.300s", li, len(full), full[0])
	} else {
		t.Logf("agent %d logged no write failure: its log segment's preallocated space took the writes", li)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	f.event("filler removed: space is back")
	f.converged()
	f.kill(li)
	f.restart(li)
}
