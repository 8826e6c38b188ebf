package sds

import (
	"fmt"
	"testing"
	"time"
)

func TestTTLCache(t *testing.T) {
	c := newTTLCache(30 * time.Second)
	now := t0
	c.put("web", "web", []byte("a"), now)
	if b, ok := c.get("web", "web", now.Add(29*time.Second)); !ok || string(b) != "a" {
		t.Errorf("get before the TTL = %q, %v", b, ok)
	}
	if _, ok := c.get("web", "web", now.Add(30*time.Second)); ok {
		t.Error("an entry was served at its TTL")
	}
	if _, ok := c.get("other", "other", now); ok {
		t.Error("an unknown key was served")
	}
	// Bounded: expired entries go first, then an arbitrary one.
	for i := range maxCached {
		c.put(fmt.Sprint(i), fmt.Sprint(i), []byte("x"), now)
	}
	c.put("new", "new", []byte("n"), now)
	if len(c.entries) != maxCached {
		t.Errorf("%d entries, want %d", len(c.entries), maxCached)
	}
	c.put("later", "later", []byte("l"), now.Add(time.Hour))
	if len(c.entries) != 1 {
		t.Errorf("after expiry %d entries, want 1", len(c.entries))
	}
}

func TestMemo(t *testing.T) {
	m := newMemo()
	m.put("web", memoEntry{name: "web", index: 5, body: []byte("five")})
	if e, ok := m.get("web", "web", 5); !ok || string(e.body) != "five" {
		t.Errorf("get(5) = %q, %v", e.body, ok)
	}
	if _, ok := m.get("web", "Web", 5); ok {
		t.Error("an answer was reused for another spelling of the name")
	}
	if _, ok := m.get("web", "web", 6); ok {
		t.Error("an answer was reused at another index")
	}
	m.put("web", memoEntry{name: "web", index: 4, body: []byte("four")}) // older: ignored
	if e, _ := m.get("web", "web", 5); string(e.body) != "five" {
		t.Error("an older answer replaced a newer one")
	}
	for i := range maxCached + 10 {
		m.put(fmt.Sprint(i), memoEntry{index: 1})
	}
	if len(m.entries) > maxCached {
		t.Errorf("memo holds %d entries", len(m.entries))
	}
}
