package dnsserver

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiterIdle is how long a source's limiter is kept after its last
// query. limiterMaxSources bounds the sources with their own limiter:
// when the table is full, idle ones are swept (at most every
// limiterSweepEvery, a sweep reads the whole table) and new sources
// beyond it share one limiter, so a flood from ever new (spoofed)
// addresses costs neither unbounded memory nor a sweep per packet.
const (
	limiterIdle       = time.Minute
	limiterMaxSources = 10000
	limiterSweepEvery = time.Second
)

// limiter allows each source address (IPv6 by /64) rate queries per
// second, with bursts of the same size.
type limiter struct {
	rate    rate.Limit
	burst   int
	mu      sync.Mutex
	sources map[netip.Addr]*source
	swept   time.Time     // the last sweep
	shared  *rate.Limiter // new sources while the table is full
}

type source struct {
	lim  *rate.Limiter
	last time.Time
}

func newLimiter(perSecond float64) *limiter {
	l := &limiter{rate: rate.Limit(perSecond), burst: max(int(perSecond), 1), sources: make(map[netip.Addr]*source)}
	l.shared = rate.NewLimiter(l.rate, l.burst)
	return l
}

func (l *limiter) allow(remote net.Addr) bool {
	key, ok := sourceKey(remote)
	if !ok {
		return true
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sources[key]
	if s == nil {
		if len(l.sources) >= limiterMaxSources && now.Sub(l.swept) >= limiterSweepEvery {
			l.sweep(now)
			l.swept = now
		}
		if len(l.sources) >= limiterMaxSources {
			return l.shared.AllowN(now, 1)
		}
		s = &source{lim: rate.NewLimiter(l.rate, l.burst)}
		l.sources[key] = s
	}
	s.last = now
	return s.lim.AllowN(now, 1)
}

// sweep drops the limiters of sources idle for limiterIdle.
func (l *limiter) sweep(now time.Time) {
	for k, s := range l.sources {
		if now.Sub(s.last) >= limiterIdle {
			delete(l.sources, k)
		}
	}
}

func sourceKey(a net.Addr) (netip.Addr, bool) {
	var ip net.IP
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	default:
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, false
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		addr = p.Addr()
	}
	return addr, true
}
