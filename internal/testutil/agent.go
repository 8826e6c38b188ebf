package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultReadyTimeout bounds how long StartAgent waits for the agent to
// log its address and then for /readyz to answer 200.
const DefaultReadyTimeout = 15 * time.Second

// stopTimeout bounds how long Stop waits for the process to exit after
// SIGTERM before it kills it.
const stopTimeout = 30 * time.Second

// AgentOptions configures StartAgent.
type AgentOptions struct {
	// DataDir is the agent's data directory; empty means a new
	// t.TempDir(). Ignored with Dev.
	DataDir string
	// Dev runs the agent with -dev (state in memory only).
	Dev bool
	// Args are extra arguments after `agent -http-addr 127.0.0.1:0
	// -log-format json -dns-addr 127.0.0.1:0 -xds-addr 127.0.0.1:0
	// -data-dir DIR`. Do not change -log-format: the addresses are read
	// from the JSON log.
	Args []string
	// Env is extra environment (KEY=VALUE). The test's own ROSTER_*
	// variables are not passed on.
	Env []string
	// ReadyTimeout bounds the wait for the address and for /readyz; zero
	// means DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// NoWaitReady returns as soon as the agent has logged its address,
	// without waiting for /readyz (call WaitReady later).
	NoWaitReady bool
}

// Agent is a running `roster agent` process. Addr, URL and DataDir belong
// to the test goroutine: Restart changes Addr and URL.
type Agent struct {
	// Addr is the host:port of the HTTP API; URL is "http://" + Addr.
	Addr string
	URL  string
	// DataDir is the data directory ("" with Dev).
	DataDir string
	// DNSAddr is the host:port of the DNS interface, UDP and TCP ("" when
	// Args turned it off).
	DNSAddr string
	// XDSAddr is the host:port of the xDS control plane ("" when Args
	// turned it off).
	XDSAddr string

	bin  string
	opts AgentOptions

	mu   sync.Mutex
	proc *process
	runs []*logSink // one per start, in order
}

// process is one start of the binary.
type process struct {
	cmd  *exec.Cmd
	sink *logSink
	done chan struct{} // closed once Wait returned
	err  error         // Wait's result, set before done is closed
}

// StartAgent starts `roster agent` from bin on 127.0.0.1:0 and waits until
// it logs its address and, unless opts.NoWaitReady, until /readyz answers
// 200. The process is killed when the test ends; if the test failed, its
// logs are written to the test output.
func StartAgent(t testing.TB, bin string, opts AgentOptions) *Agent {
	t.Helper()
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	a := &Agent{bin: bin, opts: opts}
	if !opts.Dev {
		a.DataDir = opts.DataDir
		if a.DataDir == "" {
			a.DataDir = t.TempDir()
		}
	}
	t.Cleanup(func() {
		a.Kill()
		if t.Failed() {
			fmt.Fprintf(t.Output(), "--- logs of roster agent (data dir %q) ---\n%s--- end of agent logs ---\n", a.DataDir, a.Logs())
		}
	})
	a.start(t)
	return a
}

func (a *Agent) args() []string {
	args := []string{"agent", "-http-addr", "127.0.0.1:0", "-log-format", "json", "-dns-addr", "127.0.0.1:0", "-xds-addr", "127.0.0.1:0"}
	if a.opts.Dev {
		args = append(args, "-dev")
	} else {
		args = append(args, "-data-dir", a.DataDir)
	}
	return append(args, a.opts.Args...)
}

func agentEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ROSTER_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func (a *Agent) start(t testing.TB) {
	t.Helper()
	a.mu.Lock()
	if a.proc != nil && !a.proc.exited() {
		a.mu.Unlock()
		t.Fatalf("testutil: agent %s is still running", a.Addr)
	}
	sink := newLogSink(len(a.runs) + 1)
	cmd := exec.Command(a.bin, a.args()...)
	cmd.Env = agentEnv(a.opts.Env)
	cmd.Stdout = sink
	cmd.Stderr = sink
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		a.mu.Unlock()
		t.Fatalf("testutil: start agent: %v", err)
	}
	p := &process{cmd: cmd, sink: sink, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	a.proc = p
	a.runs = append(a.runs, sink)
	a.mu.Unlock()

	timer := time.NewTimer(a.opts.ReadyTimeout)
	defer timer.Stop()
	select {
	case addr := <-sink.addr:
		a.Addr, a.URL = addr, "http://"+addr
		a.DNSAddr = sink.dnsAddr()
		a.XDSAddr = sink.xdsAddr()
	case <-p.done:
		t.Fatalf("testutil: agent exited before listening (%v); logs:\n%s", p.err, sink.String())
	case <-timer.C:
		a.Kill()
		t.Fatalf("testutil: agent did not log its address within %v; logs:\n%s", a.opts.ReadyTimeout, sink.String())
	case <-t.Context().Done():
		a.Kill()
		t.Fatalf("testutil: test ended while the agent started")
	}
	if !a.opts.NoWaitReady {
		a.WaitReady(t, a.opts.ReadyTimeout)
	}
}

// WaitReady polls /readyz until it answers 200, failing the test after
// timeout (zero means the agent's ReadyTimeout) or if the process exits.
func (a *Agent) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	if timeout <= 0 {
		timeout = a.opts.ReadyTimeout
	}
	a.mu.Lock()
	p := a.proc
	a.mu.Unlock()
	url := a.URL + "/readyz"
	Eventually(t, timeout, func() (bool, string) {
		if p.exited() {
			t.Fatalf("testutil: agent exited while waiting for /readyz: %v", p.err)
		}
		resp, err := pollClient.Get(url)
		if err != nil {
			return false, "GET /readyz: " + err.Error()
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("GET /readyz: %d %s", resp.StatusCode, strings.TrimSpace(b.String()))
	})
}

// pollClient is for readiness polls: short timeouts, no reuse of a
// connection to a process that may be gone.
var pollClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (a *Agent) current() *process {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.proc
}

// Kill sends SIGKILL and waits for the process to exit. It does nothing
// when the process already exited.
func (a *Agent) Kill() {
	p := a.current()
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits for the process to exit, returning its
// exit error (nil for exit status 0). After 30 s it kills the process and
// reports that.
func (a *Agent) Stop() error {
	p := a.current()
	if p == nil {
		return errors.New("testutil: agent not started")
	}
	if p.exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.err
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("testutil: agent did not exit within %v of SIGTERM; killed", stopTimeout)
	}
}

// Exited is closed when the current process has exited (or none was
// started).
func (a *Agent) Exited() <-chan struct{} {
	if p := a.current(); p != nil {
		return p.done
	}
	ch := make(chan struct{})
	close(ch)
	return ch
}

// Pid is the process ID of the current process.
func (a *Agent) Pid() int { return a.current().cmd.Process.Pid }

// Restart starts the agent again with the same options and data
// directory, on a new random port, after the previous process exited
// (call Kill or Stop first). It waits for /readyz unless NoWaitReady.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.start(t)
}

// RestartNoWait is Restart without waiting for /readyz: it returns as
// soon as the new process logs its address.
func (a *Agent) RestartNoWait(t testing.TB) {
	t.Helper()
	saved := a.opts.NoWaitReady
	a.opts.NoWaitReady = true
	defer func() { a.opts.NoWaitReady = saved }()
	a.start(t)
}

// Logs returns everything every start of the agent wrote to stdout and
// stderr, each start headed by a line naming it.
func (a *Agent) Logs() string {
	a.mu.Lock()
	runs := append([]*logSink(nil), a.runs...)
	a.mu.Unlock()
	var b strings.Builder
	for _, s := range runs {
		fmt.Fprintf(&b, "=== start %d ===\n%s", s.n, s.String())
	}
	return b.String()
}

// logSink collects a process's output and finds the address it listens on.
type logSink struct {
	n       int
	addr    chan string // receives the address once
	mu      sync.Mutex
	buf     bytes.Buffer
	partial []byte
	found   bool
	dns     string // from the "dns listening" line, logged before the HTTP one
	xds     string // from the "xds listening" line, logged before the HTTP one
}

func (s *logSink) xdsAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.xds
}

func (s *logSink) dnsAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dns
}

func newLogSink(n int) *logSink { return &logSink{n: n, addr: make(chan string, 1)} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if s.found {
		return len(p), nil
	}
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		line := s.partial[:i]
		s.partial = s.partial[i+1:]
		if addr := logAddr(line, "xds listening"); addr != "" {
			s.xds = addr
		}
		if addr := logAddr(line, "dns listening"); addr != "" {
			s.dns = addr
		}
		if addr := ListenAddr(line); addr != "" {
			s.found, s.partial = true, nil
			s.addr <- addr
			break
		}
	}
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// ListenAddr returns the address of a JSON log line whose msg is "http api
// listening", or "" for any other line.
func ListenAddr(line []byte) string { return logAddr(line, "http api listening") }

// logAddr returns the address of a JSON log line whose msg is msg.
func logAddr(line []byte, msg string) string {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return ""
	}
	var rec struct {
		Msg  string `json:"msg"`
		Addr string `json:"addr"`
	}
	if json.Unmarshal(line, &rec) != nil || rec.Msg != msg {
		return ""
	}
	return rec.Addr
}
