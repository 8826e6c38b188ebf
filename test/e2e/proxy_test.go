package e2e

// `roster proxy` as a separate process in front of httptest backends
// registered in a real agent: routing by host (a --route and the default
// NAME host), spreading, following a deregistration, /metrics on the admin
// address, and a clean exit on SIGTERM.

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/testutil"
)

// proxyProcess is a running `roster proxy`.
type proxyProcess struct {
	cmd   *exec.Cmd
	addr  string // the proxy's listener
	admin string // the admin listener
	logs  *lineLog
	done  chan error
}

// startProxy runs `roster proxy` with args (listen and admin addresses
// chosen by the kernel, JSON logs) and waits for both addresses.
func startProxy(t *testing.T, agent *testutil.Agent, args ...string) *proxyProcess {
	t.Helper()
	args = append([]string{"proxy", "--listen", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--http-addr", agent.Addr, "--log-format", "json"}, args...)
	cmd := exec.Command(testutil.BuildBinary(t), args...)
	cmd.Env = cliEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proxyProcess{cmd: cmd, logs: &lineLog{}, done: make(chan error, 1)}
	addrs := make(chan [2]string, 4)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.add(line)
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && strings.HasPrefix(rec.Msg, "proxy ") && rec.Addr != "" {
				addrs <- [2]string{rec.Msg, rec.Addr}
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("roster proxy logs:\n%s", strings.Join(p.logs.snapshot(), "\n"))
		}
	})
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	for p.addr == "" || p.admin == "" {
		select {
		case a := <-addrs:
			switch a[0] {
			case "proxy listening":
				p.addr = a[1]
			case "proxy admin listening":
				p.admin = a[1]
			}
		case <-timer.C:
			t.Fatalf("roster proxy did not log its addresses; logs:\n%s", strings.Join(p.logs.snapshot(), "\n"))
		}
	}
	return p
}

func TestProxyBinary(t *testing.T) {
	ctx := bound(t)
	a := startAgent(t, testutil.AgentOptions{Dev: true})
	backends := map[string]*httptest.Server{}
	for _, id := range []string{"web-1", "web-2"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", id)
			w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
			_, _ = io.WriteString(w, id)
		}))
		t.Cleanup(srv.Close)
		backends[id] = srv
		register(t, a, "web", id, map[string]any{"address": "127.0.0.1", "port": srv.Listener.Addr().(*net.TCPAddr).Port})
	}
	p := startProxy(t, a, "--route", "shop.example=web", "--access-log")
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	get := func(host string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.addr+"/", nil)
		req.Host = host
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET via proxy (host %s): %v", host, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for _, host := range []string{"shop.example", "web", "web.service.roster"} {
		seen := map[string]int{}
		for range 20 {
			code, body, h := get(host)
			if code != 200 {
				t.Fatalf("host %s: %d %s", host, code, body)
			}
			if h.Get("X-Seen-XFF") != "127.0.0.1" {
				t.Fatalf("X-Forwarded-For upstream %q", h.Get("X-Seen-XFF"))
			}
			seen[body]++
		}
		if seen["web-1"] != 10 || seen["web-2"] != 10 {
			t.Fatalf("host %s: %v, want round robin over both", host, seen)
		}
	}
	if code, body, _ := get("unrouted.example"); code != http.StatusNotFound {
		t.Fatalf("unrouted host: %d %s", code, body)
	}

	deregister(t, a, "web", "web-2")
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		for range 10 {
			if _, body, _ := get("web"); body != "web-1" {
				return false, "still answered by " + body
			}
		}
		return true, ""
	})

	status, _, b := testutil.Do(t, "GET", "http://"+p.admin+"/metrics", nil)
	if status != 200 || !strings.Contains(string(b), `roster_proxy_upstream_requests_total{code="200",instance="web-1",service="web"}`) {
		t.Fatalf("admin /metrics: %d, no per-instance request counter:\n%.2000s", status, b)
	}
	if !strings.Contains(strings.Join(p.logs.snapshot(), "\n"), `"msg":"request"`) {
		t.Fatal("--access-log: no request logged")
	}

	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("roster proxy exit after SIGTERM: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("roster proxy did not exit after SIGTERM")
	}
}

// TestAgentProxy runs the same proxy inside the agent (-proxy-addr): its
// metrics join the agent's /metrics.
func TestAgentProxy(t *testing.T) {
	ctx := bound(t)
	a := startAgent(t, testutil.AgentOptions{Dev: true, Args: []string{"-proxy-addr", "127.0.0.1:0"}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "api-1") }))
	t.Cleanup(srv.Close)
	register(t, a, "api", "api-1", map[string]any{"address": "127.0.0.1", "port": srv.Listener.Addr().(*net.TCPAddr).Port})
	var addr string
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		for line := range strings.SplitSeq(a.Logs(), "\n") {
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "proxy listening" {
				addr = rec.Addr
				return true, ""
			}
		}
		return false, "no proxy listening line"
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/x", nil)
	req.Host = "api.service.roster"
	resp, err := testutil.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "api-1" {
		t.Fatalf("via the agent's proxy: %d %q", resp.StatusCode, b)
	}
	_, _, m := testutil.Do(t, "GET", a.URL+"/metrics", nil)
	if !strings.Contains(string(m), `roster_proxy_upstream_requests_total{code="200",instance="api-1",service="api"} 1`) {
		t.Fatal("agent /metrics lacks the proxy's per-instance counter")
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("agent with a proxy: stop: %v", err)
	}
}
