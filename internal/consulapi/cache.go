package consulapi

import (
	"sync"

	"github.com/rosterhq/roster/internal/gzipbody"
)

// answerCache keeps the newest encoded answer per query key, so that the
// watchers a change wakes together share one encoding. An answer is
// immutable for its index and is built once: callers asking for the same
// key and index while it is built wait for that build. A newer index
// replaces an older one; when full, an arbitrary entry goes.
type answerCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]*cachedAnswer
}

type cachedAnswer struct {
	index uint64
	done  chan struct{} // closed once body, bodyIndex and err are set
	body  []byte
	// bodyIndex is the index the body shows: index, unless the state
	// moved on between reading index and the build.
	bodyIndex uint64
	// gz is the body's gzip encoding, made on first demand; a rekeyed
	// entry shares it.
	gz  *gzipbody.Body
	err error
}

func newAnswerCache(max int) *answerCache {
	return &answerCache{max: max, entries: make(map[string]*cachedAnswer)}
}

// get returns the answer for key at index, the index it shows and its
// gzip encoding (made on demand), calling build unless it is built or
// being built. build reads afresh and returns the body with the index it
// read, which may be newer than index; such a body is kept under its own
// index. hit reports a body this call did not build.
func (c *answerCache) get(key string, index uint64, build func() ([]byte, uint64, error)) (body []byte, bodyIndex uint64, gz *gzipbody.Body, hit bool, err error) {
	c.mu.Lock()
	e := c.entries[key]
	switch {
	case e != nil && e.index == index:
		c.mu.Unlock()
		<-e.done
		return e.body, e.bodyIndex, e.gz, true, e.err
	case e != nil && e.index > index:
		c.mu.Unlock()
		body, bodyIndex, err = build()
		return body, bodyIndex, &gzipbody.Body{}, false, err
	}
	if e == nil && len(c.entries) >= c.max {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	e = &cachedAnswer{index: index, done: make(chan struct{}), gz: &gzipbody.Body{}}
	c.entries[key] = e
	c.mu.Unlock()

	e.body, e.bodyIndex, e.err = build()
	close(e.done)
	if e.err != nil || e.bodyIndex != index {
		c.mu.Lock()
		if c.entries[key] == e {
			delete(c.entries, key)
			if e.err == nil {
				n := *e
				n.index = e.bodyIndex
				c.entries[key] = &n
			}
		}
		c.mu.Unlock()
	}
	return e.body, e.bodyIndex, e.gz, false, e.err
}
