package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rosterhq/roster/internal/lease"
	"github.com/rosterhq/roster/internal/raftlog"
	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
	"github.com/rosterhq/roster/internal/testutil"
)

// testAgent is one in-process agent of a test cluster: store, raft node
// over a real raft port on loopback, registry, lease table and cluster.
type testAgent struct {
	net     *Network
	node    *raftlog.Node
	st      *store.Store
	reg     *registry.Service
	c       *Cluster
	metrics *prometheus.Registry
	stop    func()
	stopped bool
}

func (a *testAgent) close() {
	if !a.stopped {
		a.stopped = true
		a.stop()
	}
}

type tlsFiles struct{ cert, key, ca string }

// startCluster starts n agents that form one cluster with
// -bootstrap-expect n, each joining through all the others; opts adjust
// each agent's Config.
func startCluster(t *testing.T, n int, tf *tlsFiles, opts ...func(*Config)) []*testAgent {
	t.Helper()
	nets := make([]*Network, n)
	for i := range nets {
		nc := NetworkConfig{Addr: "127.0.0.1:0"}
		if tf != nil {
			nc.CertFile, nc.KeyFile, nc.CAFile = tf.cert, tf.key, tf.ca
		}
		nw, err := Listen(nc)
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
		nets[i] = nw
	}
	agents := make([]*testAgent, n)
	for i := range agents {
		var join []string
		for j, nw := range nets {
			if j != i {
				join = append(join, nw.Addr())
			}
		}
		st := store.New()
		rc := raftlog.DefaultConfig()
		rc.NodeID = fmt.Sprintf("node-%d", i)
		rc.HeartbeatTimeout = 200 * time.Millisecond
		rc.RaftLogOutput = io.Discard
		rc.Stream = nets[i].RaftLayer()
		rc.AwaitBootstrap = true
		node, err := raftlog.Open(rc, st)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		reg := registry.New(registry.Config{State: st, Log: store.NewLog(st, node), Ready: node.Ready,
			Consistent: node.Consistent})
		m := prometheus.NewRegistry()
		table := lease.New(lease.Config{Registry: reg, Metrics: m})
		cfg := Config{Node: node, Network: nets[i], Registry: reg, Leases: table, Join: join, BootstrapExpect: n,
			LeaderWait: time.Second, Metrics: m}
		for _, o := range opts {
			o(&cfg)
		}
		c := New(cfg)
		reg.SetLeases(c.Leases())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		a := &testAgent{net: nets[i], node: node, st: st, reg: reg, c: c, metrics: m}
		a.stop = func() {
			cancel()
			node.Close()
			c.Close()
			<-done
		}
		agents[i] = a
		t.Cleanup(a.close)
	}
	ctx := testutil.Context(t, 20*time.Second)
	for _, a := range agents {
		if err := a.node.WaitReady(ctx); err != nil {
			t.Fatalf("WaitReady %s: %v", a.node.ID(), err)
		}
	}
	// Tests pick a leader and a follower: let the first elections settle
	// (every agent names the same leader for 300 ms).
	var since time.Time
	testutil.WaitFor(t, ctx, "a settled leader", func() bool {
		_, id := agents[0].node.Leader()
		for _, a := range agents {
			if _, other := a.node.Leader(); id == "" || other != id {
				since = time.Time{}
				return false
			}
		}
		if since.IsZero() {
			since = time.Now()
		}
		return time.Since(since) > 300*time.Millisecond
	})
	return agents
}

// leaderOf waits for one of the running agents to lead and returns it.
func leaderOf(t *testing.T, agents []*testAgent) *testAgent {
	t.Helper()
	var leader *testAgent
	testutil.WaitFor(t, testutil.Context(t, 10*time.Second), "a leader", func() bool {
		for _, a := range agents {
			if !a.stopped && a.node.IsLeader() {
				leader = a
				return true
			}
		}
		return false
	})
	return leader
}

func followerOf(agents []*testAgent, leader *testAgent) *testAgent {
	for _, a := range agents {
		if a != leader && !a.stopped {
			return a
		}
	}
	return nil
}

func ttlInstance(svc, id string) *registry.Instance {
	return &registry.Instance{Service: svc, ID: id, Address: "10.0.0.1", Port: 80,
		Checks: []registry.Check{{ID: "ttl", Type: registry.CheckTTL, TTL: registry.Duration(30 * time.Second)}}}
}

func TestClusterForwardsWrites(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%t", withTLS), func(t *testing.T) {
			var tf *tlsFiles
			if withTLS {
				tf = writeTLS(t, t.TempDir())
			}
			agents := startCluster(t, 3, tf)
			leader := leaderOf(t, agents)
			f := followerOf(agents, leader)
			ctx := testutil.Context(t, 10*time.Second)

			res, err := f.reg.Register(ctx, ttlInstance("web", "web-1"))
			if err != nil {
				t.Fatalf("Register on a follower: %v", err)
			}
			if !res.Created || res.Index == 0 || res.Instance == nil || res.Instance.ID != "web-1" || res.Instance.Health != registry.Passing {
				t.Fatalf("Register result = %+v", res)
			}
			// The follower that took the write reads it back at once.
			if got, err := f.reg.Get(registry.Key{Service: "web", ID: "web-1"}); err != nil || got.ModifyIndex != res.Index {
				t.Fatalf("Get on the follower right after = %+v, %v", got, err)
			}
			if got, err := leader.reg.Get(registry.Key{Service: "web", ID: "web-1"}); err != nil || got.ModifyIndex != res.Index {
				t.Fatalf("Get on the leader = %+v, %v", got, err)
			}
			// The op's own errors keep their kind across the hop.
			_, err = f.reg.SetCheckStatus(ctx, registry.Key{Service: "web", ID: "web-1"}, "nope", registry.Critical, "")
			if !errors.Is(err, registry.ErrNotFound) {
				t.Fatalf("SetCheckStatus of an unknown check = %v, want ErrNotFound", err)
			}
			_, err = f.reg.DeregisterIfCritical(ctx, registry.Key{Service: "web", ID: "web-1"}, "ttl")
			if !errors.Is(err, registry.ErrConflict) {
				t.Fatalf("DeregisterIfCritical of a passing check = %v, want ErrConflict", err)
			}
			idx, err := f.reg.Deregister(ctx, registry.Key{Service: "web", ID: "web-1"})
			if err != nil || idx <= res.Index {
				t.Fatalf("Deregister on a follower = %d, %v", idx, err)
			}
			if n := counter(t, f.metrics, "roster_cluster_forwarded_writes_total"); n < 2 {
				t.Fatalf("forwarded writes = %v, want at least 2", n)
			}
		})
	}
}

func TestClusterConsistentRead(t *testing.T) {
	agents := startCluster(t, 3, nil)
	leader := leaderOf(t, agents)
	ctx := testutil.Context(t, 10*time.Second)
	var last uint64
	for i := range 20 {
		res, err := leader.reg.Register(ctx, ttlInstance("api", fmt.Sprintf("api-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		last = res.Index
	}
	for _, a := range agents {
		if err := a.node.Consistent(ctx); err != nil {
			t.Fatalf("Consistent on %s: %v", a.node.ID(), err)
		}
		if got := a.st.LastIndex(); got < last {
			t.Fatalf("%s after Consistent is at %d, want at least %d", a.node.ID(), got, last)
		}
	}
}

func TestHeartbeatsOnFollowerRenewLeaderLeases(t *testing.T) {
	agents := startCluster(t, 3, nil)
	leader := leaderOf(t, agents)
	f := followerOf(agents, leader)
	ctx := testutil.Context(t, 10*time.Second)
	if _, err := f.reg.Register(ctx, ttlInstance("db", "db-1")); err != nil {
		t.Fatal(err)
	}
	// The registration's own renewal reaches the leader's table.
	testutil.WaitFor(t, ctx, "the registration's renewal on the leader", func() bool {
		return counter(t, leader.metrics, "roster_lease_renewals_total") >= 1
	})
	before := counter(t, leader.metrics, "roster_lease_renewals_total")
	for range 5 {
		if err := f.reg.Heartbeat(ctx, registry.Key{Service: "db", ID: "db-1"}); err != nil {
			t.Fatalf("Heartbeat on a follower: %v", err)
		}
	}
	testutil.WaitFor(t, ctx, "renewals on the leader", func() bool {
		return counter(t, leader.metrics, "roster_lease_renewals_total") > before
	})
	if n := counter(t, f.metrics, "roster_lease_renewals_total"); n != 0 {
		t.Fatalf("the follower's own table renewed %v leases; heartbeats belong to the leader", n)
	}
}

func TestNoLeaderFailsFast(t *testing.T) {
	agents := startCluster(t, 3, nil)
	leader := leaderOf(t, agents)
	f := followerOf(agents, leader)
	for _, a := range agents {
		if a != f {
			a.close()
		}
	}
	ctx := testutil.Context(t, 20*time.Second)
	// A write sent while the leader goes may end "outcome unknown"; it is
	// refused as not-the-leader (503) either way, and never told a
	// definite failure when it may still commit.
	_, err := f.reg.Register(ctx, ttlInstance("web", "racing"))
	if !errors.Is(err, registry.ErrNotLeader) {
		t.Fatalf("Register as the quorum goes = %v, want ErrNotLeader", err)
	}
	if k := registry.KindOf(err); k != registry.KindNotLeader && k != registry.KindOutcomeUnknown {
		t.Fatalf("Register as the quorum goes: kind %v (%v), want not_leader or outcome_unknown", k, err)
	}
	testutil.WaitFor(t, ctx, "the follower to lose its leader", func() bool { _, id := f.node.Leader(); return id == "" })
	start := time.Now()
	_, err = f.reg.Register(ctx, ttlInstance("web", "lost"))
	if !errors.Is(err, registry.ErrNotLeader) || !strings.Contains(err.Error(), "no leader") {
		t.Fatalf("Register without a quorum = %v, want a no-leader ErrNotLeader", err)
	}
	if registry.KindOf(err) != registry.KindNotLeader {
		t.Fatalf("Register without a quorum: kind %v, want not_leader: nothing was sent", registry.KindOf(err))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refusing the write took %v", d)
	}
	if err := f.node.Consistent(ctx); !errors.Is(err, registry.ErrNotLeader) {
		t.Fatalf("Consistent without a quorum = %v, want ErrNotLeader", err)
	}
	// Reads stay local and say how stale they are (clusterapi's headers).
	if known, contact := f.c.LeaderState(); known || contact == 0 {
		t.Fatalf("leader state without a leader = %t, %v", known, contact)
	}
	// A ?consistent read cannot be made consistent (clusterapi: 503).
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := f.c.ConsistentRead(cctx); !errors.Is(err, registry.ErrNotLeader) || !strings.Contains(err.Error(), "no leader") {
		t.Fatalf("ConsistentRead without a leader = %v, want a no-leader ErrNotLeader", err)
	}
}

func TestMembersAndRemovePeer(t *testing.T) {
	agents := startCluster(t, 3, nil)
	leader := leaderOf(t, agents)
	f := followerOf(agents, leader)
	ctx := testutil.Context(t, 10*time.Second)
	ms, err := f.c.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaders := 0
	for _, m := range ms {
		if m.Role == "leader" {
			leaders++
		}
		if !m.Healthy || !m.Voter {
			t.Errorf("member %+v not a healthy voter", m)
		}
	}
	if len(ms) != 3 || leaders != 1 {
		t.Fatalf("members = %+v", ms)
	}
	// Remove the other follower, by address, through this follower.
	var gone *testAgent
	for _, a := range agents {
		if a != leader && a != f {
			gone = a
		}
	}
	id, err := f.c.RemovePeer(ctx, gone.net.Addr())
	if err != nil || id != gone.node.ID() {
		t.Fatalf("RemovePeer(%s) = %q, %v", gone.net.Addr(), id, err)
	}
	servers, err := leader.node.Servers()
	if err != nil || len(servers) != 2 {
		t.Fatalf("servers after removal = %+v, %v", servers, err)
	}
	if _, err := f.c.RemovePeer(ctx, "nobody"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("RemovePeer of an unknown peer = %v, want ErrNotFound", err)
	}
	// Two voters still make a quorum.
	if _, err := f.reg.Register(ctx, ttlInstance("web", "after")); err != nil {
		t.Fatalf("write after removal: %v", err)
	}
}

func TestTLSRefusesUnknownCA(t *testing.T) {
	good := writeTLS(t, t.TempDir())
	other := writeTLS(t, t.TempDir())
	srv, err := Listen(NetworkConfig{Addr: "127.0.0.1:0", CertFile: good.cert, KeyFile: good.key, CAFile: good.ca})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := Listen(NetworkConfig{Addr: "127.0.0.1:0", CertFile: other.cert, KeyFile: other.key, CAFile: other.ca})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := testutil.Context(t, 5*time.Second)
	if c, err := cli.dial(ctx, srv.Addr(), protoRPC); err == nil {
		c.Close()
		t.Fatal("dial with a certificate from another CA succeeded")
	}
	plain, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_, _ = plain.Write([]byte("H" + "GET /internal/status HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := plain.Read(make([]byte, 512))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("a plain connection to a TLS raft port: read %d bytes, %v; want it closed", n, err)
	}
}

// TestTLSRefusesClientOfUnknownCA: the server side checks the client too:
// a client that trusts the server's CA but presents a certificate another
// CA signed, or none, gets no answer from the internal RPCs.
func TestTLSRefusesClientOfUnknownCA(t *testing.T) {
	good := writeTLS(t, t.TempDir())
	other := writeTLS(t, t.TempDir())
	srv, err := Listen(NetworkConfig{Addr: "127.0.0.1:0", CertFile: good.cert, KeyFile: good.key, CAFile: good.ca})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_, goodClient, err := LoadTLS(good.cert, good.key, good.ca)
	if err != nil {
		t.Fatal(err)
	}
	_, otherClient, err := LoadTLS(other.cert, other.key, other.ca)
	if err != nil {
		t.Fatal(err)
	}
	// Serve status on the RPC sub-listener so that an accepted client
	// would get an answer.
	go func() {
		for {
			c, err := srv.rpc.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
			}()
		}
	}()
	for _, tc := range []struct {
		name  string
		certs bool
		want  bool // answered
	}{
		{"same CA", true, true},
		{"foreign certificate", true, false},
		{"no certificate", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := goodClient.Clone() // trusts the server
			cfg.ServerName = "127.0.0.1"
			switch {
			case !tc.certs:
				cfg.Certificates = nil
			case !tc.want:
				cfg.Certificates = otherClient.Certificates
			}
			raw, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
			c := tls.Client(raw, cfg)
			// With TLS 1.3 the client finishes its handshake before the
			// server checks its certificate: the refusal shows on read.
			_ = c.Handshake()
			_, _ = c.Write([]byte{protoRPC})
			n, err := c.Read(make([]byte, 64))
			if got := err == nil && n > 0; got != tc.want {
				t.Fatalf("answered = %t (read %d bytes, %v), want %t", got, n, err, tc.want)
			}
		})
	}
}

func TestWireErrorsKeepTheirKind(t *testing.T) {
	verr := &registry.ValidationError{}
	verr.Add("status", "bad")
	for _, tc := range []struct {
		name  string
		err   error
		kind  error
		retry bool
	}{
		{"not found", fmt.Errorf("x: %w", registry.ErrNotFound), registry.ErrNotFound, false},
		{"conflict", fmt.Errorf("x: %w", registry.ErrConflict), registry.ErrConflict, false},
		{"no ttl", fmt.Errorf("x: %w", registry.ErrNoTTL), registry.ErrNoTTL, false},
		{"not ready", fmt.Errorf("x: %w", registry.ErrNotReady), registry.ErrNotReady, false},
		{"not leader", fmt.Errorf("x: %w", registry.ErrNotLeader), registry.ErrNotLeader, false},
		{"refused by raft", fmt.Errorf("%w: %w", registry.ErrNotLeader, raft.ErrNotLeader), registry.ErrNotLeader, true},
		{"outcome unknown", fmt.Errorf("x: %w", registry.ErrOutcomeUnknown), registry.ErrOutcomeUnknown, false},
		{"outcome unknown, not leader", outcomeUnknown("forward: outcome unknown"), registry.ErrOutcomeUnknown, false},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), context.DeadlineExceeded, false},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), context.Canceled, false},
		{"validation", verr, nil, false},
		{"other", errors.New("odd"), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := toWire(tc.err)
			got := w.err()
			if got.Error() != tc.err.Error() && tc.kind != nil {
				t.Errorf("text %q, want %q", got.Error(), tc.err.Error())
			}
			if tc.kind != nil && !errors.Is(got, tc.kind) {
				t.Errorf("kind lost: %v", got)
			}
			if k, want := registry.KindOf(got), registry.KindOf(tc.err); k != want {
				t.Errorf("KindOf after the trip = %v, want %v", k, want)
			}
			if retriable(got) != tc.retry {
				t.Errorf("retriable = %t", retriable(got))
			}
		})
	}
	var v *registry.ValidationError
	if !errors.As(toWire(verr).err(), &v) || len(v.Fields) != 1 || v.Fields[0].Field != "status" {
		t.Errorf("validation error lost its fields")
	}
}

// TestWireKindNames: every kind has a name on the wire, the names are
// Kind.String() but for the three the wire had before kinds had names,
// and each name decodes to its kind.
func TestWireKindNames(t *testing.T) {
	legacy := map[registry.Kind]string{registry.KindInternal: "other", registry.KindInvalid: "validation", registry.KindTimeout: "deadline"}
	if len(wireKinds) != len(registry.Kinds()) {
		t.Fatalf("wireKinds has %d kinds, registry %d", len(wireKinds), len(registry.Kinds()))
	}
	for _, k := range registry.Kinds() {
		want := k.String()
		if l, ok := legacy[k]; ok {
			want = l
		}
		if got := wireKinds[k].name; got != want {
			t.Errorf("wire name of %v = %q, want %q", k, got, want)
		}
		if got := wireKind(want); got != k {
			t.Errorf("wireKind(%q) = %v, want %v", want, got, k)
		}
	}
	if got := wireKind("from_a_newer_version"); got != registry.KindInternal {
		t.Errorf("an unknown name decodes to %v, want internal", got)
	}
}

func counter(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += metricValue(m)
			}
			return sum
		}
	}
	return 0
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// writeTLS writes a new CA and a certificate it signs for 127.0.0.1.
func writeTLS(t *testing.T, dir string) *tlsFiles {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "roster test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "server.roster"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFiles{cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem"), ca: filepath.Join(dir, "ca.pem")}
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(f.cert, "CERTIFICATE", der)
	write(f.key, "EC PRIVATE KEY", keyDER)
	write(f.ca, "CERTIFICATE", caDER)
	return f
}

// FuzzWireError decodes arbitrary error answers of an internal RPC: no
// panic, and a known kind survives a second trip.
func FuzzWireError(f *testing.F) {
	f.Add([]byte(`{"kind":"not_found","error":"instance web/1: not found"}`))
	f.Add([]byte(`{"kind":"validation","error":"bad","fields":[{"field":"status","message":"x"}]}`))
	f.Add([]byte(`{"kind":"not_leader","error":"not the leader","retry":true}`))
	f.Add([]byte(`{"kind":"","error":""}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var we *wireError
		if json.Unmarshal(b, &we) != nil {
			return
		}
		err := we.err()
		if we == nil {
			if err != nil {
				t.Fatalf("nil wire error became %v", err)
			}
			return
		}
		_ = err.Error()
		again := toWire(err)
		if we.Kind != "other" && we.Kind != "" && again.Kind != we.Kind && validKind(we.Kind) {
			t.Fatalf("kind %q became %q", we.Kind, again.Kind)
		}
	})
}

func validKind(k string) bool { return wireKind(k) != registry.KindInternal }
