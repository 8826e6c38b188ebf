package httpapi

import "sync"

// answerCache keeps the newest encoded answer per query key. An answer is
// immutable for its index; a newer index replaces it. The cache is bounded:
// when full, an arbitrary entry is dropped.
type answerCache struct {
	mu      sync.RWMutex
	max     int
	entries map[string]cachedAnswer
}

type cachedAnswer struct {
	index uint64
	body  []byte
}

func newAnswerCache(max int) *answerCache {
	return &answerCache{max: max, entries: make(map[string]cachedAnswer)}
}

func (c *answerCache) get(key string, index uint64) ([]byte, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || e.index != index {
		return nil, false
	}
	return e.body, true
}

func (c *answerCache) put(key string, index uint64, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && e.index > index {
		return // never replace a newer answer
	}
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = cachedAnswer{index: index, body: body}
}

// clear drops every answer, after a restore replaced the state.
func (c *answerCache) clear() {
	c.mu.Lock()
	c.entries = make(map[string]cachedAnswer)
	c.mu.Unlock()
}
