// Package testutil helps tests that run the real roster binary: it builds
// ./cmd/roster once per test process, starts `roster agent` on a random
// loopback port with its own data directory, waits for it to be ready,
// kills or stops and restarts it, and offers small HTTP and polling
// helpers. It is imported only by tests.
//
// The binary is built into one temporary directory per test process
// (os.MkdirTemp). A TestMain that uses BuildBinary should call
// RemoveBinaries after m.Run; otherwise the directory is left in the
// system's temporary directory:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testutil.RemoveBinaries()
//		os.Exit(code)
//	}
package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// BuildEnv, when set to a list of extra `go build` flags separated by
// spaces (for example "-race"), is passed to the build of the binary.
const BuildEnv = "ROSTER_TEST_BUILDFLAGS"

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// ModuleRoot returns the directory holding go.mod, found by walking up
// from the working directory (a test runs in its package's directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testutil: no go.mod above the working directory")
		}
		dir = parent
	}
}

// BuildBinary builds ./cmd/roster once per test process and returns the
// path of the binary. Every later call returns the same path (or fails
// the same way). See the package documentation for who removes it.
func BuildBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() { build.bin, build.err = buildRoster() })
	if build.err != nil {
		t.Fatalf("build roster: %v", build.err)
	}
	return build.bin
}

func buildRoster() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "roster-test-bin-*")
	if err != nil {
		return "", err
	}
	build.dir = dir
	bin := filepath.Join(dir, "roster")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building the agent needs the go tool on PATH: %w", err)
	}
	args := []string{"build", "-o", bin}
	args = append(args, strings.Fields(os.Getenv(BuildEnv))...)
	args = append(args, "./cmd/roster")
	cmd := exec.Command(goTool, args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// RemoveBinaries removes the directory BuildBinary built into. Call it
// from TestMain after m.Run; BuildBinary must not be called after it.
func RemoveBinaries() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
}
