package promsd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/consul"
	"github.com/prometheus/prometheus/discovery/targetgroup"
)

// testTimeout bounds the test; Prometheus's 2-minute blocking waits must
// end early on every change for it to pass in time.
const testTimeout = 90 * time.Second

// buildRoster builds ../../cmd/roster into dir.
func buildRoster(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "roster")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/roster")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/roster: %v\n%s", err, out)
	}
	return bin
}

// startRoster runs `roster agent -dev` on 127.0.0.1:0 and returns its
// address, read from the JSON log line "http api listening".
func startRoster(t *testing.T, ctx context.Context, bin string) string {
	t.Helper()
	cmd := exec.Command(bin, "agent", "-dev", "-http-addr", "127.0.0.1:0", "-log-format", "json",
		"-dns-addr", "off", "-node-name", "promsd-node")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	addr := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			logs.Write(sc.Bytes())
			logs.WriteByte('\n')
			mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "http api listening" {
				select {
				case addr <- rec.Addr:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		<-readDone
		if t.Failed() {
			mu.Lock()
			t.Logf("roster logs:\n%s", logs.String())
			mu.Unlock()
		}
	})
	select {
	case a := <-addr:
		waitReady(t, ctx, a)
		return a
	case <-ctx.Done():
		t.Fatal("roster did not log its address")
	}
	return ""
}

func waitReady(t *testing.T, ctx context.Context, addr string) {
	t.Helper()
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("roster did not become ready")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func do(t *testing.T, method, url, body string, want int) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
}

// groups keeps the latest target group per source, as Prometheus's
// discovery manager does.
type groups struct {
	mu     sync.Mutex
	bySrc  map[string]*targetgroup.Group
	change chan struct{}
}

func (g *groups) run(ctx context.Context, ch <-chan []*targetgroup.Group) {
	for {
		select {
		case <-ctx.Done():
			return
		case tgs := <-ch:
			g.mu.Lock()
			for _, tg := range tgs {
				if tg != nil {
					g.bySrc[tg.Source] = tg
				}
			}
			g.mu.Unlock()
			select {
			case g.change <- struct{}{}:
			default:
			}
		}
	}
}

// targets lists the addresses of a source's targets, sorted.
func (g *groups) targets(src string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := []string{}
	if tg := g.bySrc[src]; tg != nil {
		for _, ls := range tg.Targets {
			out = append(out, string(ls[model.AddressLabel]))
		}
	}
	sort.Strings(out)
	return out
}

func (g *groups) group(src string) *targetgroup.Group {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bySrc[src]
}

// waitTargets waits until src lists exactly want.
func (g *groups) waitTargets(t *testing.T, ctx context.Context, src string, want ...string) {
	t.Helper()
	sort.Strings(want)
	for {
		got := g.targets(src)
		if strings.Join(got, " ") == strings.Join(want, " ") {
			return
		}
		select {
		case <-g.change:
		case <-ctx.Done():
			t.Fatalf("targets of %s: %v, want %v", src, got, want)
		}
	}
}

// TestPrometheusConsulSD runs Prometheus's own Consul service discovery
// against roster with Prometheus's defaults (no datacenter, so it asks
// /v1/agent/self; 2-minute blocking waits; stale reads), except a refresh
// interval of 1s instead of 30s: the pause between two blocking queries,
// which would only make the test slow.
func TestPrometheusConsulSD(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	bin := buildRoster(t, t.TempDir())
	addr := startRoster(t, ctx, bin)
	base := "http://" + addr

	// One service through roster's native API, one through the Consul API.
	do(t, "PUT", base+"/v1/services/web/instances/w1", `{"address":"127.0.0.1","port":9101,"tags":["v1","prod"],"meta":{"team":"core"}}`, http.StatusCreated)
	do(t, "PUT", base+"/v1/services/web/instances/w2", `{"address":"127.0.0.2","port":9102,"tags":["v1"]}`, http.StatusCreated)
	do(t, "PUT", base+"/v1/agent/service/register", `{"Name":"api","ID":"a1","Address":"127.0.0.3","Port":9200,"Check":{"TTL":"1m","Status":"passing"}}`, http.StatusOK)

	conf := consul.DefaultSDConfig
	conf.Server = addr
	conf.RefreshInterval = model.Duration(time.Second)
	reg := prometheus.NewRegistry()
	refresh := discovery.NewRefreshMetrics(reg)
	metrics := conf.NewDiscovererMetrics(reg, refresh)
	if err := metrics.Register(); err != nil {
		t.Fatal(err)
	}
	defer metrics.Unregister()
	d, err := consul.NewDiscovery(&conf, nil, metrics)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan []*targetgroup.Group)
	g := &groups{bySrc: map[string]*targetgroup.Group{}, change: make(chan struct{}, 1)}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); d.Run(runCtx, ch) }()
	go func() { defer wg.Done(); g.run(runCtx, ch) }()
	defer func() { stop(); wg.Wait() }()

	g.waitTargets(t, ctx, "web", "127.0.0.1:9101", "127.0.0.2:9102")
	g.waitTargets(t, ctx, "api", "127.0.0.3:9200")

	web := g.group("web")
	if web.Labels["__meta_consul_dc"] != "dc1" || web.Labels["__meta_consul_service"] != "web" {
		t.Errorf("web group labels: %v", web.Labels)
	}
	for _, ls := range web.Targets {
		if ls[model.AddressLabel] != "127.0.0.1:9101" {
			continue
		}
		want := model.LabelSet{
			"__meta_consul_node": "promsd-node", "__meta_consul_address": "127.0.0.1", "__meta_consul_service_id": "w1",
			"__meta_consul_tags": ",v1,prod,", "__meta_consul_health": "passing", "__meta_consul_service_port": "9101",
			"__meta_consul_service_address": "127.0.0.1", "__meta_consul_service_metadata_team": "core",
			"__meta_consul_tagged_address_lan": "127.0.0.1",
		}
		for k, v := range want {
			if ls[k] != v {
				t.Errorf("w1 label %s = %q, want %q (all: %v)", k, ls[k], v, ls)
			}
		}
	}

	// Changes arrive through the blocking queries, well within their
	// 2-minute wait.
	start := time.Now()
	do(t, "DELETE", base+"/v1/services/web/instances/w2", "", http.StatusNoContent)
	g.waitTargets(t, ctx, "web", "127.0.0.1:9101")
	do(t, "PUT", base+"/v1/agent/service/deregister/a1", "", http.StatusOK)
	g.waitTargets(t, ctx, "api")
	do(t, "PUT", base+"/v1/services/db/instances/d1", `{"address":"127.0.0.4","port":9300}`, http.StatusCreated)
	g.waitTargets(t, ctx, "db", "127.0.0.4:9300")
	if el := time.Since(start); el > time.Minute {
		t.Errorf("changes took %v: blocking queries did not return early", el)
	}
}
