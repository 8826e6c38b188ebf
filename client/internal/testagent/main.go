package testagent

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// RunMain runs a test binary's tests. When examples may run, it first
// starts one agent for them and names it in envVar (the examples find the
// agent there); tests start their own agents.
func RunMain(m *testing.M, envVar string) int {
	defer Cleanup()
	if !examplesWillRun() {
		return m.Run()
	}
	a, err := StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start agent for the examples:", err)
		return 1
	}
	defer a.Kill()
	os.Setenv(envVar, a.Addr)
	return m.Run()
}

// examplesWillRun reports whether this run may run examples: not a fuzz
// run, and -run (if given) could select one.
func examplesWillRun() bool {
	flag.Parse()
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return false
		}
	}
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" {
		re, err := regexp.Compile(strings.Split(f.Value.String(), "/")[0])
		return err != nil || re.MatchString("Example")
	}
	return true
}

// Eventually polls cond until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}
