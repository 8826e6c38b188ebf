package server

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: a
// component that outlived Run, or a New that failed without releasing
// what it had opened.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
