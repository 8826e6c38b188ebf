package httpapi

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// peek returns the finished answer kept for key at index, without building.
func peek(c *answerCache, key string, index uint64) ([]byte, bool) {
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e == nil || e.index != index {
		return nil, false
	}
	<-e.done
	return e.body, e.err == nil
}

// fixed builds body at index.
func fixed(body string, index uint64) func() ([]byte, uint64, error) {
	return func() ([]byte, uint64, error) { return []byte(body), index, nil }
}

func TestAnswerCacheBuildsOnce(t *testing.T) {
	c := newAnswerCache(8)
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
			body, idx, hit, err := c.getOrBuild("k", 5, build)
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

func TestAnswerCacheKeepsNewest(t *testing.T) {
	c := newAnswerCache(8)
	c.getOrBuild("k", 9, fixed("nine", 9))
	// An older index is built for its caller but does not replace the newer.
	body, _, hit, err := c.getOrBuild("k", 7, fixed("seven", 7))
	if string(body) != "seven" || hit || err != nil {
		t.Errorf("older build = %q %v %v", body, hit, err)
	}
	if b, ok := peek(c, "k", 9); !ok || string(b) != "nine" {
		t.Errorf("newest answer lost: %q %v", b, ok)
	}
	// A newer index replaces it.
	c.getOrBuild("k", 10, fixed("ten", 10))
	if _, ok := peek(c, "k", 9); ok {
		t.Error("replaced answer still served")
	}
	c.clear()
	if _, ok := peek(c, "k", 10); ok {
		t.Error("answer served after clear")
	}
}

// The state may move on between reading an index and building its
// answer: the body is then kept under the index it shows, never under the
// one asked for.
func TestAnswerCacheRekeysNewerBuild(t *testing.T) {
	c := newAnswerCache(8)
	body, idx, _, err := c.getOrBuild("k", 4, fixed("six", 6))
	if err != nil || string(body) != "six" || idx != 6 {
		t.Fatalf("getOrBuild = %q at %d, %v", body, idx, err)
	}
	if _, ok := peek(c, "k", 4); ok {
		t.Error("a body showing index 6 is kept under 4")
	}
	body, idx, hit, _ := c.getOrBuild("k", 6, fixed("rebuilt", 6))
	if !hit || string(body) != "six" || idx != 6 {
		t.Errorf("at 6: %q at %d, hit %v; want the kept answer", body, idx, hit)
	}
}

func TestAnswerCacheErrorsAreNotKept(t *testing.T) {
	c := newAnswerCache(8)
	boom := errors.New("boom")
	if _, _, _, err := c.getOrBuild("k", 1, func() ([]byte, uint64, error) { return nil, 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if _, ok := peek(c, "k", 1); ok {
		t.Error("a failed build is kept")
	}
	body, _, hit, err := c.getOrBuild("k", 1, fixed("ok", 1))
	if err != nil || hit || string(body) != "ok" {
		t.Errorf("rebuild = %q %v %v", body, hit, err)
	}
}

func TestAnswerCacheBounded(t *testing.T) {
	c := newAnswerCache(3)
	for i, k := range []string{"a", "b", "c", "d", "e"} {
		c.getOrBuild(k, uint64(i+1), fixed(k, uint64(i+1)))
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
