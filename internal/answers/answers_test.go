package answers

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// peek returns the finished answer kept for key at index, without building.
func peek(c *Cache, key string, index uint64) ([]byte, bool) {
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e == nil || e.index != index {
		return nil, false
	}
	<-e.done
	return e.ans.Body, e.err == nil
}

// get is Get for a builder without a shared value.
func (c *Cache) get(key string, index uint64, build func() ([]byte, uint64, error)) ([]byte, uint64, bool, error) {
	ans, hit, err := c.Get(key, index, func() ([]byte, uint64, any, error) {
		b, i, err := build()
		return b, i, nil, err
	})
	return ans.Body, ans.Index, hit, err
}

// fixed builds body at index.
func fixed(body string, index uint64) func() ([]byte, uint64, error) {
	return func() ([]byte, uint64, error) { return []byte(body), index, nil }
}

func TestCacheBuildsOnce(t *testing.T) {
	c := New(8, 0)
	var builds atomic.Int32
	release := make(chan struct{})
	build := func() ([]byte, uint64, error) {
		builds.Add(1)
		<-release
		return []byte("answer"), 5, nil
	}
	const callers = 16
	var wg sync.WaitGroup
	var hits atomic.Int32
	started := make(chan struct{}, callers)
	for range callers {
		wg.Go(func() {
			started <- struct{}{}
			body, idx, hit, err := c.get("k", 5, build)
			if err != nil || string(body) != "answer" || idx != 5 {
				t.Errorf("getOrBuild = %q at %d, %v", body, idx, err)
			}
			if hit {
				hits.Add(1)
			}
		})
	}
	for range callers {
		<-started
	}
	close(release)
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Errorf("built %d times, want once", n)
	}
	if h := hits.Load(); h != callers-1 {
		t.Errorf("%d hits, want %d", h, callers-1)
	}
	if b, ok := peek(c, "k", 5); !ok || string(b) != "answer" {
		t.Errorf("kept answer = %q %v", b, ok)
	}
}

func TestCacheKeepsNewest(t *testing.T) {
	c := New(8, 0)
	c.get("k", 9, fixed("nine", 9))
	// An older index is built for its caller but does not replace the newer.
	body, _, hit, err := c.get("k", 7, fixed("seven", 7))
	if string(body) != "seven" || hit || err != nil {
		t.Errorf("older build = %q %v %v", body, hit, err)
	}
	if b, ok := peek(c, "k", 9); !ok || string(b) != "nine" {
		t.Errorf("newest answer lost: %q %v", b, ok)
	}
	// A newer index replaces it.
	c.get("k", 10, fixed("ten", 10))
	if _, ok := peek(c, "k", 9); ok {
		t.Error("replaced answer still served")
	}
	c.Clear()
	if _, ok := peek(c, "k", 10); ok {
		t.Error("answer served after clear")
	}
}

// The state may move on between reading an index and building its
// answer: the body is then kept under the index it shows, never under the
// one asked for.
func TestCacheRekeysNewerBuild(t *testing.T) {
	c := New(8, 0)
	body, idx, _, err := c.get("k", 4, fixed("six", 6))
	if err != nil || string(body) != "six" || idx != 6 {
		t.Fatalf("getOrBuild = %q at %d, %v", body, idx, err)
	}
	if _, ok := peek(c, "k", 4); ok {
		t.Error("a body showing index 6 is kept under 4")
	}
	body, idx, hit, _ := c.get("k", 6, fixed("rebuilt", 6))
	if !hit || string(body) != "six" || idx != 6 {
		t.Errorf("at 6: %q at %d, hit %v; want the kept answer", body, idx, hit)
	}
}

func TestCacheErrorsAreNotKept(t *testing.T) {
	c := New(8, 0)
	boom := errors.New("boom")
	if _, _, _, err := c.get("k", 1, func() ([]byte, uint64, error) { return nil, 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if _, ok := peek(c, "k", 1); ok {
		t.Error("a failed build is kept")
	}
	body, _, hit, err := c.get("k", 1, fixed("ok", 1))
	if err != nil || hit || string(body) != "ok" {
		t.Errorf("rebuild = %q %v %v", body, hit, err)
	}
}

func TestCacheBounded(t *testing.T) {
	c := New(3, 0)
	for i, k := range []string{"a", "b", "c", "d", "e"} {
		c.get(k, uint64(i+1), fixed(k, uint64(i+1)))
	}
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	if n != 3 {
		t.Errorf("%d entries, want the bound 3", n)
	}
	if b, ok := peek(c, "e", 5); !ok || string(b) != "e" {
		t.Error("the newest key was evicted")
	}
}

func TestCacheBoundedByBytes(t *testing.T) {
	c := New(100, 10)
	for i, k := range []string{"a", "b", "c", "d"} {
		c.get(k, uint64(i+1), fixed("1234", uint64(i+1))) // 4 bytes each
	}
	n, size := c.Len()
	if size > 10 || n != 2 {
		t.Errorf("%d entries of %d bytes, want 2 within the 10-byte bound", n, size)
	}
	if b, ok := peek(c, "d", 4); !ok || string(b) != "1234" {
		t.Error("the newest answer was evicted")
	}
	// Replacing an answer with a newer one counts only the newer.
	c.get("d", 5, fixed("12", 5))
	if _, size := c.Len(); size != 6 {
		t.Errorf("%d bytes after replacing d's answer, want 6", size)
	}
	c.Clear()
	if n, size := c.Len(); n != 0 || size != 0 {
		t.Errorf("after Clear: %d entries, %d bytes", n, size)
	}
}

func TestCacheSharesAux(t *testing.T) {
	c := New(0, 0)
	m := map[string]uint64{"a": 1}
	a, _, _ := c.Get("k", 1, func() ([]byte, uint64, any, error) { return []byte("x"), 1, m, nil })
	b, hit, _ := c.Get("k", 1, func() ([]byte, uint64, any, error) { return nil, 0, nil, errors.New("rebuilt") })
	if !hit || b.Aux.(map[string]uint64)["a"] != 1 || a.Gzip != b.Gzip {
		t.Errorf("second caller got %+v (hit %v), want the first answer's aux and gzip slot", b, hit)
	}
}
