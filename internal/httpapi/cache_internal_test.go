package httpapi

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestAnswerCacheBuildsOnce(t *testing.T) {
	c := newAnswerCache(8)
	var builds atomic.Int32
	release := make(chan struct{})
	build := func() ([]byte, error) {
		builds.Add(1)
		<-release
		return []byte("answer"), nil
	}
	const callers = 16
	var wg sync.WaitGroup
	var hits atomic.Int32
	started := make(chan struct{}, callers)
	for range callers {
		wg.Go(func() {
			started <- struct{}{}
			body, hit, err := c.getOrBuild("k", 5, build)
			if err != nil || string(body) != "answer" {
				t.Errorf("getOrBuild = %q, %v", body, err)
			}
			if hit {
				hits.Add(1)
			}
		})
	}
	for range callers {
		<-started
	}
	// A plain get of the same key and index waits for the build too.
	got := make(chan []byte, 1)
	go func() {
		b, _ := c.get("k", 5)
		got <- b
	}()
	close(release)
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Errorf("built %d times, want once", n)
	}
	if h := hits.Load(); h != callers-1 {
		t.Errorf("%d hits, want %d", h, callers-1)
	}
	if b := <-got; b != nil && string(b) != "answer" {
		t.Errorf("get = %q", b)
	}
	if b, ok := c.get("k", 5); !ok || string(b) != "answer" {
		t.Errorf("get after build = %q %v", b, ok)
	}
	if _, ok := c.get("k", 6); ok {
		t.Error("get at another index hit")
	}
}

func TestAnswerCacheKeepsNewest(t *testing.T) {
	c := newAnswerCache(8)
	mk := func(s string) func() ([]byte, error) { return func() ([]byte, error) { return []byte(s), nil } }
	c.getOrBuild("k", 9, mk("nine"))
	// An older index is built for its caller but does not replace the newer.
	body, hit, err := c.getOrBuild("k", 7, mk("seven"))
	if string(body) != "seven" || hit || err != nil {
		t.Errorf("older build = %q %v %v", body, hit, err)
	}
	if b, ok := c.get("k", 9); !ok || string(b) != "nine" {
		t.Errorf("newest answer lost: %q %v", b, ok)
	}
	// A newer index replaces it.
	c.getOrBuild("k", 10, mk("ten"))
	if _, ok := c.get("k", 9); ok {
		t.Error("replaced answer still served")
	}
	c.clear()
	if _, ok := c.get("k", 10); ok {
		t.Error("answer served after clear")
	}
}

func TestAnswerCacheErrorsAreNotKept(t *testing.T) {
	c := newAnswerCache(8)
	boom := errors.New("boom")
	if _, _, err := c.getOrBuild("k", 1, func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if _, ok := c.get("k", 1); ok {
		t.Error("a failed build is served")
	}
	body, hit, err := c.getOrBuild("k", 1, func() ([]byte, error) { return []byte("ok"), nil })
	if err != nil || hit || string(body) != "ok" {
		t.Errorf("rebuild = %q %v %v", body, hit, err)
	}
}

func TestAnswerCacheBounded(t *testing.T) {
	c := newAnswerCache(3)
	for i, k := range []string{"a", "b", "c", "d", "e"} {
		c.getOrBuild(k, uint64(i+1), func() ([]byte, error) { return []byte(k), nil })
	}
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	if n != 3 {
		t.Errorf("%d entries, want the bound 3", n)
	}
	if b, ok := c.get("e", 5); !ok || string(b) != "e" {
		t.Error("the newest key was evicted")
	}
}
