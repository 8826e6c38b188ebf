package health

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rosterhq/roster/internal/registry"
)

// fakeRegistry is an in-memory Registry. Like the store, it closes the
// checks watch when a check is added, removed or redefined, not when a
// status changes.
type fakeRegistry struct {
	mu     sync.Mutex
	checks map[checkKey]registry.CheckRef
	watch  chan struct{}
	sets   []setCall
	deregs []deregCall
	// onSet, when set, is called (without the lock) at each
	// SetCheckStatus; what it returns is recorded with the call.
	onSet func() int
	// deregErr, when set, is returned by the next DeregisterIfCritical.
	deregErr error
}

type setCall struct {
	key    registry.Key
	id     string
	status registry.Health
	output string
	at     int // what onSet returned
	time   time.Time
}

type deregCall struct {
	key  registry.Key
	id   string
	err  error
	time time.Time
}

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{checks: map[checkKey]registry.CheckRef{}, watch: make(chan struct{})}
}

// notify closes the watch channel; mu must be held.
func (f *fakeRegistry) notify() {
	close(f.watch)
	f.watch = make(chan struct{})
}

// put adds or replaces a check.
func (f *fakeRegistry) put(ref registry.CheckRef) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks[checkKey{ref.Key, ref.Check.ID}] = ref
	f.notify()
}

// remove removes a check, telling watchers when notify is set.
func (f *fakeRegistry) remove(key registry.Key, id string, notify bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.checks, checkKey{key, id})
	if notify {
		f.notify()
	}
}

func (f *fakeRegistry) status(key registry.Key, id string) (registry.Health, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ref, ok := f.checks[checkKey{key, id}]
	return ref.Check.Status, ok
}

func (f *fakeRegistry) setCalls() []setCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sets)
}

func (f *fakeRegistry) deregCalls() []deregCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.deregs)
}

func (f *fakeRegistry) Checks(typ registry.CheckType) (uint64, []registry.CheckRef) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []registry.CheckRef
	for _, ref := range f.checks {
		if ref.Check.Type == typ {
			out = append(out, ref)
		}
	}
	slices.SortFunc(out, func(a, b registry.CheckRef) int {
		return cmp.Or(cmp.Compare(a.Key.Service, b.Key.Service), cmp.Compare(a.Key.ID, b.Key.ID),
			cmp.Compare(a.Check.ID, b.Check.ID))
	})
	return 1, out
}

func (f *fakeRegistry) Watch(string) (<-chan struct{}, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watch, func() {}
}

func (f *fakeRegistry) SetCheckStatus(_ context.Context, key registry.Key, id string, status registry.Health, output string) (registry.ApplyResult, error) {
	at := 0
	if f.onSet != nil {
		at = f.onSet()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := checkKey{key, id}
	ref, ok := f.checks[k]
	if !ok {
		return registry.ApplyResult{}, fmt.Errorf("check %s of %s/%s: %w", id, key.Service, key.ID, registry.ErrNotFound)
	}
	now := time.Now()
	f.sets = append(f.sets, setCall{key: key, id: id, status: status, output: output, at: at, time: now})
	switch {
	case status != registry.Critical:
		ref.Check.CriticalSince = time.Time{}
	case ref.Check.Status != registry.Critical:
		ref.Check.CriticalSince = now
	}
	ref.Check.Status, ref.Check.Output = status, output
	f.checks[k] = ref
	return registry.ApplyResult{Index: 2}, nil
}

func (f *fakeRegistry) DeregisterIfCritical(_ context.Context, key registry.Key, id string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ref, ok := f.checks[checkKey{key, id}]
	var err error
	switch {
	case f.deregErr != nil:
		err, f.deregErr = f.deregErr, nil
	case !ok:
		err = fmt.Errorf("instance %s/%s: %w", key.Service, key.ID, registry.ErrNotFound)
	case ref.Check.Status != registry.Critical:
		err = fmt.Errorf("check %s is not critical: %w", id, registry.ErrConflict)
	}
	f.deregs = append(f.deregs, deregCall{key: key, id: id, err: err, time: time.Now()})
	if err != nil {
		return 0, err
	}
	for k := range f.checks {
		if k.key == key {
			delete(f.checks, k)
		}
	}
	f.notify()
	return 3, nil
}
