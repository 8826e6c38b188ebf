package httpapi_test

import (
	"net/http"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/httpapi"
	"github.com/rosterhq/roster/internal/registry"
)

const eventWait = 20 * time.Second

func keys(ks []registry.Key) []string {
	out := []string{}
	for _, k := range ks {
		out = append(out, k.Service+"/"+k.ID)
	}
	return out
}

// expect reads the next event and checks its kind and content.
func expect(t *testing.T, st *stream, event string, instances, upserted, deleted []string) sseEvent {
	t.Helper()
	ev := st.next(t, eventWait)
	if ev.event != event {
		t.Fatalf("event %q (%+v), want %q", ev.event, ev.data, event)
	}
	if ev.id != strconv.FormatUint(ev.data.Index, 10) {
		t.Errorf("event id %q, data index %d", ev.id, ev.data.Index)
	}
	if instances != nil && !reflect.DeepEqual(instanceIDs(ev.data.Instances), instances) {
		t.Errorf("%s instances %v, want %v", event, instanceIDs(ev.data.Instances), instances)
	}
	if upserted != nil && !reflect.DeepEqual(instanceIDs(ev.data.Upserted), upserted) {
		t.Errorf("%s upserted %v, want %v", event, instanceIDs(ev.data.Upserted), upserted)
	}
	if deleted != nil && !reflect.DeepEqual(keys(ev.data.Deleted), deleted) {
		t.Errorf("%s deleted %v, want %v", event, keys(ev.data.Deleted), deleted)
	}
	return ev
}

func inst(id string, tags ...string) *registry.Instance {
	return &registry.Instance{Service: "web", ID: id, Address: "10.0.0.1", Port: 80, Tags: tags,
		Checks: []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute)}}}
}

func TestWatch(t *testing.T) {
	s := newStack(t)
	s.register(t, inst("a"))
	st := s.watch(t, "/v1/services/web/watch")
	if ct := st.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	snap := expect(t, st, "snapshot", []string{"a"}, []string{}, []string{})
	if h := st.resp.Header.Get(httpapi.IndexHeader); h != snap.id {
		t.Errorf("%s %q, snapshot id %q", httpapi.IndexHeader, h, snap.id)
	}

	b := s.register(t, inst("b"))
	ev := expect(t, st, "change", []string{}, []string{"b"}, []string{})
	if ev.data.Index != b.Index {
		t.Errorf("change index %d, want %d", ev.data.Index, b.Index)
	}
	if _, err := s.reg.SetCheckStatus(t.Context(), registry.Key{Service: "web", ID: "a"}, "ttl", registry.Critical, ""); err != nil {
		t.Fatal(err)
	}
	ev = expect(t, st, "change", []string{}, []string{"a"}, []string{})
	if ev.data.Upserted[0].Health != registry.Critical {
		t.Errorf("upserted health %q, want critical", ev.data.Upserted[0].Health)
	}
	if _, err := s.reg.Deregister(t.Context(), registry.Key{Service: "web", ID: "b"}); err != nil {
		t.Fatal(err)
	}
	expect(t, st, "change", []string{}, []string{}, []string{"web/b"})
}

func TestWatchOtherServiceSendsNothing(t *testing.T) {
	s := newStack(t)
	s.register(t, inst("a"))
	st := s.watch(t, "/v1/services/web/watch")
	expect(t, st, "snapshot", []string{"a"}, nil, nil)
	s.register(t, &registry.Instance{Service: "db", ID: "x", Address: "10.0.0.1", Port: 1})
	s.register(t, &registry.Instance{Service: "webapp", ID: "x", Address: "10.0.0.1", Port: 1})
	c := s.register(t, inst("c"))
	ev := expect(t, st, "change", nil, []string{"c"}, []string{})
	if ev.data.Index != c.Index {
		t.Errorf("first event after other services' changes has index %d, want web's %d", ev.data.Index, c.Index)
	}
}

func TestWatchResume(t *testing.T) {
	s := newStack(t)
	s.register(t, inst("a"))
	st := s.watch(t, "/v1/services/web/watch")
	old := expect(t, st, "snapshot", []string{"a"}, nil, nil)
	s.register(t, inst("b"))
	cur := expect(t, st, "change", nil, []string{"b"}, nil)
	st.close()

	t.Run("current Last-Event-ID gets changes only", func(t *testing.T) {
		st := s.watch(t, "/v1/services/web/watch", "Last-Event-ID", cur.id)
		c := s.register(t, inst("c"))
		ev := expect(t, st, "change", nil, []string{"c"}, []string{})
		if ev.data.Index != c.Index {
			t.Errorf("index %d, want %d", ev.data.Index, c.Index)
		}
		cur = ev
	})
	t.Run("current ?index= gets changes only", func(t *testing.T) {
		st := s.watch(t, "/v1/services/web/watch?index="+cur.id)
		if _, err := s.reg.Deregister(t.Context(), registry.Key{Service: "web", ID: "a"}); err != nil {
			t.Fatal(err)
		}
		cur = expect(t, st, "change", nil, []string{}, []string{"web/a"})
	})
	t.Run("stale Last-Event-ID gets a snapshot", func(t *testing.T) {
		st := s.watch(t, "/v1/services/web/watch", "Last-Event-ID", old.id)
		ev := expect(t, st, "snapshot", []string{"b", "c"}, nil, nil)
		if ev.id != cur.id {
			t.Errorf("snapshot id %s, want the current %s", ev.id, cur.id)
		}
	})
	t.Run("Last-Event-ID from the future gets a snapshot", func(t *testing.T) {
		st := s.watch(t, "/v1/services/web/watch", "Last-Event-ID", "999999")
		expect(t, st, "snapshot", []string{"b", "c"}, nil, nil)
	})
	t.Run("bad Last-Event-ID", func(t *testing.T) {
		r := s.mustDo(t, http.StatusBadRequest, "GET", "/v1/services/web/watch", "", "Last-Event-ID", "abc")
		if got := fieldNames(decodeError(t, r.body)); !reflect.DeepEqual(got, []string{"Last-Event-ID"}) {
			t.Errorf("fields %q", got)
		}
	})
}

func TestWatchFiltered(t *testing.T) {
	s := newStack(t)
	s.register(t, inst("a", "v1"))
	s.register(t, inst("b", "v2"))
	st := s.watch(t, "/v1/services/web/watch?tag=v1")
	expect(t, st, "snapshot", []string{"a"}, nil, nil)
	// Outside the filter: no event. Then one inside.
	s.register(t, inst("c", "v2"))
	s.register(t, inst("d", "v1"))
	expect(t, st, "change", nil, []string{"d"}, []string{})
	// Leaving the filter is a deletion.
	s.register(t, inst("a", "v2"))
	expect(t, st, "change", nil, []string{}, []string{"web/a"})
	// Health filters follow health changes.
	hs := s.watch(t, "/v1/services/web/watch?status=passing")
	expect(t, hs, "snapshot", []string{"a", "b", "c", "d"}, nil, nil)
	if _, err := s.reg.SetCheckStatus(t.Context(), registry.Key{Service: "web", ID: "c"}, "ttl", registry.Critical, ""); err != nil {
		t.Fatal(err)
	}
	expect(t, hs, "change", nil, []string{}, []string{"web/c"})
}

func TestWatchKeepAlive(t *testing.T) {
	s := newStack(t, func(c *httpapi.Config) { c.KeepAlive = 20 * time.Millisecond })
	s.register(t, inst("a"))
	st := s.watch(t, "/v1/services/web/watch")
	expect(t, st, "snapshot", []string{"a"}, nil, nil)
	timer := time.NewTimer(eventWait)
	defer timer.Stop()
	for comments := 0; comments < 3; {
		select {
		case ev, ok := <-st.events:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.event != "comment" {
				t.Fatalf("unexpected event %q", ev.event)
			}
			comments++
		case <-timer.C:
			t.Fatal("no keep-alives")
		}
	}
	// The stream still carries changes after keep-alives.
	s.register(t, inst("b"))
	expect(t, st, "change", nil, []string{"b"}, nil)
}

// TestWatchEmptyRegistryDoesNotSpin: on a registry that has had no write
// yet, a watch waits for a change instead of looping. (Before Block
// compared the reported index 1 with a LastIndex of 0, the stream wrote
// keep-alives in a busy loop.)
func TestWatchEmptyRegistryDoesNotSpin(t *testing.T) {
	s := newStack(t) // KeepAlive is an hour
	st := s.watch(t, "/v1/services/web/watch")
	expect(t, st, "snapshot", []string{}, nil, nil)
	window := time.NewTimer(300 * time.Millisecond)
	defer window.Stop()
	comments := 0
loop:
	for {
		select {
		case ev := <-st.events:
			if ev.event != "comment" {
				t.Fatalf("unexpected event %q", ev.event)
			}
			comments++
		case <-window.C:
			break loop
		}
	}
	if comments > 0 {
		t.Errorf("%d keep-alives in 300ms with a keep-alive interval of an hour: the stream spins", comments)
	}
	s.register(t, inst("a"))
	expect(t, st, "change", nil, []string{"a"}, nil)
}

func TestWatchEndsOnDrain(t *testing.T) {
	s := newStack(t)
	st := s.watch(t, "/v1/services/web/watch")
	expect(t, st, "snapshot", []string{}, nil, nil)
	s.reg.Drain()
	timer := time.NewTimer(eventWait)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-st.events:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatal("stream did not end on Drain")
		}
	}
}

// Watchers of one query at the same index share one encoded change event;
// a watcher of another filter, or one that joined later, still gets its
// own exact changes.
func TestWatchersShareChangeEvents(t *testing.T) {
	s := newStack(t)
	s.register(t, inst("a", "v1"))
	w1 := s.watch(t, "/v1/services/web/watch")
	expect(t, w1, "snapshot", []string{"a"}, nil, nil)
	tagged := s.watch(t, "/v1/services/web/watch?tag=v1")
	expect(t, tagged, "snapshot", []string{"a"}, nil, nil)

	s.register(t, inst("b"))
	expect(t, w1, "change", nil, []string{"b"}, nil)
	w2 := s.watch(t, "/v1/services/web/watch")
	expect(t, w2, "snapshot", []string{"a", "b"}, nil, nil)

	hits := s.counter(t, "roster_http_answer_cache_hits_total")
	s.register(t, inst("c", "v1"))
	e1 := expect(t, w1, "change", []string{}, []string{"c"}, []string{})
	e2 := expect(t, w2, "change", []string{}, []string{"c"}, []string{})
	if !reflect.DeepEqual(e1, e2) {
		t.Errorf("watchers at one index got different events:\n%+v\n%+v", e1, e2)
	}
	if got := s.counter(t, "roster_http_answer_cache_hits_total") - hits; got < 1 {
		t.Errorf("second watcher did not reuse the encoded event (cache hits +%v)", got)
	}
	// The tagged watcher never saw b: its change is c alone, from its own set.
	expect(t, tagged, "change", []string{}, []string{"c"}, []string{})

	if _, err := s.reg.Deregister(t.Context(), registry.Key{Service: "web", ID: "a"}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*stream{w1, w2, tagged} {
		expect(t, w, "change", []string{}, []string{}, []string{"web/a"})
	}
}
