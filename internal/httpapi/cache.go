package httpapi

import "sync"

// answerCache keeps the newest encoded answer per query key. An answer is
// immutable for its index, and is built once: callers that ask for the
// same key and index while it is being built wait for that build (a change
// wakes every watcher of a service at once). A newer index replaces an
// older one. The cache is bounded: when full, an arbitrary entry goes.
type answerCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]*cachedAnswer
}

type cachedAnswer struct {
	index uint64
	done  chan struct{} // closed once body and err are set
	body  []byte
	err   error
}

func newAnswerCache(max int) *answerCache {
	return &answerCache{max: max, entries: make(map[string]*cachedAnswer)}
}

// get returns the answer for key at index if it is built or being built.
func (c *answerCache) get(key string, index uint64) ([]byte, bool) {
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e == nil || e.index != index {
		return nil, false
	}
	<-e.done
	return e.body, e.err == nil
}

// getOrBuild returns the answer for key at index, building it with build
// unless it is built or being built. hit reports that it was not built here.
func (c *answerCache) getOrBuild(key string, index uint64, build func() ([]byte, error)) (body []byte, hit bool, err error) {
	c.mu.Lock()
	e := c.entries[key]
	switch {
	case e != nil && e.index == index:
		c.mu.Unlock()
		<-e.done
		return e.body, true, e.err
	case e != nil && e.index > index:
		// An older answer than the cache holds: build it, keep the newer.
		c.mu.Unlock()
		body, err = build()
		return body, false, err
	}
	if e == nil && len(c.entries) >= c.max {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	e = &cachedAnswer{index: index, done: make(chan struct{})}
	c.entries[key] = e
	c.mu.Unlock()

	e.body, e.err = build()
	close(e.done)
	if e.err != nil {
		c.mu.Lock()
		if c.entries[key] == e {
			delete(c.entries, key)
		}
		c.mu.Unlock()
	}
	return e.body, false, e.err
}

// clear drops every answer, after a restore replaced the state.
func (c *answerCache) clear() {
	c.mu.Lock()
	c.entries = make(map[string]*cachedAnswer)
	c.mu.Unlock()
}
