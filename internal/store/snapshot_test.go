package store_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// populate builds a varied state: several services, every health, active
// and TTL checks, repos, metadata, and a tombstone.
func populate(t testing.TB, f *fixture) {
	t.Helper()
	f.register(t, inst(t, "web", "a", ttl(time.Minute), tags("v1", "primary"), repo("github.com/x/web"),
		func(in *registry.Instance) {
			in.Meta = map[string]string{"env": "prod"}
			in.Zone = "eu-1"
			in.Weight = 7
		}))
	f.register(t, inst(t, "web", "b", ttl(time.Minute), tcp("probe", "10.0.0.2:80"), repo("github.com/x/web")))
	f.register(t, inst(t, "web", "c", httpCheck("h", "http://10.0.0.3/health")))
	f.register(t, inst(t, "db", "x", func(in *registry.Instance) { in.Address = "db.internal"; in.Canary = true; in.Revision = "abc" }))
	f.register(t, inst(t, "gone", "g", ttl(time.Minute)))
	f.now = f.now.Add(time.Minute)
	f.setCheck(t, "web", "a", registry.TTLCheckID, registry.Warning, "slow")
	f.setCheck(t, "web", "b", "probe", registry.Passing, "ok")
	f.setCheck(t, "web", "b", registry.TTLCheckID, registry.Critical, "lapsed")
	f.mustApply(t, &registry.DeregisterOp{Key: registry.Key{Service: "gone", ID: "g"}})
	f.register(t, inst(t, "db", "y"))
}

func persist(t testing.TB, st *store.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := st.Snapshot().Persist(&buf); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	return buf.Bytes()
}

// view is everything a reader can see of a store.
type view struct {
	Last         uint64
	ServicesIdx  uint64
	Services     []registry.ServiceSummary
	Instances    map[string][]*registry.Instance
	ServiceIndex map[string]uint64
	Checks       map[registry.CheckType][]registry.CheckRef
	ChecksIdx    uint64
	ByRepo       []*registry.Instance
	Stats        store.Stats
}

func viewOf(st *store.Store) view {
	v := view{Last: st.LastIndex(), Instances: map[string][]*registry.Instance{}, ServiceIndex: map[string]uint64{},
		Checks: map[registry.CheckType][]registry.CheckRef{}}
	v.ServicesIdx, v.Services = st.Services()
	for _, name := range []string{"web", "db", "gone", "never"} {
		v.ServiceIndex[name], v.Instances[name] = st.Instances(name)
	}
	for _, typ := range []registry.CheckType{registry.CheckTTL, registry.CheckHTTP, registry.CheckTCP, registry.CheckGRPC} {
		v.ChecksIdx, v.Checks[typ] = st.Checks(typ)
	}
	v.ByRepo = st.InstancesByRepo("github.com/x/web")
	v.Stats = st.Stats()
	return v
}

func TestSnapshotRoundTrip(t *testing.T) {
	f := newFixture()
	populate(t, f)
	orig := persist(t, f.st)
	if sn := f.st.Snapshot(); sn.Index() != f.idx {
		t.Errorf("Snapshot().Index() = %d, want %d", sn.Index(), f.idx)
	}

	restored := store.New()
	if err := restored.Restore(bytes.NewReader(orig)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := persist(t, restored); !bytes.Equal(got, orig) {
		t.Errorf("Persist after Restore differs:\n got %s\nwant %s", got, orig)
	}
	want, got := viewOf(f.st), viewOf(restored)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("restored state differs:\n got %+v\nwant %+v", got, want)
	}
	// The tombstone kept the service's index.
	if got.ServiceIndex["gone"] == 0 || len(got.Instances["gone"]) != 0 {
		t.Errorf("tombstone lost: index %d instances %d", got.ServiceIndex["gone"], len(got.Instances["gone"]))
	}
	// Writes continue from the restored state.
	f2 := &fixture{st: restored, idx: f.idx, now: f.now}
	res := f2.register(t, inst(t, "gone", "g"))
	if !res.Created || serviceIndex(restored, "gone") <= want.ServiceIndex["gone"] {
		t.Errorf("re-creating the tombstoned service: index %d, want past %d", serviceIndex(restored, "gone"), want.ServiceIndex["gone"])
	}
	if _, err := store.Validate(bytes.NewReader(orig)); err != nil {
		t.Errorf("Validate of a good snapshot: %v", err)
	}
}

func TestSnapshotIsImmutable(t *testing.T) {
	f := newFixture()
	populate(t, f)
	want := persist(t, f.st)
	sn := f.st.Snapshot()
	at := f.idx
	f.register(t, inst(t, "late", "z"))
	f.mustApply(t, &registry.DeregisterOp{Key: registry.Key{Service: "web", ID: "a"}})
	var buf bytes.Buffer
	if err := sn.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("a snapshot taken at %d changed with later writes", at)
	}
	if sn.Index() != at {
		t.Errorf("snapshot index %d, want %d", sn.Index(), at)
	}
}

func TestSnapshotEmptyStore(t *testing.T) {
	st := store.New()
	b := persist(t, st)
	other := store.New()
	if err := other.Restore(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(viewOf(other), viewOf(st)) {
		t.Errorf("empty round trip differs")
	}
}

func TestRestoreReplacesAndWakes(t *testing.T) {
	src := newFixture()
	src.register(t, inst(t, "web", "only"))
	snap := persist(t, src.st)

	f := newFixture()
	populate(t, f)
	var chans []<-chan struct{}
	for _, k := range []string{"web", "db", "never", registry.WatchServices, registry.WatchChecks} {
		ch, rel := f.st.Watch(k)
		defer rel()
		chans = append(chans, ch)
	}
	if err := f.st.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	for i, ch := range chans {
		if !closed(ch) {
			t.Errorf("watcher %d not woken by Restore", i)
		}
	}
	if !reflect.DeepEqual(viewOf(f.st), viewOf(src.st)) {
		t.Errorf("Restore did not replace the whole state:\n got %+v\nwant %+v", viewOf(f.st), viewOf(src.st))
	}
	if f.st.Stats().Watchers != 0 {
		t.Errorf("Watchers = %d after Restore", f.st.Stats().Watchers)
	}
}

func TestRestoreGarbageLeavesState(t *testing.T) {
	f := newFixture()
	populate(t, f)
	good := string(persist(t, f.st))
	header, _, _ := strings.Cut(good, "\n")
	tests := []struct {
		name string
		data string
	}{
		{"empty", ""},
		{"not json", "hello"},
		{"header wrong type", `[1,2]`},
		{"unknown version", `{"version":2,"indexes":{}}`},
		{"missing version", `{"indexes":{"last":3}}`},
		{"garbage after header", header + "\n{nope"},
		{"truncated record", header + "\n" + `{"instance":{"service":"web","id":"a"`},
		{"type mismatch", header + "\n" + `{"instance":{"service":"web","id":"a","port":"80"}}`},
		{"instance without key", header + "\n" + `{"instance":{"address":"10.0.0.1"}}`},
		{"truncated snapshot", good[:len(good)-10]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := persist(t, f.st)
			ch, rel := f.st.Watch("web")
			defer rel()
			if err := f.st.Restore(strings.NewReader(tc.data)); err == nil {
				t.Fatal("Restore accepted garbage")
			}
			if _, err := store.Validate(strings.NewReader(tc.data)); err == nil {
				t.Error("Validate accepted garbage")
			}
			if after := persist(t, f.st); !bytes.Equal(after, before) {
				t.Error("a failed Restore changed the state")
			}
			if closed(ch) {
				t.Error("a failed Restore woke watchers")
			}
		})
	}
	t.Run("read error", func(t *testing.T) {
		r := io.MultiReader(strings.NewReader(good[:len(good)/2]), iotest.ErrReader(errors.New("disk on fire")))
		if err := f.st.Restore(r); err == nil {
			t.Error("Restore ignored a read error")
		}
	})
}

// TestRestoreRecomputesCounts: a snapshot's service counts are derived
// from its instances, not trusted.
func TestRestoreRecomputesCounts(t *testing.T) {
	snap := `{"version":1,"indexes":{"last":9,"services":9,"checks":4}}
{"service":{"name":"web","instances":99,"passing":99,"warning":0,"critical":0,"modify_index":9}}
{"instance":{"service":"web","id":"a","address":"10.0.0.1","port":80,"weight":1,"priority":0,"canary":false,"checks":[{"id":"ttl","type":"ttl","ttl":"1m0s","status":"critical"}],"health":"passing","create_index":3,"modify_index":9}}
`
	st := store.New()
	if err := st.Restore(strings.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	_, svcs := st.Services()
	if len(svcs) != 1 || svcs[0].Instances != 1 || svcs[0].Critical != 1 || svcs[0].Passing != 0 || svcs[0].ModifyIndex != 9 {
		t.Errorf("services %+v, want web with 1 critical instance at 9", svcs)
	}
	in, err := st.Instance(registry.Key{Service: "web", ID: "a"})
	if err != nil || in.Health != registry.Critical {
		t.Errorf("instance %+v %v, want health recomputed to critical", in, err)
	}
	if st.LastIndex() != 9 {
		t.Errorf("LastIndex %d, want 9", st.LastIndex())
	}
}
