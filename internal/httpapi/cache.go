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
	done  chan struct{} // closed once body, bodyIndex and err are set
	body  []byte
	// bodyIndex is the index the body shows: index, unless the state
	// moved on between the caller reading index and the build.
	bodyIndex uint64
	// aux is what the builder kept beside the body (see getOrBuildAux).
	aux any
	err error
}

func newAnswerCache(max int) *answerCache {
	return &answerCache{max: max, entries: make(map[string]*cachedAnswer)}
}

// getOrBuild returns the answer for key at index, and the index it shows.
// Unless it is built or being built, build makes it: build reads the
// state afresh and returns the body with the index it read, which may be
// newer than index; such a body is kept under its own index. hit reports
// that the body was not built by this call.
func (c *answerCache) getOrBuild(key string, index uint64, build func() ([]byte, uint64, error)) (body []byte, bodyIndex uint64, hit bool, err error) {
	body, bodyIndex, _, hit, err = c.getOrBuildAux(key, index, func() ([]byte, uint64, any, error) {
		b, i, err := build()
		return b, i, nil, err
	})
	return body, bodyIndex, hit, err
}

// getOrBuildAux is getOrBuild for a builder that also returns a value to
// share with every caller of the same answer; callers must not change it.
func (c *answerCache) getOrBuildAux(key string, index uint64, build func() ([]byte, uint64, any, error)) (body []byte, bodyIndex uint64, aux any, hit bool, err error) {
	c.mu.Lock()
	e := c.entries[key]
	switch {
	case e != nil && e.index == index:
		c.mu.Unlock()
		<-e.done
		return e.body, e.bodyIndex, e.aux, true, e.err
	case e != nil && e.index > index:
		// An older answer than the cache holds: build it, keep the newer.
		c.mu.Unlock()
		body, bodyIndex, aux, err = build()
		return body, bodyIndex, aux, false, err
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

	e.body, e.bodyIndex, e.aux, e.err = build()
	close(e.done)
	if e.err != nil || e.bodyIndex != index {
		c.mu.Lock()
		if c.entries[key] == e {
			delete(c.entries, key)
			if e.err == nil {
				c.entries[key] = e.rekeyed()
			}
		}
		c.mu.Unlock()
	}
	return e.body, e.bodyIndex, e.aux, false, e.err
}

// rekeyed is a finished entry under the index its body shows.
func (e *cachedAnswer) rekeyed() *cachedAnswer {
	n := *e
	n.index = e.bodyIndex
	return &n
}

// clear drops every answer, after a restore replaced the state.
func (c *answerCache) clear() {
	c.mu.Lock()
	c.entries = make(map[string]*cachedAnswer)
	c.mu.Unlock()
}
