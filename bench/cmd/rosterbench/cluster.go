package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// clusterScenario: the register load (new TTL instances, as fast as the
// clients can) against one agent, against three agents forming a cluster
// (-bootstrap-expect 3), and against a three-member etcd cluster, each on
// loopback with its own data dirs. On the roster cluster the clients are
// spread over all three agents, so two thirds of the writes are forwarded
// to the leader; etcd's clients are spread over its members the same way
// (its followers forward proposals to its leader too). Every write is
// acknowledged only once a quorum has it on disk.
func clusterScenario(ctx context.Context, b *bench) error {
	const services = 100
	run := func(addrs []string) (loadResult, error) {
		raw := make([]*rawConn, b.o.clients)
		for w := range raw {
			raw[w] = newRawConn(addrs[w%len(addrs)])
		}
		defer closeRaw(raw)
		r := closedLoop(ctx, b.o.clients, b.o.warmup, b.o.duration, 50_000_000, func(ctx context.Context, w int, seq int64) error {
			k := int(seq)*b.o.clients + w
			st, _, err := raw[w].do(ctx, http.MethodPut, fmt.Sprintf("/v1/services/reg-%03d/instances/w%02d-%08d", k%services, w, seq), instanceJSON(k, b.o.registerTTL))
			return expect(st, nil, err, http.StatusOK, http.StatusCreated)
		})
		return r, loadErr("roster cluster register", r)
	}

	single, err := b.startRoster(ctx, "cluster-single")
	if err != nil {
		return err
	}
	one, err := run([]string{single.addr})
	b.stopServer(single)
	if err != nil {
		return err
	}

	agents, err := b.startRosterCluster(ctx, 3)
	if err != nil {
		return err
	}
	var addrs []string
	for _, a := range agents {
		addrs = append(addrs, a.addr)
	}
	three, err := run(addrs)
	for _, a := range agents {
		b.stopServer(a)
	}
	if err != nil {
		return err
	}

	var e loadResult
	eRate := nan
	if b.etcd() {
		members, conns, err := b.startEtcdCluster(ctx, 3, b.o.clients)
		if err != nil {
			return err
		}
		ttl, _ := time.ParseDuration(b.o.registerTTL)
		leases := make([]int64, b.o.clients)
		for i := range leases {
			if leases[i], err = grant(ctx, conns[i], int64(ttl/time.Second)); err != nil {
				break
			}
		}
		if err == nil {
			e = closedLoop(ctx, b.o.clients, b.o.warmup, b.o.duration, 50_000_000, func(ctx context.Context, w int, seq int64) error {
				k := int(seq)*b.o.clients + w
				key := fmt.Appendf(nil, "/reg/svc-%03d/w%02d-%08d", k%services, w, seq)
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				_, err := conns[w].Put(cctx, key, instanceJSON(k, b.o.registerTTL), leases[w])
				return err
			})
			err = loadErr("etcd cluster register", e)
			eRate = e.rate()
		}
		closeAll(conns)
		for _, m := range members {
			b.stopServer(m)
		}
		if err != nil {
			return err
		}
	}
	ol, tl, el := one.lat.sorted(), three.lat.sorted(), e.lat.sorted()
	b.add(row{scenario: "cluster", metric: "single agent: throughput", unit: "/s", roster: one.rate(), etcd: nan})
	b.add(row{scenario: "cluster", metric: "single agent: p99 latency", unit: "ms", roster: ms(ol.percentile(99)), etcd: nan})
	b.add(row{scenario: "cluster", metric: "3 servers: throughput", unit: "/s", roster: three.rate(), etcd: eRate, ratio: true})
	b.add(row{scenario: "cluster", metric: "3 servers: p50 latency", unit: "ms", roster: ms(tl.percentile(50)), etcd: pctOrNaN(el, 50), ratio: true})
	b.add(row{scenario: "cluster", metric: "3 servers: p99 latency", unit: "ms", roster: ms(tl.percentile(99)), etcd: pctOrNaN(el, 99), ratio: true})
	b.add(row{scenario: "cluster", metric: "3 servers / single agent: throughput", unit: "×", roster: three.rate() / one.rate(), etcd: nan})
	b.note("cluster: %d clients spread over the members in both clusters (roster: 2 of 3 writes forwarded to the leader; etcd: followers forward proposals); %d / %d / %d writes in the windows (single, roster cluster, etcd cluster).",
		b.o.clients, one.ops, three.ops, e.ops)
	return nil
}

// startRosterCluster starts n agents that form one cluster and waits until
// each is ready (caught up with the leader).
func (b *bench) startRosterCluster(ctx context.Context, n int) ([]*server, error) {
	raft := make([]string, n)
	for i := range raft {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		raft[i] = "127.0.0.1:" + strconv.Itoa(port)
	}
	var out []*server
	stopAll := func() {
		for _, s := range out {
			s.stop(5 * time.Second)
		}
	}
	for i := range n {
		port, err := freePort()
		if err != nil {
			stopAll()
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		dir := b.newDir(fmt.Sprintf("roster-cluster-%d", i))
		var join []string
		for j, r := range raft {
			if j != i {
				join = append(join, r)
			}
		}
		s, err := launch(fmt.Sprintf("roster-%d", i), dir, addr, nil, b.rosterBin, "agent", "-http-addr", addr, "-data-dir", dir,
			"-dns-addr", "off", "-xds-addr", "off", "-log-format", "json", "-log-level", "warn",
			"-raft-addr", raft[i], "-bootstrap-expect", strconv.Itoa(n), "-join", strings.Join(join, ","))
		if err != nil {
			stopAll()
			return nil, err
		}
		out = append(out, s)
	}
	for _, s := range out {
		if err := waitHTTP(ctx, s, "http://"+s.addr+"/readyz", 30*time.Second); err != nil {
			stopAll()
			return nil, err
		}
	}
	return out, nil
}

// startEtcdCluster starts an n-member etcd cluster and dials conns
// connections spread over its members.
func (b *bench) startEtcdCluster(ctx context.Context, n, conns int) ([]*server, []*etcdConn, error) {
	type ports struct{ client, peer string }
	ps := make([]ports, n)
	var initial []string
	for i := range ps {
		c, err := freePort()
		if err != nil {
			return nil, nil, err
		}
		p, err := freePort()
		if err != nil {
			return nil, nil, err
		}
		ps[i] = ports{"http://127.0.0.1:" + strconv.Itoa(c), "http://127.0.0.1:" + strconv.Itoa(p)}
		initial = append(initial, fmt.Sprintf("m%d=%s", i, ps[i].peer))
	}
	var members []*server
	stopAll := func() {
		for _, s := range members {
			s.stop(5 * time.Second)
		}
	}
	for i, p := range ps {
		dir := b.newDir(fmt.Sprintf("etcd-cluster-%d", i))
		s, err := launch(fmt.Sprintf("etcd-%d", i), dir, strings.TrimPrefix(p.client, "http://"), []string{"ETCD_UNSUPPORTED_ARCH=" + goarch()}, b.etcdBin,
			"--name", fmt.Sprintf("m%d", i), "--data-dir", dir,
			"--listen-client-urls", p.client, "--advertise-client-urls", p.client,
			"--listen-peer-urls", p.peer, "--initial-advertise-peer-urls", p.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--logger", "zap", "--log-level", "warn")
		if err != nil {
			stopAll()
			return nil, nil, err
		}
		members = append(members, s)
	}
	for i, s := range members {
		if err := waitHTTP(ctx, s, ps[i].client+"/health", 30*time.Second); err != nil {
			stopAll()
			return nil, nil, err
		}
	}
	out := make([]*etcdConn, conns)
	for i := range out {
		c, err := dialEtcd(members[i%n].addr)
		if err != nil {
			closeAll(out)
			stopAll()
			return nil, nil, err
		}
		out[i] = c
	}
	return members, out, nil
}
