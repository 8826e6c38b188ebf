package e2e

import (
	"testing"
	"time"
)

// TestFault runs every fault scenario on the harness of fault_test.go:
// clients write and read through every agent while the fault happens;
// the history must be linearizable and, once the fault is healed, every
// agent must hold the state it implies. One subtest per fault:
//
//	go test -race -run 'TestFault/kill-leader' ./test/e2e/
//
// `make soak` runs them all many times (test/e2e/README.md).
func TestFault(t *testing.T) {
	for _, fc := range faultCases {
		t.Run(fc.name, func(t *testing.T) {
			f := newFault(t, fc.opts)
			f.load()
			f.waitOps(150, 15*time.Second)
			fc.inject(f)
			f.finish()
		})
	}
}

type faultCase struct {
	name string
	opts faultOptions
	// inject causes the fault under load and heals it: on return every
	// agent is up again.
	inject func(f *faultRun)
}

var faultCases = []faultCase{
	{"kill-leader", faultOptions{servers: 3}, func(f *faultRun) {
		li := f.leader()
		f.kill(li)
		f.leader()
		f.waitAcked(100, 15*time.Second)
		f.event("the survivors took 100 writes")
		f.restart(li)
	}},
	{"kill-follower", faultOptions{servers: 3}, func(f *faultRun) {
		fi := (f.leader() + 1) % 3
		f.kill(fi)
		f.waitAcked(100, 15*time.Second)
		f.event("the survivors took 100 writes")
		f.restart(fi)
	}},
}
