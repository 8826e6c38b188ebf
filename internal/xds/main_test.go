package xds

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: a
// server, a stream or the registry-following loop that outlived its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
