package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// server is one roster agent or etcd process started by the harness. The
// harness only ever signals processes it started, by their PID.
type server struct {
	name    string
	addr    string // host:port of the client API
	dataDir string
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	waitErr error
	stderr  *tailBuffer
	// pprof is the profiling agent's pprof address, if any.
	pprof string
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to timeout for a clean exit, then SIGKILLs.
// It returns how long the clean exit took.
func (s *server) stop(timeout time.Duration) (time.Duration, error) {
	if s.exited() {
		return 0, s.waitErr
	}
	start := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return time.Since(start), nil
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		return time.Since(start), fmt.Errorf("%s: no exit %s after SIGTERM; killed", s.name, timeout)
	}
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func launch(name, dataDir, addr string, env []string, bin string, args ...string) (*server, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	buf := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, addr: addr, dataDir: dataDir, cmd: cmd, started: time.Now(), done: make(chan struct{}), stderr: buf}
	go func() { s.waitErr = cmd.Wait(); close(s.done) }()
	return s, nil
}

// startRoster starts an agent on a fresh loopback port over dataDir and
// waits until /readyz answers 200.
func startRoster(ctx context.Context, bin, dataDir string, env []string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s, err := launch("roster", dataDir, addr, env, bin, "agent", "-http-addr", addr, "-data-dir", dataDir,
		"-dns-addr", "off", "-xds-addr", "off", "-log-format", "json", "-log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, s, "http://"+addr+"/readyz", 30*time.Second); err != nil {
		s.stop(5 * time.Second)
		return nil, err
	}
	return s, nil
}

// startEtcd starts a one-member etcd on fresh loopback ports over dataDir
// and waits until /health answers 200.
func startEtcd(ctx context.Context, bin, dataDir string) (*server, error) {
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(cport)
	peer := "http://127.0.0.1:" + strconv.Itoa(pport)
	s, err := launch("etcd", dataDir, "127.0.0.1:"+strconv.Itoa(cport), []string{"ETCD_UNSUPPORTED_ARCH=" + goarch()}, bin,
		"--name", "bench", "--data-dir", dataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "bench="+peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, s, client+"/health", 30*time.Second); err != nil {
		s.stop(5 * time.Second)
		return nil, err
	}
	return s, nil
}

// waitHTTP polls url until it answers 200, the process exits, or timeout.
func waitHTTP(ctx context.Context, s *server, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	for i := 0; time.Now().Before(deadline); i++ {
		if s.exited() {
			return fmt.Errorf("%s exited before it was ready: %v\n%s", s.name, s.waitErr, s.stderr.String())
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		resp, err := hc.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if s.exited() { // the port belonged to someone else
					return fmt.Errorf("%s exited: %v\n%s", s.name, s.waitErr, s.stderr.String())
				}
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s after %s\n%s", s.name, url, timeout, s.stderr.String())
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}

// buildRoster builds pkg (the agent, or the profiling agent) into dir.
func buildRoster(ctx context.Context, dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	return out, nil
}
