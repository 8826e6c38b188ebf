package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"
)

// queryScenario: clients reading one service's passing instances as fast
// as they can. roster: GET /v1/services/query/instances?status=passing.
// etcd: a prefix Range over the same number of keys holding the same JSON
// (linearizable, etcd's default, unless -etcd-serializable).
func queryScenario(ctx context.Context, b *bench) error {
	n := b.o.queryInstances
	rs, err := b.startRoster(ctx, "query")
	if err != nil {
		return err
	}
	cl := newRosterClient(rs.addr, b.o.clients)
	for k := range n {
		if err := cl.register(ctx, "query", fmt.Sprintf("i%04d", k), instanceJSON(k, "")); err != nil {
			b.stopServer(rs)
			return err
		}
	}
	got, _, err := cl.countInstances(ctx, "query")
	if err == nil && got != n {
		err = fmt.Errorf("roster query answered %d instances, want %d", got, n)
	}
	if err != nil {
		b.stopServer(rs)
		return err
	}
	const path = "/v1/services/query/instances?status=passing"
	before, _ := cl.metrics(ctx)
	cpu, _ := startCPU(rs.pid())
	self, _ := startCPU(os.Getpid())
	wait := b.profile(rs, "query", b.o.warmup+b.o.duration)
	raw := rawConns(rs.addr, b.o.clients)
	r := closedLoop(ctx, b.o.clients, b.o.warmup, b.o.duration, 50_000_000, func(ctx context.Context, w int, _ int64) error {
		st, _, err := raw[w].do(ctx, http.MethodGet, path, nil)
		return expect(st, nil, err, http.StatusOK)
	})
	closeRaw(raw)
	agentCPU, _ := cpu.percent()
	harnessCPU, _ := self.percent()
	wait()
	after, _ := cl.metrics(ctx)
	cl.close()
	b.stopServer(rs)
	if err := loadErr("roster query", r); err != nil {
		return err
	}
	route := `{route="GET /v1/services/{service}/instances"}`
	served := delta(before, after, "roster_http_request_duration_seconds_count"+route)
	b.note("query/roster: agent CPU %.0f%% of one core (load generator %.0f%%); %.0f%% of answers from the encoded-answer cache; server-side handler time mean %.3f ms.",
		agentCPU, harnessCPU, 100*delta(before, after, "roster_http_answer_cache_hits_total")/max(served, 1),
		1000*delta(before, after, "roster_http_request_duration_seconds_sum"+route)/max(served, 1))

	var e loadResult
	eRate := nan
	if b.etcd() {
		es, conns, err := b.startEtcd(ctx, "query", b.o.clients)
		if err != nil {
			return err
		}
		err = func() error {
			for k := range n {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := conns[0].Put(cctx, fmt.Appendf(nil, "/query/i%04d", k), instanceJSON(k, ""), 0)
				cancel()
				if err != nil {
					return err
				}
			}
			req := rangeRequest([]byte("/query/"), b.o.etcdSerializable)
			resp, err := conns[0].Range(ctx, req)
			if err != nil {
				return err
			}
			if c, err := rangeCount(resp); err != nil || c != n {
				return fmt.Errorf("etcd range answered %d keys (%v), want %d", c, err, n)
			}
			ecpu, _ := startCPU(es.pid())
			eself, _ := startCPU(os.Getpid())
			e = closedLoop(ctx, b.o.clients, b.o.warmup, b.o.duration, 50_000_000, func(ctx context.Context, w int, _ int64) error {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				_, err := conns[w].Range(cctx, req)
				return err
			})
			c, _ := ecpu.percent()
			h, _ := eself.percent()
			mode := "linearizable"
			if b.o.etcdSerializable {
				mode = "serializable"
			}
			b.note("query/etcd: %s prefix range; etcd CPU %.0f%% of one core (load generator %.0f%%).", mode, c, h)
			eRate = e.rate()
			return loadErr("etcd query", e)
		}()
		closeAll(conns)
		b.stopServer(es)
		if err != nil {
			return err
		}
	}
	rl, el := r.lat.sorted(), e.lat.sorted()
	b.add(row{scenario: "query", metric: "throughput", unit: "/s", roster: r.rate(), etcd: eRate, ratio: true,
		goal: &goal{min: 12000, minRatio: 2}})
	b.add(row{scenario: "query", metric: "p50 latency", unit: "ms", roster: ms(rl.percentile(50)), etcd: pctOrNaN(el, 50), ratio: true})
	b.add(row{scenario: "query", metric: "p99 latency", unit: "ms", roster: ms(rl.percentile(99)), etcd: pctOrNaN(el, 99), ratio: true,
		goal: &goal{max: 10}})
	return nil
}
