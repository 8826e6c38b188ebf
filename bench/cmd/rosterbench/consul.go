package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
)

// consulRead is one of the consul scenario's four loads: the same query
// through the native API or the Consul-compatible one, with or without
// Accept-Encoding: gzip.
type consulRead struct {
	name   string
	path   string
	gzip   bool
	consul bool
}

// consulScenario: the issue's "the Consul-compatible read path costs no
// more than 20% over the native API for the same query". One service of
// -query-instances instances, each with a passing TTL check; clients (as
// in query, through rawhttp.go) read its passing instances as
// GET /v1/services/S/instances?status=passing (native) and
// GET /v1/health/service/S?passing=true (Consul), each plain and with
// Accept-Encoding: gzip (what Go's transport, HashiCorp's client and
// Prometheus send). Bodies are read, not inflated or decoded, inside the
// loop; before it, each answer is inflated and its entries counted.
func consulScenario(ctx context.Context, b *bench) error {
	const svc = "cq"
	n := b.o.queryInstances
	rs, err := b.startRoster(ctx, "consul")
	if err != nil {
		return err
	}
	defer b.stopServer(rs)
	cl := newRosterClient(rs.addr, b.o.clients)
	defer cl.close()
	for k := range n {
		if err := cl.register(ctx, svc, fmt.Sprintf("i%04d", k), instanceJSON(k, "10m")); err != nil {
			return err
		}
	}
	native, consul := "/v1/services/"+svc+"/instances?status=passing", "/v1/health/service/"+svc+"?passing=true"
	reads := []consulRead{
		{"native instances, plain", native, false, false},
		{"Consul health, plain", consul, false, true},
		{"native instances, gzip", native, true, false},
		{"Consul health, gzip", consul, true, true},
	}
	rates := make([]float64, len(reads))
	for i, rd := range reads {
		size, err := checkConsulRead(ctx, rs.addr, rd, n)
		if err != nil {
			return fmt.Errorf("%s: %w", rd.name, err)
		}
		cpu, _ := startCPU(rs.pid())
		self, _ := startCPU(os.Getpid())
		raw := rawConns(rs.addr, b.o.clients)
		for _, c := range raw {
			c.gzip = rd.gzip
		}
		wait := b.profile(rs, fmt.Sprintf("consul-%d", i), b.o.warmup+b.o.duration)
		r := closedLoop(ctx, b.o.clients, b.o.warmup, b.o.duration, 50_000_000, func(ctx context.Context, w int, _ int64) error {
			st, _, err := raw[w].do(ctx, http.MethodGet, rd.path, nil)
			return expect(st, nil, err, http.StatusOK)
		})
		closeRaw(raw)
		agentCPU, _ := cpu.percent()
		harnessCPU, _ := self.percent()
		wait()
		if err := loadErr("consul "+rd.name, r); err != nil {
			return err
		}
		rates[i] = r.rate()
		lat := r.lat.sorted()
		b.add(row{scenario: "consul", metric: rd.name, unit: "/s", roster: rates[i], etcd: nan})
		b.note("consul/%s: %d-byte answers; agent CPU %.0f%% of one core, %.0f µs per answer (load generator %.0f%%); p50 %.3f ms, p99 %.3f ms.",
			rd.name, size, agentCPU, 10_000*agentCPU/max(rates[i], 1), harnessCPU, ms(lat.percentile(50)), ms(lat.percentile(99)))
	}
	b.add(row{scenario: "consul", metric: "Consul/native, plain", unit: "×", roster: rates[1] / rates[0], etcd: nan})
	b.add(row{scenario: "consul", metric: "Consul/native, gzip", unit: "×", roster: rates[3] / rates[2], etcd: nan,
		goal: &goal{min: 0.8}})
	return nil
}

// checkConsulRead reads rd once and checks what the loop will be served:
// 200, gzip exactly when asked, n entries once inflated. It returns the
// answer's size on the wire.
func checkConsulRead(ctx context.Context, addr string, rd consulRead, n int) (int, error) {
	c := newRawConn(addr)
	defer c.close()
	c.gzip = rd.gzip
	st, _, err := c.do(ctx, http.MethodGet, rd.path, nil)
	if err := expect(st, c.body, err, http.StatusOK); err != nil {
		return 0, err
	}
	body := c.body
	switch {
	case rd.gzip && c.encoding != "gzip", !rd.gzip && c.encoding != "":
		return 0, fmt.Errorf("Content-Encoding %q (asked for gzip: %v)", c.encoding, rd.gzip)
	case rd.gzip:
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		if body, err = io.ReadAll(zr); err != nil {
			return 0, err
		}
	}
	var entries []json.RawMessage
	if rd.consul {
		err = json.Unmarshal(body, &entries)
	} else {
		var ans struct {
			Instances []json.RawMessage `json:"instances"`
		}
		err = json.Unmarshal(body, &ans)
		entries = ans.Instances
	}
	if err != nil {
		return 0, err
	}
	if len(entries) != n {
		return 0, fmt.Errorf("%d entries, want %d", len(entries), n)
	}
	return len(c.body), nil
}
