package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// Partitions of a netnsLab into two sides, and a small tmpfs for the full
// disk fault. Both need root; the scenarios skip with the reason
// otherwise.

// split cuts the agents in side off from every other agent (both ways):
// two groups that reach each other only inside themselves. The test
// still reaches every agent. heal undoes it.
func (l *netnsLab) split(side []int) {
	l.t.Helper()
	l.routes(side, "add")
}

// healSplit undoes split(side).
func (l *netnsLab) healSplit(side []int) {
	l.t.Helper()
	l.routes(side, "del")
}

func (l *netnsLab) routes(side []int, verb string) {
	l.t.Helper()
	for i := range l.ns {
		for j := range l.ns {
			if slices.Contains(side, i) == slices.Contains(side, j) {
				continue
			}
			if err := run(l.t, "ip", "-n", l.ns[i], "route", verb, "blackhole", l.ips[j]+"/32"); err != nil {
				l.t.Fatal(err)
			}
		}
	}
}

// tmpfsDir mounts a tmpfs of size (such as "16m") on a new directory
// under the test's temporary directory and returns it; the cleanup
// unmounts it. dir is "", with the reason, where that is not possible.
func tmpfsDir(t *testing.T, size string) (dir string, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return "", "mounting a tmpfs needs root"
	}
	if _, err := exec.LookPath("mount"); err != nil {
		return "", "no mount command"
	}
	dir = filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err.Error()
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		return "", fmt.Sprintf("mount -t tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir, ""
}
