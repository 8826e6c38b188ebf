// Package answers is the encoded-answer cache the read APIs share: the
// newest encoded answer per query key, built once per index however many
// waiters a change wakes at once, with its gzip encoding made on demand.
// An answer is immutable for its index. The cache is bounded by entries
// and by bytes; when either bound is passed, arbitrary entries go.
package answers

import (
	"sync"

	"github.com/rosterhq/roster/internal/gzipbody"
)

// Default bounds.
const (
	DefaultMaxEntries = 4096
	DefaultMaxBytes   = 32 << 20
)

// Answer is one cached answer.
type Answer struct {
	Body []byte
	// Index is the index the body shows: the index asked for, unless the
	// state moved on between the caller reading its index and the build.
	Index uint64
	// Aux is what the builder kept beside the body, shared by every
	// caller; callers must not change it.
	Aux any
	// Gzip is the body's gzip encoding, made on first demand.
	Gzip *gzipbody.Body
}

// Cache is safe for concurrent use.
type Cache struct {
	mu         sync.Mutex
	maxEntries int
	maxBytes   int64
	bytes      int64 // bodies of the finished entries in the map
	entries    map[string]*entry
}

type entry struct {
	index uint64
	done  chan struct{} // closed once ans and err are set
	ans   Answer
	err   error
	size  int64 // counted in Cache.bytes; 0 until then
}

// New returns a cache of at most maxEntries answers and maxBytes of
// bodies (their gzip encodings, a few percent more, are not counted).
// Zero or less means the default.
func New(maxEntries int, maxBytes int64) *Cache {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Cache{maxEntries: maxEntries, maxBytes: maxBytes, entries: make(map[string]*entry)}
}

// Get returns the answer for key at index. Unless it is built or being
// built, build makes it: build reads the state afresh and returns the body
// with the index it read, which may be newer than index (such a body is
// kept under its own index), and any value to share beside it. hit
// reports an answer this call did not build.
func (c *Cache) Get(key string, index uint64, build func() (body []byte, bodyIndex uint64, aux any, err error)) (ans Answer, hit bool, err error) {
	c.mu.Lock()
	e := c.entries[key]
	switch {
	case e != nil && e.index == index:
		c.mu.Unlock()
		<-e.done
		return e.ans, true, e.err
	case e != nil && e.index > index:
		// An older answer than the cache holds: build it, keep the newer.
		c.mu.Unlock()
		ans.Gzip = &gzipbody.Body{}
		ans.Body, ans.Index, ans.Aux, err = build()
		return ans, false, err
	}
	if e != nil {
		c.drop(key, e)
	} else if len(c.entries) >= c.maxEntries {
		c.evictOne()
	}
	e = &entry{index: index, done: make(chan struct{}), ans: Answer{Gzip: &gzipbody.Body{}}}
	c.entries[key] = e
	c.mu.Unlock()

	e.ans.Body, e.ans.Index, e.ans.Aux, e.err = build()
	close(e.done)

	c.mu.Lock()
	if c.entries[key] == e {
		switch {
		case e.err != nil:
			delete(c.entries, key)
		case e.ans.Index != index:
			// Kept under the index the body shows.
			n := &entry{index: e.ans.Index, done: e.done, ans: e.ans}
			c.entries[key] = n
			c.count(n)
		default:
			c.count(e)
		}
	}
	c.mu.Unlock()
	return e.ans, false, e.err
}

// count adds a finished entry's body to the byte total, evicting others
// while over the bound. c.mu is held.
func (c *Cache) count(e *entry) {
	e.size = int64(len(e.ans.Body))
	c.bytes += e.size
	for c.bytes > c.maxBytes && len(c.entries) > 1 {
		if !c.evictOther(e) {
			break
		}
	}
}

// drop removes key's entry e. c.mu is held.
func (c *Cache) drop(key string, e *entry) {
	delete(c.entries, key)
	c.bytes -= e.size
}

func (c *Cache) evictOne() {
	for k, e := range c.entries {
		c.drop(k, e)
		return
	}
}

func (c *Cache) evictOther(keep *entry) bool {
	for k, e := range c.entries {
		if e != keep {
			c.drop(k, e)
			return true
		}
	}
	return false
}

// Clear drops every answer, after a restore replaced the state.
func (c *Cache) Clear() {
	c.mu.Lock()
	c.entries = make(map[string]*entry)
	c.bytes = 0
	c.mu.Unlock()
}

// Len returns the number of answers kept and the bytes of their bodies.
func (c *Cache) Len() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.bytes
}
