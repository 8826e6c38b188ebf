package store

import "sync"

// hub hands out one channel per watch key and closes it at the key's next
// change. Each blocking query waits on exactly one channel, however large
// the service, and a change wakes only the watchers of the keys it
// touched. Entries are reference-counted so that watchers of names that
// never change (a service that does not exist) do not accumulate.
type hub struct {
	mu    sync.Mutex
	watch map[string]*watchEntry
}

type watchEntry struct {
	ch   chan struct{}
	refs int
}

func newHub() *hub { return &hub{watch: map[string]*watchEntry{}} }

func (h *hub) Watch(key string) (<-chan struct{}, func()) {
	h.mu.Lock()
	e := h.watch[key]
	if e == nil {
		e = &watchEntry{ch: make(chan struct{})}
		h.watch[key] = e
	}
	e.refs++
	h.mu.Unlock()
	var once sync.Once
	return e.ch, func() {
		once.Do(func() {
			h.mu.Lock()
			e.refs--
			if e.refs == 0 && h.watch[key] == e {
				delete(h.watch, key)
			}
			h.mu.Unlock()
		})
	}
}

// notify closes the channels of keys; the next Watch of a key gets a new one.
func (h *hub) notify(keys map[string]struct{}) {
	h.mu.Lock()
	for k := range keys {
		if e := h.watch[k]; e != nil {
			close(e.ch)
			delete(h.watch, k)
		}
	}
	h.mu.Unlock()
}

// notifyAll wakes every watcher, after a restore replaced the whole state.
func (h *hub) notifyAll() {
	h.mu.Lock()
	for k, e := range h.watch {
		close(e.ch)
		delete(h.watch, k)
	}
	h.mu.Unlock()
}

// watchers is the number of distinct keys being watched.
func (h *hub) watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watch)
}
