package consulapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: a
// blocking query or a raft node that outlived its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
