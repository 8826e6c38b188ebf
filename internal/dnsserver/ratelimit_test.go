package dnsserver

import (
	"net"
	"testing"
)

// TestLimiterBounded: a flood from ever new source addresses (spoofed
// UDP) neither grows the table of sources without bound nor escapes the
// limit: sources past the table share one limiter, and the sources
// already known keep theirs.
func TestLimiterBounded(t *testing.T) {
	l := newLimiter(0.01) // a burst of one, refilled after 100s
	known := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 53}
	if !l.allow(known) {
		t.Fatal("first query of a source refused")
	}
	allowed := 0
	for i := range limiterMaxSources + 5000 {
		if l.allow(&net.UDPAddr{IP: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)), Port: 53}) {
			allowed++
		}
	}
	if n := len(l.sources); n > limiterMaxSources {
		t.Errorf("%d sources tracked, want at most %d", n, limiterMaxSources)
	}
	// Every new source within the table gets its burst of one; those past
	// it share one bucket, a burst of one.
	if allowed > limiterMaxSources+1 {
		t.Errorf("%d of %d new sources allowed, want about %d", allowed, limiterMaxSources+5000, limiterMaxSources)
	}
	if l.allow(known) {
		t.Error("a known source over its limit was allowed")
	}
}
