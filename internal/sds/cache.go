package sds

import (
	"sync"
	"time"
)

// maxCached bounds each cache's entries; when full, expired entries go
// first, then an arbitrary one.
const maxCached = 4096

// memo keeps, per service, the newest encoded answer with the service
// index it shows. It never serves stale data: an answer is reused only
// while the service's index has not moved, so it only saves encoding.
// Entries are keyed by the service (its folded name); an answer echoes
// the name as asked, so it is reused only for that spelling, and a client
// cannot fill the memo with copies of one service under other spellings.
type memo struct {
	mu      sync.Mutex
	entries map[string]memoEntry
}

type memoEntry struct {
	name  string // as asked: the answer echoes it
	index uint64
	body  []byte
	hosts int
}

func newMemo() *memo { return &memo{entries: map[string]memoEntry{}} }

func (m *memo) get(key, name string, index uint64) (memoEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	return e, ok && e.index == index && e.name == name
}

func (m *memo) put(key string, e memoEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.entries[key]; ok && old.index > e.index {
		return // a newer answer is already here
	}
	if _, ok := m.entries[key]; !ok && len(m.entries) >= maxCached {
		for k := range m.entries {
			delete(m.entries, k)
			break
		}
	}
	m.entries[key] = e
}

// ttlCache is the cache CACHE_TYPE=simple asks for: an answer is served
// for ttl after it was built, whatever changed meanwhile, and an answer
// without hosts is never kept. Writes do not clear it. This is the
// staleness the original service has: a reader may see a host up to ttl
// after it was removed or expired, and a new host up to ttl late. Like
// the memo, it is keyed by service, and serves an answer only to the
// spelling it was built for.
type ttlCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]ttlEntry
}

type ttlEntry struct {
	name    string
	body    []byte
	expires time.Time
}

func newTTLCache(ttl time.Duration) *ttlCache {
	return &ttlCache{ttl: ttl, entries: map[string]ttlEntry{}}
}

func (c *ttlCache) get(key, name string, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || e.name != name || !now.Before(e.expires) {
		return nil, false
	}
	return e.body, true
}

func (c *ttlCache) put(key, name string, body []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= maxCached {
		c.evict(now)
	}
	c.entries[key] = ttlEntry{name: name, body: body, expires: now.Add(c.ttl)}
}

// evict drops the expired entries, or one arbitrary entry if none is.
func (c *ttlCache) evict(now time.Time) {
	n := len(c.entries)
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	if len(c.entries) == n {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
}
