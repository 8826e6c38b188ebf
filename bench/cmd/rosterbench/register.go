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

// registerScenario: clients doing durable registrations as fast as they
// can. roster: PUT an instance with a TTL (each one new). etcd: put a key
// with a lease attached, one lease per client granted up front, as a
// process using etcd's naming/endpoints package holds one session lease
// for all its keys (a grant per registration would double etcd's writes).
func registerScenario(ctx context.Context, b *bench) error {
	ttl, err := time.ParseDuration(b.o.registerTTL)
	if err != nil {
		return fmt.Errorf("-register-ttl: %w", err)
	}
	const services = 100
	rs, err := b.startRoster(ctx, "register")
	if err != nil {
		return err
	}
	cl := newRosterClient(rs.addr, b.o.clients)
	before, _ := cl.metrics(ctx)
	cpu, _ := startCPU(rs.pid())
	self, _ := startCPU(os.Getpid())
	wait := b.profile(rs, "register", b.o.warmup+b.o.duration)
	raw := rawConns(rs.addr, b.o.clients)
	r := closedLoop(ctx, b.o.clients, b.o.warmup, b.o.duration, 50_000_000, func(ctx context.Context, w int, seq int64) error {
		k := int(seq)*b.o.clients + w
		st, _, err := raw[w].do(ctx, http.MethodPut, fmt.Sprintf("/v1/services/reg-%03d/instances/w%02d-%08d", k%services, w, seq), instanceJSON(k, b.o.registerTTL))
		return expect(st, nil, err, http.StatusOK, http.StatusCreated)
	})
	closeRaw(raw)
	agentCPU, _ := cpu.percent()
	harnessCPU, _ := self.percent()
	wait()
	after, _ := cl.metrics(ctx)
	cl.close()
	b.stopServer(rs)
	if err := loadErr("roster register", r); err != nil {
		return err
	}
	b.note("register/roster: agent CPU %.0f%% of one core during the run (load generator %.0f%%); log apply (enqueue→durable→applied) p50 ≤ %s ms, p99 ≤ %s ms (histogram buckets); %d registrations in the window.",
		agentCPU, harnessCPU, fmtNum(1000*histQuantile(before, after, "roster_log_apply_duration_seconds", .5)),
		fmtNum(1000*histQuantile(before, after, "roster_log_apply_duration_seconds", .99)), r.ops)

	var e loadResult
	eRate := nan
	if b.etcd() {
		es, conns, err := b.startEtcd(ctx, "register", b.o.clients)
		if err != nil {
			return err
		}
		leases := make([]int64, b.o.clients)
		for i := range leases {
			if leases[i], err = grant(ctx, conns[i], int64(ttl/time.Second)); err != nil {
				break
			}
		}
		if err == nil {
			ecpu, _ := startCPU(es.pid())
			eself, _ := startCPU(os.Getpid())
			e = closedLoop(ctx, b.o.clients, b.o.warmup, b.o.duration, 50_000_000, func(ctx context.Context, w int, seq int64) error {
				k := int(seq)*b.o.clients + w
				key := fmt.Appendf(nil, "/reg/svc-%03d/w%02d-%08d", k%services, w, seq)
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				_, err := conns[w].Put(cctx, key, instanceJSON(k, b.o.registerTTL), leases[w])
				return err
			})
			c, _ := ecpu.percent()
			h, _ := eself.percent()
			b.note("register/etcd: etcd CPU %.0f%% of one core (load generator %.0f%%); %d puts in the window over %d gRPC connections, one lease per client.", c, h, e.ops, len(conns))
			err = loadErr("etcd register", e)
			eRate = e.rate()
		}
		closeAll(conns)
		b.stopServer(es)
		if err != nil {
			return err
		}
	}
	el := e.lat.sorted()
	rl := r.lat.sorted()
	b.add(row{scenario: "register", metric: "throughput", unit: "/s", roster: r.rate(), etcd: eRate, ratio: true,
		goal: &goal{min: 15000, minRatio: 3}})
	b.add(row{scenario: "register", metric: "p50 latency", unit: "ms", roster: ms(rl.percentile(50)), etcd: pctOrNaN(el, 50), ratio: true})
	b.add(row{scenario: "register", metric: "p99 latency", unit: "ms", roster: ms(rl.percentile(99)), etcd: pctOrNaN(el, 99), ratio: true})
	return nil
}

func pctOrNaN(l latencies, p float64) float64 {
	if len(l) == 0 {
		return nan
	}
	return ms(l.percentile(p))
}

// loadErr fails a scenario whose operations mostly failed, and notes a
// few failures otherwise.
func loadErr(what string, r loadResult) error {
	if r.errors > 0 && r.errors*100 > r.ops {
		return fmt.Errorf("%s: %d of %d operations failed, first: %v", what, r.errors, r.ops+r.errors, r.firstErr)
	}
	if r.ops == 0 {
		return fmt.Errorf("%s: no operation completed (%v)", what, r.firstErr)
	}
	return nil
}

func grant(ctx context.Context, c *etcdConn, ttl int64) (int64, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.LeaseGrant(cctx, ttl)
}

// profile saves a CPU profile of the agent for d, when it is the profiling
// build; the returned func waits for the file.
func (b *bench) profile(s *server, name string, d time.Duration) func() {
	if s.pprof == "" || d < time.Second {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprof, int(d/time.Second))
		resp, err := (&http.Client{Timeout: d + 30*time.Second}).Get(url)
		if err != nil {
			progress("profile %s: %v", name, err)
			return
		}
		defer resp.Body.Close()
		path := filepath.Join(b.o.profileDir, name+".pprof")
		f, err := os.Create(path)
		if err != nil {
			progress("profile %s: %v", name, err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			progress("profile %s: %v", name, err)
			return
		}
		progress("CPU profile saved: %s", path)
	}()
	return func() { <-done }
}
