package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// heartbeatScenario: a fleet of TTL instances each heartbeating every
// -hb-interval, evenly spread; the agent's CPU over a window, first with
// one HTTP request per heartbeat, then with the batch endpoint. etcd:
// -etcd-leases leases (one key each) renewed every -hb-interval over
// LeaseKeepAlive streams, one stream per connection as etcd's client does
// per process.
func heartbeatScenario(ctx context.Context, b *bench) error {
	single, batch, idle, err := heartbeatRoster(ctx, b)
	if err != nil {
		return err
	}
	et := hbWindow{cpu: nan, rate: nan}
	if b.etcd() {
		if et, err = heartbeatEtcd(ctx, b); err != nil {
			return err
		}
	}
	per := func(w hbWindow) float64 { return w.cpu / (w.rate / 10000) }
	b.add(row{scenario: "heartbeat", metric: "single HTTP: renewals", unit: "/s", roster: single.rate, etcd: et.rate})
	b.add(row{scenario: "heartbeat", metric: "single HTTP: server CPU", unit: "% of a core", roster: single.cpu, etcd: et.cpu, ratio: true,
		goal: &goal{max: 50}})
	b.add(row{scenario: "heartbeat", metric: "batch: renewals", unit: "/s", roster: batch.rate, etcd: et.rate})
	b.add(row{scenario: "heartbeat", metric: "batch: server CPU", unit: "% of a core", roster: batch.cpu, etcd: et.cpu, ratio: true,
		goal: &goal{max: 50}})
	b.add(row{scenario: "heartbeat", metric: "single HTTP: CPU per 10k renewals/s", unit: "% of a core", roster: per(single), etcd: per(et), ratio: true,
		goal: &goal{maxRatio: 1.0 / 9}})
	b.add(row{scenario: "heartbeat", metric: "batch: CPU per 10k renewals/s", unit: "% of a core", roster: per(batch), etcd: per(et), ratio: true,
		goal: &goal{maxRatio: 1.0 / 9}})
	b.add(row{scenario: "heartbeat", metric: "idle CPU, leases held, no heartbeats", unit: "% of a core", roster: idle, etcd: nan})
	return nil
}

// hbWindow is one measured heartbeat window.
type hbWindow struct {
	cpu, rate, harnessCPU float64
}

// hbCounters are what the heartbeat workers count.
type hbCounters struct {
	ok, failed, notFound, dropped atomic.Int64
	mu                            sync.Mutex
	lat                           latencies
	firstErr                      error
}

func (c *hbCounters) fail(err error) {
	c.failed.Add(1)
	c.mu.Lock()
	if c.firstErr == nil {
		c.firstErr = err
	}
	c.mu.Unlock()
}

func (c *hbCounters) record(d time.Duration) {
	c.mu.Lock()
	if len(c.lat) < 2_000_000 {
		c.lat = append(c.lat, d)
	}
	c.mu.Unlock()
}

// heartbeater runs one mode's schedule and workers until stop is called.
type heartbeater struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (h *heartbeater) stop() { h.cancel(); h.wg.Wait() }

// startHeartbeats emits jobs on a schedule of slots and runs workers over
// them. The schedule ends after limit at the latest.
func startHeartbeats[J any](ctx context.Context, slots int, interval, limit time.Duration, workers int,
	emit func(slot int, jobs chan<- J), work func(ctx context.Context, job J)) *heartbeater {
	hctx, cancel := context.WithCancel(ctx)
	h := &heartbeater{cancel: cancel}
	jobs := make(chan J, 1<<17)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer close(jobs)
		schedule(hctx, slots, interval, time.Now().Add(limit), func(slot int) { emit(slot, jobs) })
	}()
	for range workers {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for j := range jobs {
				if hctx.Err() != nil {
					continue // drain without working
				}
				work(hctx, j)
			}
		}()
	}
	return h
}

func heartbeatRoster(ctx context.Context, b *bench) (single, batch hbWindow, idle float64, err error) {
	f := fleet{n: b.o.hbInstances, services: b.o.hbServices, prefix: "hb"}
	interval := b.o.hbInterval
	limit := 10*time.Minute + 3*b.o.hbWindow // bounds the schedules
	rs, err := b.startRoster(ctx, "heartbeat")
	if err != nil {
		return single, batch, 0, err
	}
	defer b.stopServer(rs)
	cl := newRosterClient(rs.addr, b.o.hbConns+b.o.hbBatchConns+40)
	defer cl.close()
	paths := make([]string, f.n)
	for k := range paths {
		paths[k] = "/v1/services/" + f.service(k) + "/instances/" + f.id(k) + "/heartbeat"
	}
	registered := make([]atomic.Bool, f.n)

	// Single heartbeats run from the start, so the first instances keep
	// their leases while the rest register.
	const singleSlots = 500
	sc := &hbCounters{}
	emitSingle := func(slot int, jobs chan<- int) {
		for k := slot; k < f.n; k += singleSlots {
			if !registered[k].Load() {
				continue
			}
			select {
			case jobs <- k:
			default:
				sc.dropped.Add(1)
			}
		}
	}
	workSingle := func(ctx context.Context, k int) {
		t0 := time.Now()
		st, _, body, err := cl.do(ctx, http.MethodPut, paths[k], nil, false)
		switch {
		case err == nil && st == http.StatusNoContent:
			sc.ok.Add(1)
			sc.record(time.Since(t0))
		case err == nil && st == http.StatusNotFound:
			sc.notFound.Add(1)
		case ctx.Err() == nil:
			sc.fail(expect(st, body, err, http.StatusNoContent))
		}
	}
	hbSingle := startHeartbeats(ctx, singleSlots, interval, limit, b.o.hbConns, emitSingle, workSingle)
	took, err := registerFleet(ctx, cl, f, b.o.hbTTL.String(), 32, registered)
	if err != nil {
		hbSingle.stop()
		return single, batch, 0, fmt.Errorf("registering %d instances: %w", f.n, err)
	}
	base, _ := cl.metrics(ctx)
	b.note("heartbeat/roster: %d instances over %d services registered (TTL %s) in %s (%.0f/s) while heartbeats started.",
		f.n, f.services, b.o.hbTTL, took.Round(time.Millisecond), float64(f.n)/took.Seconds())

	sleepCtx(ctx, interval) // every instance is now in its steady cycle
	single, err = b.hbMeasure(ctx, rs, cl, "heartbeat-single")
	if err != nil {
		hbSingle.stop()
		return single, batch, 0, err
	}
	sl := sc.lat.sorted()
	b.note("heartbeat/roster single: %d connections, one PUT per heartbeat: %.0f renewals/s, request p50 %.2f ms p99 %.2f ms; harness CPU %.0f%%; %d failed, %d not found, %d not sent (backlog).",
		b.o.hbConns, single.rate, ms(sl.percentile(50)), ms(sl.percentile(99)), single.harnessCPU, sc.failed.Load(), sc.notFound.Load(), sc.dropped.Load())
	if sc.firstErr != nil {
		b.note("heartbeat/roster single: first failure: %v", sc.firstErr)
	}

	// Batch heartbeats: each slot is one request of up to -hb-batch.
	slots := (f.n + b.o.hbBatch - 1) / b.o.hbBatch
	bc := &hbCounters{}
	emitBatch := func(slot int, jobs chan<- []byte) {
		var sb strings.Builder
		sb.WriteString(`{"instances":[`)
		first := true
		for k := slot; k < f.n; k += slots {
			if !first {
				sb.WriteByte(',')
			}
			first = false
			fmt.Fprintf(&sb, `{"service":%q,"id":%q}`, f.service(k), f.id(k))
		}
		sb.WriteString(`]}`)
		select {
		case jobs <- []byte(sb.String()):
		default:
			bc.dropped.Add(1)
		}
	}
	workBatch := func(ctx context.Context, body []byte) {
		t0 := time.Now()
		st, _, resp, err := cl.do(ctx, http.MethodPut, "/v1/heartbeats", body, true)
		if err != nil || st != http.StatusOK {
			if ctx.Err() == nil {
				bc.fail(expect(st, resp, err, http.StatusOK))
			}
			return
		}
		var ans struct {
			Renewed  int               `json:"renewed"`
			NotFound []json.RawMessage `json:"not_found"`
		}
		if err := json.Unmarshal(resp, &ans); err != nil {
			bc.fail(err)
			return
		}
		bc.ok.Add(int64(ans.Renewed))
		bc.notFound.Add(int64(len(ans.NotFound)))
		bc.record(time.Since(t0))
	}
	// Start batch heartbeats before stopping single ones, so that no
	// instance goes without for longer than an interval.
	hbBatch := startHeartbeats(ctx, slots, interval, limit, b.o.hbBatchConns, emitBatch, workBatch)
	hbSingle.stop()
	sleepCtx(ctx, interval)
	batch, err = b.hbMeasure(ctx, rs, cl, "heartbeat-batch")
	hbBatch.stop()
	if err != nil {
		return single, batch, 0, err
	}
	bl := bc.lat.sorted()
	b.note("heartbeat/roster batch: %d connections, %d instances per PUT /v1/heartbeats (%d requests/s): %.0f renewals/s, request p50 %.2f ms p99 %.2f ms; harness CPU %.0f%%; %d failed requests, %d not found, %d not sent.",
		b.o.hbBatchConns, min(b.o.hbBatch, f.n), int(float64(slots)/interval.Seconds()), batch.rate, ms(bl.percentile(50)), ms(bl.percentile(99)),
		batch.harnessCPU, bc.failed.Load(), bc.notFound.Load(), bc.dropped.Load())
	if bc.firstErr != nil {
		b.note("heartbeat/roster batch: first failure: %v", bc.firstErr)
	}

	// Idle: leases held, no heartbeats, for less than TTL-interval so none lapse.
	idle = nan
	if d := min(2*time.Second, b.o.hbTTL-interval-2*time.Second); d >= 500*time.Millisecond {
		cpu, _ := startCPU(rs.pid())
		sleepCtx(ctx, d)
		idle, _ = cpu.percent()
	}
	end, _ := cl.metrics(ctx)
	expired := delta(base, end, "roster_lease_expired_total")
	b.note("heartbeat/roster: leases expired during the run: %.0f; self-preservation at end: %.0f; leases held: %.0f.",
		expired, end["roster_lease_self_preservation"], end["roster_lease_active"])
	if expired > 0 {
		b.note("heartbeat/roster: WARNING: leases expired although every instance was heartbeated on schedule by the harness: heartbeats arrived late (a starved machine?) or the agent lost renewals; the CPU figures include the expiry writes.")
	}
	return single, batch, idle, nil
}

// hbMeasure measures the agent's CPU and renewals over one window.
func (b *bench) hbMeasure(ctx context.Context, rs *server, cl *rosterClient, name string) (hbWindow, error) {
	before, err := cl.metrics(ctx)
	if err != nil {
		return hbWindow{}, err
	}
	cpu, err := startCPU(rs.pid())
	if err != nil {
		return hbWindow{}, err
	}
	self, _ := startCPU(os.Getpid())
	start := time.Now()
	wait := b.profile(rs, name, b.o.hbWindow)
	sleepCtx(ctx, b.o.hbWindow)
	w := hbWindow{}
	w.cpu, err = cpu.percent()
	w.harnessCPU, _ = self.percent()
	after, merr := cl.metrics(ctx)
	elapsed := time.Since(start)
	wait()
	if err == nil {
		err = merr
	}
	w.rate = delta(before, after, "roster_lease_renewals_total") / elapsed.Seconds()
	return w, err
}

func heartbeatEtcd(ctx context.Context, b *bench) (hbWindow, error) {
	f := fleet{n: b.o.etcdLeases, services: max(1, b.o.etcdLeases/100), prefix: "hb"}
	interval := b.o.hbInterval
	es, conns, err := b.startEtcd(ctx, "heartbeat", b.o.hbConns)
	if err != nil {
		return hbWindow{}, err
	}
	defer b.stopServer(es)
	defer closeAll(conns)

	// One keep-alive stream per connection, each with a sender and a
	// receiver; lease k is renewed on stream k mod streams.
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var renewed, expired, failed atomic.Int64
	streams := make([]grpc.ClientStream, len(conns))
	for i, c := range conns {
		if streams[i], err = c.KeepAliveStream(sctx); err != nil {
			return hbWindow{}, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var msg []byte
			for sctx.Err() == nil {
				if err := streams[i].RecvMsg(&msg); err != nil {
					if sctx.Err() == nil {
						failed.Add(1)
					}
					return
				}
				if ttl, err := keepAliveTTL(msg); err == nil && ttl > 0 {
					renewed.Add(1)
				} else {
					expired.Add(1)
				}
			}
		}()
	}
	ids := make([]int64, f.n)
	granted := make([]atomic.Bool, f.n)
	sendMu := make([]sync.Mutex, len(streams))
	const slots = 500
	emit := func(slot int, jobs chan<- int) {
		for k := slot; k < f.n; k += slots {
			if granted[k].Load() {
				select {
				case jobs <- k:
				default:
					failed.Add(1)
				}
			}
		}
	}
	work := func(ctx context.Context, k int) {
		s := k % len(streams)
		sendMu[s].Lock()
		err := streams[s].SendMsg(keepAliveRequest(ids[k]))
		sendMu[s].Unlock()
		if err != nil && ctx.Err() == nil {
			failed.Add(1)
		}
	}
	hb := startHeartbeats(sctx, slots, interval, 10*time.Minute+2*b.o.hbWindow, len(streams), emit, work)
	defer hb.stop()
	took, err := leaseFleet(ctx, conns, f, b.o.hbTTL, 32, ids, granted)
	if err != nil {
		return hbWindow{}, fmt.Errorf("granting %d leases: %w", f.n, err)
	}
	sleepCtx(ctx, interval)
	cpu, err := startCPU(es.pid())
	if err != nil {
		return hbWindow{}, err
	}
	self, _ := startCPU(os.Getpid())
	r0, start := renewed.Load(), time.Now()
	sleepCtx(ctx, b.o.hbWindow)
	w := hbWindow{}
	w.cpu, err = cpu.percent()
	w.harnessCPU, _ = self.percent()
	w.rate = float64(renewed.Load()-r0) / time.Since(start).Seconds()
	b.note("heartbeat/etcd: %d leases (one key each) granted in %s; %d LeaseKeepAlive streams on %d connections: %.0f renewals/s; harness CPU %.0f%%; %d expired answers, %d failures.",
		f.n, took.Round(time.Millisecond), len(streams), len(conns), w.rate, w.harnessCPU, expired.Load(), failed.Load())
	if expired.Load() > 0 {
		b.note("heartbeat/etcd: WARNING: leases expired although the harness renewed each on schedule (a starved machine?); etcd's figures (CPU %.0f%%, %.0f renewals/s) are left out of the table.", w.cpu, w.rate)
		w.cpu, w.rate = nan, nan
	}
	return w, err
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
