package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: a raft
// node, a raft port or an internal RPC that outlived its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
