package dnsserver

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: a
// server or a forwarded exchange that outlived its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
