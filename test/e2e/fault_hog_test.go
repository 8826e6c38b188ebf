package e2e

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// A CPU-heavy neighbour: with ROSTER_FAULT_HOG=1 every fault scenario
// starts a child process (this test binary again) that keeps one core
// busy for as long as the scenario runs, so a soak reproduces the "busy
// core" a cluster meets in production. The child spins on one locked OS
// thread until its deadline; the kernel kills it if the test process dies
// first (Pdeathsig), and the scenario's cleanup kills it when it ends.

const (
	hogEnv      = "ROSTER_FAULT_HOG"
	hogChildEnv = "ROSTER_FAULT_HOG_CHILD" // the child's deadline, as a duration
)

// init turns this test binary into the busy neighbour when started as one.
func init() {
	d, err := time.ParseDuration(os.Getenv(hogChildEnv))
	if err != nil {
		return
	}
	runtime.GOMAXPROCS(1)
	runtime.LockOSThread()
	deadline := time.Now().Add(d)
	for n := 0; ; n++ {
		if n%(1<<16) == 0 && time.Now().After(deadline) {
			os.Exit(0)
		}
	}
}

// startHog starts the busy neighbour for the test when ROSTER_FAULT_HOG=1.
func startHog(t *testing.T) {
	t.Helper()
	if os.Getenv(hogEnv) != "1" {
		return
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), hogChildEnv+"="+(testTimeout+10*time.Second).String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the busy neighbour: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	t.Logf("busy neighbour: pid %d spins on one core (%s=1)", cmd.Process.Pid, hogEnv)
}
