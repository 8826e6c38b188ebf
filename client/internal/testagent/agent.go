// Package testagent builds and runs the real roster agent for the client
// module's tests: it builds ./cmd/roster of the enclosing repository once
// per test process, starts `roster agent -dev` on a loopback port chosen
// by the kernel, reads the address from the agent's JSON log, and stops,
// kills and restarts it (on the same address, so that clients reconnect).
// It is imported only by tests.
package testagent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// RepoRoot returns the repository root: the first directory above the
// working directory whose go.mod declares the server module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/rosterhq/roster\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testagent: no roster repository above the working directory")
		}
		dir = parent
	}
}

// Binary builds the agent once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatalf("testagent: %v", err)
	}
	return bin
}

func binary() (string, error) {
	build.once.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			build.err = err
			return
		}
		if build.dir, err = os.MkdirTemp("", "roster-client-test-*"); err != nil {
			build.err = err
			return
		}
		build.bin = filepath.Join(build.dir, "roster")
		cmd := exec.Command("go", "build", "-o", build.bin, "./cmd/roster")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/roster: %w\n%s", err, out)
		}
	})
	return build.bin, build.err
}

// Cleanup removes the built binary; call it from TestMain after m.Run.
func Cleanup() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
}

// Agent is a running agent. Addr stays the same across Restart.
type Agent struct {
	Addr string
	URL  string
	// DNSAddr is the agent's DNS interface (UDP and TCP) once logged;
	// read it with DNS.
	DNSAddr string

	t    tb
	bin  string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs bytes.Buffer
}

// tb is what Agent needs of a test: testing.TB, or mainTB in TestMain.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

// mainTB reports a failure in TestMain by panicking with errMain.
type mainTB struct{}

type errMain struct{ msg string }

func (mainTB) Helper() {}
func (mainTB) Fatalf(format string, args ...any) {
	panic(errMain{fmt.Sprintf(format, args...)})
}

// StartMain starts an agent outside a test (in TestMain, for examples);
// the caller kills it.
func StartMain(args ...string) (a *Agent, err error) {
	defer func() {
		if p := recover(); p != nil {
			e, ok := p.(errMain)
			if !ok {
				panic(p)
			}
			err = errors.New(e.msg)
		}
	}()
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	a = &Agent{t: mainTB{}, bin: bin, args: args}
	a.start("127.0.0.1:0")
	return a, nil
}

// Start starts `roster agent -dev` with extra args and waits until it is
// ready. The agent is killed when the test ends; its logs are printed if
// the test failed.
func Start(t testing.TB, args ...string) *Agent {
	t.Helper()
	a := &Agent{t: t, bin: Binary(t), args: args}
	t.Cleanup(func() {
		a.Kill()
		if t.Failed() {
			a.mu.Lock()
			t.Logf("agent logs:\n%s", a.logs.String())
			a.mu.Unlock()
		}
	})
	a.start("127.0.0.1:0")
	return a
}

func (a *Agent) start(addr string) {
	a.t.Helper()
	// Every other listener on a kernel-chosen port too, so that parallel
	// agents do not collide on the defaults.
	args := append([]string{"agent", "-dev", "-http-addr", addr, "-dns-addr", a.dnsAddr(), "-xds-addr", "off", "-log-format", "json"}, a.args...)
	cmd := exec.Command(a.bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ROSTER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		a.t.Fatalf("testagent: start: %v", err)
	}
	done := make(chan struct{})
	a.mu.Lock()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(done)
	}()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			a.mu.Lock()
			a.logs.Write(line)
			a.logs.WriteByte('\n')
			a.mu.Unlock()
			if addr := listenAddr(line, "dns listening"); addr != "" {
				a.mu.Lock()
				a.DNSAddr = addr
				a.mu.Unlock()
			}
			if addr := listenAddr(line, "http api listening"); addr != "" {
				select {
				case found <- addr:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case got := <-found:
		a.Addr, a.URL = got, "http://"+got
	case <-done:
		a.t.Fatalf("testagent: agent exited before listening:\n%s", a.Logs())
	case <-time.After(20 * time.Second):
		a.Kill()
		a.t.Fatalf("testagent: agent did not log its address:\n%s", a.Logs())
	}
	a.waitReady()
}

func listenAddr(line []byte, msg string) string {
	var rec struct {
		Msg  string `json:"msg"`
		Addr string `json:"addr"`
	}
	if json.Unmarshal(line, &rec) != nil || rec.Msg != msg {
		return ""
	}
	return rec.Addr
}

// DNS returns the address of the agent's DNS interface, waiting for the
// agent to log it.
func (a *Agent) DNS() string {
	a.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.mu.Lock()
		addr := a.DNSAddr
		a.mu.Unlock()
		if addr != "" && !strings.HasSuffix(addr, ":0") {
			return addr
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("testagent: no DNS address logged:\n%s", a.Logs())
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// dnsAddr keeps the DNS port across restarts.
func (a *Agent) dnsAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.DNSAddr != "" {
		return a.DNSAddr
	}
	return "127.0.0.1:0"
}

func (a *Agent) waitReady() {
	a.t.Helper()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := hc.Get(a.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("testagent: agent not ready: %v\n%s", err, a.Logs())
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not a wait for state
	}
}

// Logs returns what the agent wrote so far.
func (a *Agent) Logs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.String()
}

// Stop sends SIGTERM and waits (at most 30s, then kills).
func (a *Agent) Stop() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Kill kills the agent and waits for it.
func (a *Agent) Kill() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the agent again on the same address (after Stop or
// Kill). With -dev its registry starts empty.
func (a *Agent) Restart() {
	a.t.Helper()
	a.start(a.Addr)
}
