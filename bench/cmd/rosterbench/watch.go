package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// watchScenario: many watchers on one service, then a write; for each
// watcher, the time from the write's reply to the watcher seeing it.
// roster: blocking GET ?index=N&wait=30s, re-issued after every answer,
// each watcher on its own keep-alive connection. etcd: one Watch stream
// per watcher on the service's prefix, spread over -watch-conns gRPC
// connections.
//
// Each round waits until every watcher is waiting again, lets the system
// settle, writes one new instance (key) and waits until every watcher saw
// it (at most 5 s, then the rest count as missed).
func watchScenario(ctx context.Context, b *bench) error {
	rr, err := watchRoster(ctx, b)
	if err != nil {
		return err
	}
	sr, err := watchRosterSSE(ctx, b)
	if err != nil {
		return err
	}
	er := &watchRun{}
	if b.etcd() {
		if er, err = watchEtcd(ctx, b); err != nil {
			return err
		}
	}
	el := er.lat.sorted()
	for _, side := range []struct {
		how string
		run *watchRun
	}{{"blocking GET", rr}, {"SSE stream", sr}} {
		rl := side.run.lat.sorted()
		b.add(row{scenario: "watch", metric: "p50 wake-up after write reply, " + side.how, unit: "ms", roster: ms(rl.percentile(50)), etcd: pctOrNaN(el, 50), ratio: true})
		b.add(row{scenario: "watch", metric: "p99 wake-up after write reply, " + side.how, unit: "ms", roster: ms(rl.percentile(99)), etcd: pctOrNaN(el, 99), ratio: true,
			goal: &goal{max: 25, maxIncl: true}})
		b.add(row{scenario: "watch", metric: "max wake-up, " + side.how, unit: "ms", roster: ms(rl.max()), etcd: pctOrNaN(el, 100), ratio: true})
		etcdMissed := nan
		if b.etcd() {
			etcdMissed = float64(er.missed)
		}
		b.add(row{scenario: "watch", metric: "missed wake-ups, " + side.how, unit: "", roster: float64(side.run.missed), etcd: etcdMissed, goal: &goal{max: 0, maxIncl: true}})
	}
	return nil
}

// watchRun collects one side's rounds.
type watchRun struct {
	lat    latencies
	missed int
	early  int // wake-ups observed before the writer had its reply
	writes latencies
}

// rounds drives the rounds: armed(r) reports every watcher waiting for
// change r (0-based); write makes change r and returns when it was
// acknowledged; seen[r][i] is when watcher i saw it (ns since base, 0 = not
// yet).
func (w *watchRun) rounds(ctx context.Context, b *bench, base time.Time, seen [][]atomic.Int64,
	armed func(r int) bool, write func(ctx context.Context, r int) error) error {
	settle := max(100*time.Millisecond, time.Duration(b.o.watchers)*300*time.Microsecond)
	for r := range b.o.watchRounds {
		if !poll(ctx, 15*time.Second, func() bool { return armed(r) }) {
			return fmt.Errorf("round %d: watchers not waiting after 15s", r)
		}
		time.Sleep(settle)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t0 := time.Now()
		err := write(wctx, r)
		w.writes = append(w.writes, time.Since(t0))
		cancel()
		if err != nil {
			return fmt.Errorf("round %d write: %w", r, err)
		}
		reply := int64(time.Since(base))
		all := func() bool {
			for i := range seen[r] {
				if seen[r][i].Load() == 0 {
					return false
				}
			}
			return true
		}
		poll(ctx, 5*time.Second, all)
		for i := range seen[r] {
			t := seen[r][i].Load()
			switch {
			case t == 0:
				w.missed++
			case t < reply:
				w.early++
				w.lat = append(w.lat, 0)
			default:
				w.lat = append(w.lat, time.Duration(t-reply))
			}
		}
	}
	return nil
}

// poll calls cond every millisecond until it holds or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return cond()
}

func newSeen(rounds, watchers int) [][]atomic.Int64 {
	s := make([][]atomic.Int64, rounds)
	for r := range s {
		s[r] = make([]atomic.Int64, watchers)
	}
	return s
}

func watchRoster(ctx context.Context, b *bench) (*watchRun, error) {
	const name = "watch"
	rs, err := b.startRoster(ctx, name)
	if err != nil {
		return nil, err
	}
	defer b.stopServer(rs)
	cl := newRosterClient(rs.addr, b.o.watchers+8)
	defer cl.close()
	for k := range b.o.watchInstances {
		if err := cl.register(ctx, "watch", fmt.Sprintf("i%04d", k), instanceJSON(k, "")); err != nil {
			return nil, err
		}
	}
	_, start, err := cl.countInstances(ctx, "watch")
	if err != nil {
		return nil, err
	}
	W, R := b.o.watchers, b.o.watchRounds
	base := time.Now()
	seen := newSeen(R, W)
	armedGen := make([]atomic.Int64, W) // changes seen when the watcher last (re)issued its query
	for i := range armedGen {
		armedGen[i].Store(-1)
	}
	var errs atomic.Int64
	wctx, stop := context.WithCancel(ctx)
	// Each watcher on its own connection through the minimal client (as
	// register and query): the load generator shares the two cores.
	raw := rawConns(rs.addr, W)
	defer closeRaw(raw)
	var wg sync.WaitGroup
	for i := range W {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx, gen := start, 0
			for iter := 0; iter < 4*R+1000 && wctx.Err() == nil; iter++ {
				armedGen[i].Store(int64(gen))
				path := "/v1/services/watch/instances?status=passing&wait=30s&index=" + strconv.FormatUint(idx, 10)
				st, got, err := raw[i].do(wctx, http.MethodGet, path, nil)
				now := int64(time.Since(base))
				if err != nil || st != http.StatusOK {
					if wctx.Err() == nil {
						errs.Add(1)
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				if got > idx {
					if gen < R {
						seen[gen][i].Store(now)
					}
					idx, gen = got, gen+1
				}
			}
		}()
	}
	run := &watchRun{}
	before, _ := cl.metrics(ctx)
	cpu, _ := startCPU(rs.pid())
	self, _ := startCPU(os.Getpid())
	wait := b.profile(rs, name, time.Duration(R)*time.Second)
	err = run.rounds(ctx, b, base, seen,
		allArmed(armedGen), registerRound(cl))
	agentCPU, _ := cpu.percent()
	harnessCPU, _ := self.percent()
	after, _ := cl.metrics(ctx)
	stop()
	wg.Wait()
	wait()
	if err != nil {
		return nil, err
	}
	b.note("%s/roster: the write itself took p50 %.2f ms; %d watchers, each a blocking GET on its own connection (rawhttp.go client); answers carry the whole service (%d→%d instances); agent CPU %.0f%% and load generator %.0f%% of one core over the rounds (incl. settle pauses); %d wake-ups arrived before the write's reply (counted as 0 ms); %d watcher request errors; %.0f%% of answers from the encoded-answer cache.",
		name, ms(run.writes.sorted().percentile(50)), W, b.o.watchInstances, b.o.watchInstances+R, agentCPU, harnessCPU, run.early, errs.Load(),
		100*delta(before, after, "roster_http_answer_cache_hits_total")/max(1, delta(before, after, "roster_http_requests_total"+`{code="200",route="GET /v1/services/{service}/instances"}`)))
	return run, nil
}

func watchEtcd(ctx context.Context, b *bench) (*watchRun, error) {
	es, conns, err := b.startEtcd(ctx, "watch", b.o.watchConns)
	if err != nil {
		return nil, err
	}
	defer b.stopServer(es)
	defer closeAll(conns)
	prefix := []byte("/watch/")
	for k := range b.o.watchInstances {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := conns[0].Put(cctx, fmt.Appendf(nil, "/watch/i%04d", k), instanceJSON(k, ""), 0)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	W, R := b.o.watchers, b.o.watchRounds
	base := time.Now()
	seen := newSeen(R, W)
	var created atomic.Int64
	var errs atomic.Int64
	var firstErr atomic.Value
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range W {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := conns[i%len(conns)].WatchStream(wctx, prefix)
			if err != nil {
				if wctx.Err() == nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				return
			}
			created.Add(1)
			gen := 0
			var msg []byte
			for iter := 0; iter < 4*R+1000 && wctx.Err() == nil; iter++ {
				if err := st.RecvMsg(&msg); err != nil {
					if wctx.Err() == nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
					return
				}
				now := int64(time.Since(base))
				ev, err := parseWatchResponse(msg)
				if err != nil || ev.events == 0 {
					continue
				}
				if gen < R {
					seen[gen][i].Store(now)
				}
				gen++
			}
		}()
	}
	run := &watchRun{}
	cpu, _ := startCPU(es.pid())
	self, _ := startCPU(os.Getpid())
	err = run.rounds(ctx, b, base, seen,
		func(int) bool { return created.Load() == int64(W) },
		func(ctx context.Context, r int) error {
			_, err := conns[0].Put(ctx, fmt.Appendf(nil, "/watch/r%04d", r), instanceJSON(100000+r, ""), 0)
			return err
		})
	etcdCPU, _ := cpu.percent()
	harnessCPU, _ := self.percent()
	stop()
	wg.Wait()
	if err != nil {
		if fe := firstErr.Load(); fe != nil {
			err = fmt.Errorf("%w (first watcher error: %v)", err, fe)
		}
		return nil, err
	}
	b.note("watch/etcd: the write itself took p50 %.2f ms; %d Watch streams over %d gRPC connections, each receiving only the event; etcd CPU %.0f%% and load generator %.0f%% of one core over the rounds; %d wake-ups before the write's reply; %d stream errors.",
		ms(run.writes.sorted().percentile(50)), W, len(conns), etcdCPU, harnessCPU, run.early, errs.Load())
	return run, nil
}

// watchRosterSSE: the same rounds with each watcher holding one SSE stream
// (GET /v1/services/watch/watch) on its own connection; a watcher sees a
// write when the change event carrying it arrives.
func watchRosterSSE(ctx context.Context, b *bench) (*watchRun, error) {
	rs, err := b.startRoster(ctx, "watch-sse")
	if err != nil {
		return nil, err
	}
	defer b.stopServer(rs)
	cl := newRosterClient(rs.addr, b.o.watchers+8)
	defer cl.close()
	for k := range b.o.watchInstances {
		if err := cl.register(ctx, "watch", fmt.Sprintf("i%04d", k), instanceJSON(k, "")); err != nil {
			return nil, err
		}
	}
	W, R := b.o.watchers, b.o.watchRounds
	base := time.Now()
	seen := newSeen(R, W)
	armedGen := make([]atomic.Int64, W) // changes seen while the stream is open
	for i := range armedGen {
		armedGen[i].Store(-1)
	}
	var errs atomic.Int64
	var firstErr atomic.Value
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range W {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(wctx, http.MethodGet, cl.base+"/v1/services/watch/watch?status=passing", nil)
			if err != nil {
				return
			}
			resp, err := cl.hc.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				if wctx.Err() == nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Errorf("open stream: %v", err))
				}
				if resp != nil {
					resp.Body.Close()
				}
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 4<<20)
			gen := 0
			event := ""
			for iter := 0; iter < 100*R+1000 && sc.Scan(); iter++ {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "event: "):
					event = strings.TrimPrefix(line, "event: ")
				case strings.HasPrefix(line, "data: "):
					now := int64(time.Since(base))
					switch event {
					case "snapshot":
						armedGen[i].Store(int64(gen))
					case "change":
						if gen < R {
							seen[gen][i].Store(now)
						}
						gen++
						armedGen[i].Store(int64(gen))
					}
				}
			}
			if err := sc.Err(); err != nil && wctx.Err() == nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	run := &watchRun{}
	cpu, _ := startCPU(rs.pid())
	self, _ := startCPU(os.Getpid())
	wait := b.profile(rs, "watch-sse", time.Duration(R)*time.Second)
	err = run.rounds(ctx, b, base, seen,
		allArmed(armedGen), registerRound(cl))
	agentCPU, _ := cpu.percent()
	harnessCPU, _ := self.percent()
	stop()
	wg.Wait()
	wait()
	if err != nil {
		if fe := firstErr.Load(); fe != nil {
			err = fmt.Errorf("%w (first watcher error: %v)", err, fe)
		}
		return nil, err
	}
	b.note("watch/roster SSE: the write itself took p50 %.2f ms; %d watchers, each an SSE stream on its own connection receiving only the change; agent CPU %.0f%% and load generator %.0f%% of one core over the rounds (incl. settle pauses); %d wake-ups arrived before the write's reply (counted as 0 ms); %d stream errors.",
		ms(run.writes.sorted().percentile(50)), W, agentCPU, harnessCPU, run.early, errs.Load())
	return run, nil
}

// allArmed reports, for round r, that every watcher has seen r changes and
// is waiting for the next.
func allArmed(armedGen []atomic.Int64) func(r int) bool {
	return func(r int) bool {
		for i := range armedGen {
			if armedGen[i].Load() != int64(r) {
				return false
			}
		}
		return true
	}
}

// registerRound is a round's write: one new instance of the watched
// service.
func registerRound(cl *rosterClient) func(ctx context.Context, r int) error {
	return func(ctx context.Context, r int) error {
		return cl.register(ctx, "watch", fmt.Sprintf("r%04d", r), instanceJSON(100000+r, ""))
	}
}
