package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// fixture applies ops to a store as the log would: encoded, one entry per
// op, at increasing indexes, with a clock the test moves.
type fixture struct {
	st  *store.Store
	idx uint64
	now time.Time
}

func newFixture() *fixture {
	return &fixture{st: store.New(), idx: 1, now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// apply writes op at the next index and returns the store's response.
func (f *fixture) apply(t testing.TB, op registry.Op) store.Response {
	t.Helper()
	b, err := store.Encode(op)
	if err != nil {
		t.Fatalf("Encode(%T): %v", op, err)
	}
	f.idx++
	return f.st.ApplyBatch([]store.Entry{{Index: f.idx, Data: b}})[0]
}

// mustApply is apply failing the test on an op error.
func (f *fixture) mustApply(t testing.TB, op registry.Op) registry.ApplyResult {
	t.Helper()
	r := f.apply(t, op)
	if r.Err != nil {
		t.Fatalf("apply %T at %d: %v", op, f.idx, r.Err)
	}
	if r.Result.Index != f.idx {
		t.Fatalf("result index %d, want %d", r.Result.Index, f.idx)
	}
	return r.Result
}

// inst returns a normalised instance, as Service.Register sends it.
func inst(t testing.TB, service, id string, mods ...func(*registry.Instance)) *registry.Instance {
	t.Helper()
	in := &registry.Instance{Service: service, ID: id, Address: "10.0.0.1", Port: 80}
	for _, m := range mods {
		m(in)
	}
	if err := registry.Normalize(in); err != nil {
		t.Fatalf("Normalize %s/%s: %v", service, id, err)
	}
	return in
}

func ttl(d time.Duration) func(*registry.Instance) {
	return func(in *registry.Instance) {
		in.Checks = append(in.Checks, registry.Check{Type: registry.CheckTTL, TTL: registry.Duration(d)})
	}
}

func tcp(id, target string) func(*registry.Instance) {
	return func(in *registry.Instance) {
		in.Checks = append(in.Checks, registry.Check{ID: id, Type: registry.CheckTCP, Target: target})
	}
}

func httpCheck(id, target string) func(*registry.Instance) {
	return func(in *registry.Instance) {
		in.Checks = append(in.Checks, registry.Check{ID: id, Type: registry.CheckHTTP, Target: target})
	}
}

func tags(tt ...string) func(*registry.Instance) {
	return func(in *registry.Instance) { in.Tags = tt }
}

func repo(r string) func(*registry.Instance) {
	return func(in *registry.Instance) { in.Repo = r }
}

func (f *fixture) register(t testing.TB, in *registry.Instance) registry.ApplyResult {
	t.Helper()
	return f.mustApply(t, &registry.RegisterOp{Instance: in, At: f.now})
}

func (f *fixture) setCheck(t testing.TB, service, id, check string, h registry.Health, out string) store.Response {
	t.Helper()
	return f.apply(t, &registry.SetCheckOp{Key: registry.Key{Service: service, ID: id}, CheckID: check, Status: h, Output: out, At: f.now})
}

func (f *fixture) get(t testing.TB, service, id string) *registry.Instance {
	t.Helper()
	in, err := f.st.Instance(registry.Key{Service: service, ID: id})
	if err != nil {
		t.Fatalf("Instance %s/%s: %v", service, id, err)
	}
	return in
}

func serviceIndex(st *store.Store, name string) uint64 {
	idx, _ := st.Instances(name)
	return idx
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestRegisterCreateAndReplace(t *testing.T) {
	f := newFixture()
	res := f.register(t, inst(t, "web", "a", tags("v1")))
	if !res.Created || res.Instance.CreateIndex != f.idx || res.Instance.ModifyIndex != f.idx {
		t.Fatalf("create: %+v", res)
	}
	created := f.idx
	res = f.register(t, inst(t, "web", "a", tags("v2")))
	if res.Created || res.Instance.CreateIndex != created || res.Instance.ModifyIndex != f.idx {
		t.Fatalf("replace: created %v create %d modify %d, want false %d %d", res.Created, res.Instance.CreateIndex, res.Instance.ModifyIndex, created, f.idx)
	}
	if got := f.get(t, "web", "a"); !reflect.DeepEqual(got.Tags, []string{"v2"}) {
		t.Errorf("tags %v, want [v2]", got.Tags)
	}
	if idx := serviceIndex(f.st, "web"); idx != f.idx {
		t.Errorf("service index %d, want %d", idx, f.idx)
	}
	if f.st.LastIndex() != f.idx {
		t.Errorf("LastIndex %d, want %d", f.st.LastIndex(), f.idx)
	}
}

func TestRegisterKeepsActiveCheckStatus(t *testing.T) {
	f := newFixture()
	created := f.now
	f.register(t, inst(t, "web", "a", tcp("probe", "10.0.0.1:80")))
	c := f.get(t, "web", "a").Check("probe")
	if c.Status != registry.Critical || !c.CriticalSince.Equal(created) {
		t.Fatalf("new active check: %q since %v, want critical since %v", c.Status, c.CriticalSince, created)
	}

	// Still critical across a re-registration: the original CriticalSince stays.
	f.now = f.now.Add(time.Minute)
	f.register(t, inst(t, "web", "a", tags("x"), tcp("probe", "10.0.0.1:80")))
	if c := f.get(t, "web", "a").Check("probe"); c.Status != registry.Critical || !c.CriticalSince.Equal(created) {
		t.Errorf("re-registered critical check: %q since %v, want critical since %v", c.Status, c.CriticalSince, created)
	}

	if r := f.setCheck(t, "web", "a", "probe", registry.Passing, "ok"); r.Err != nil {
		t.Fatal(r.Err)
	}
	// A periodic re-registration (with the default status critical)
	// keeps the passing status and output.
	f.register(t, inst(t, "web", "a", tags("y"), tcp("probe", "10.0.0.1:80")))
	got := f.get(t, "web", "a")
	if c := got.Check("probe"); c.Status != registry.Passing || c.Output != "ok" || !c.CriticalSince.IsZero() || got.Health != registry.Passing {
		t.Errorf("re-registered passing check: %+v health %q, want passing/ok", c, got.Health)
	}

	// A redefined target keeps the status too (same ID and type).
	f.register(t, inst(t, "web", "a", tags("y"), tcp("probe", "10.0.0.1:81")))
	if c := f.get(t, "web", "a").Check("probe"); c.Status != registry.Passing {
		t.Errorf("redefined check status %q, want passing kept", c.Status)
	}

	// The same ID with another type is a new check: critical from now.
	f.now = f.now.Add(time.Minute)
	f.register(t, inst(t, "web", "a", tags("y"), httpCheck("probe", "http://10.0.0.1/")))
	if c := f.get(t, "web", "a").Check("probe"); c.Status != registry.Critical || !c.CriticalSince.Equal(f.now) {
		t.Errorf("retyped check: %q since %v, want critical since %v", c.Status, c.CriticalSince, f.now)
	}
}

func TestRegisterTTLCheck(t *testing.T) {
	f := newFixture()
	f.register(t, inst(t, "web", "a", ttl(time.Minute)))
	if c := f.get(t, "web", "a").TTLCheck(); c.Status != registry.Passing {
		t.Fatalf("new ttl check %q, want passing (a registration is a heartbeat)", c.Status)
	}
	if r := f.setCheck(t, "web", "a", registry.TTLCheckID, registry.Critical, "lease expired"); r.Err != nil {
		t.Fatal(r.Err)
	}
	in := f.get(t, "web", "a")
	if in.Health != registry.Critical || !in.TTLCheck().CriticalSince.Equal(f.now) {
		t.Fatalf("after SetCheck critical: %+v", in.TTLCheck())
	}
	f.now = f.now.Add(time.Minute)
	// A re-registration that says nothing about status turns it passing.
	f.register(t, inst(t, "web", "a", ttl(time.Minute)))
	in = f.get(t, "web", "a")
	if c := in.TTLCheck(); c.Status != registry.Passing || c.Output != "" || !c.CriticalSince.IsZero() || in.Health != registry.Passing {
		t.Errorf("re-registered ttl check: %+v health %q, want passing without output", c, in.Health)
	}
	// Even when the registration names another status.
	f.register(t, inst(t, "web", "a", func(in *registry.Instance) {
		in.Checks = []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute), Status: registry.Critical}}
	}))
	if c := f.get(t, "web", "a").TTLCheck(); c.Status != registry.Passing {
		t.Errorf("re-registration with status critical: %q, want passing", c.Status)
	}

	// A new TTL check may start critical when the caller says so.
	f.register(t, inst(t, "web", "b", func(in *registry.Instance) {
		in.Checks = []registry.Check{{Type: registry.CheckTTL, TTL: registry.Duration(time.Minute), Status: registry.Critical}}
	}))
	if c := f.get(t, "web", "b").TTLCheck(); c.Status != registry.Critical || !c.CriticalSince.Equal(f.now) {
		t.Errorf("new ttl check given critical: %q since %v", c.Status, c.CriticalSince)
	}
}

func TestIdenticalRegisterIsNoop(t *testing.T) {
	f := newFixture()
	mods := []func(*registry.Instance){tags("a", "b"), ttl(time.Minute), tcp("probe", "10.0.0.1:80"), repo("git@x"),
		func(in *registry.Instance) { in.Meta = map[string]string{"k": "v"}; in.Zone = "eu" }}
	f.register(t, inst(t, "web", "a", mods...))
	f.register(t, inst(t, "db", "x"))
	before := f.get(t, "web", "a")
	svcIdx := serviceIndex(f.st, "web")
	sIdx, _ := f.st.Services()
	cIdx, _ := f.st.Checks(registry.CheckTCP)

	chWeb, relWeb := f.st.Watch(registry.WatchService("web"))
	defer relWeb()
	chAll, relAll := f.st.Watch(registry.WatchServices)
	defer relAll()
	chChecks, relChecks := f.st.Watch(registry.WatchChecks)
	defer relChecks()

	f.now = f.now.Add(time.Hour)
	res := f.register(t, inst(t, "web", "a", mods...))
	if res.Created {
		t.Error("no-op re-registration reported Created")
	}
	after := f.get(t, "web", "a")
	if after != before {
		t.Errorf("stored instance replaced:\nbefore %+v\n after %+v", before, after)
	}
	if res.Instance.ModifyIndex != before.ModifyIndex {
		t.Errorf("ModifyIndex %d, want unchanged %d", res.Instance.ModifyIndex, before.ModifyIndex)
	}
	if idx := serviceIndex(f.st, "web"); idx != svcIdx {
		t.Errorf("service index moved %d -> %d", svcIdx, idx)
	}
	if idx, _ := f.st.Services(); idx != sIdx {
		t.Errorf("services index moved %d -> %d", sIdx, idx)
	}
	if idx, _ := f.st.Checks(registry.CheckTCP); idx != cIdx {
		t.Errorf("checks index moved %d -> %d", cIdx, idx)
	}
	if closed(chWeb) || closed(chAll) || closed(chChecks) {
		t.Errorf("watchers woken by a no-op: service %v services %v checks %v", closed(chWeb), closed(chAll), closed(chChecks))
	}
	if f.st.LastIndex() != f.idx {
		t.Errorf("LastIndex %d, want the applied entry's %d", f.st.LastIndex(), f.idx)
	}
}

func TestSetCheck(t *testing.T) {
	f := newFixture()
	f.register(t, inst(t, "web", "a", ttl(time.Minute), tcp("probe", "10.0.0.1:80")))
	f.setCheck(t, "web", "a", "probe", registry.Passing, "")
	t0 := f.now
	steps := []struct {
		name       string
		check      string
		status     registry.Health
		output     string
		wantHealth registry.Health
		// wantSince is the check's CriticalSince after the step.
		wantSince time.Time
		// noop: nothing changes, no index moves.
		noop bool
	}{
		{name: "passing to warning", check: registry.TTLCheckID, status: registry.Warning, output: "slow", wantHealth: registry.Warning},
		{name: "same status and output", check: registry.TTLCheckID, status: registry.Warning, output: "slow", wantHealth: registry.Warning, noop: true},
		{name: "same status new output", check: registry.TTLCheckID, status: registry.Warning, output: "slower", wantHealth: registry.Warning},
		{name: "warning to critical", check: registry.TTLCheckID, status: registry.Critical, output: "down", wantHealth: registry.Critical, wantSince: t0.Add(3 * time.Minute)},
		{name: "critical new output keeps since", check: registry.TTLCheckID, status: registry.Critical, output: "still down", wantHealth: registry.Critical, wantSince: t0.Add(3 * time.Minute)},
		{name: "other check warning: health stays critical", check: "probe", status: registry.Warning, wantHealth: registry.Critical, wantSince: t0.Add(3 * time.Minute)},
		{name: "critical to passing", check: registry.TTLCheckID, status: registry.Passing, wantHealth: registry.Warning},
		{name: "critical again starts anew", check: registry.TTLCheckID, status: registry.Critical, wantHealth: registry.Critical, wantSince: t0.Add(7 * time.Minute)},
	}
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			f.now = t0.Add(time.Duration(i) * time.Minute)
			before := f.get(t, "web", "a")
			chWeb, rel := f.st.Watch("web")
			defer rel()
			r := f.setCheck(t, "web", "a", s.check, s.status, s.output)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			in := f.get(t, "web", "a")
			if in.Health != s.wantHealth {
				t.Errorf("health %q, want %q", in.Health, s.wantHealth)
			}
			if c := in.TTLCheck(); !c.CriticalSince.Equal(s.wantSince) {
				t.Errorf("ttl CriticalSince %v, want %v", c.CriticalSince, s.wantSince)
			}
			if c := in.Check(s.check); c.Status != s.status || c.Output != s.output {
				t.Errorf("check %s = %q %q, want %q %q", s.check, c.Status, c.Output, s.status, s.output)
			}
			if s.noop {
				if in != before || closed(chWeb) {
					t.Errorf("no-op SetCheck replaced the instance (%v) or woke watchers (%v)", in != before, closed(chWeb))
				}
				return
			}
			if in.ModifyIndex != f.idx || serviceIndex(f.st, "web") != f.idx || !closed(chWeb) {
				t.Errorf("modify %d service %d woken %v, want index %d and watchers woken", in.ModifyIndex, serviceIndex(f.st, "web"), closed(chWeb), f.idx)
			}
			if before.Check(s.check).Status == s.status && before.Check(s.check).Output == s.output {
				t.Fatal("bad step: not a change")
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		last := f.st.LastIndex()
		if r := f.setCheck(t, "web", "nope", registry.TTLCheckID, registry.Passing, ""); !errors.Is(r.Err, registry.ErrNotFound) {
			t.Errorf("unknown instance: %v, want ErrNotFound", r.Err)
		}
		if r := f.setCheck(t, "web", "a", "nope", registry.Passing, ""); !errors.Is(r.Err, registry.ErrNotFound) {
			t.Errorf("unknown check: %v, want ErrNotFound", r.Err)
		}
		if f.st.LastIndex() != last+2 {
			t.Errorf("LastIndex %d, want %d: failed ops still advance the applied index", f.st.LastIndex(), last+2)
		}
	})
}

func TestDeregister(t *testing.T) {
	f := newFixture()
	f.register(t, inst(t, "web", "a", ttl(time.Minute)))
	key := registry.Key{Service: "web", ID: "a"}
	tests := []struct {
		name    string
		op      *registry.DeregisterOp
		setup   func(t *testing.T)
		wantErr error
	}{
		{name: "unknown instance", op: &registry.DeregisterOp{Key: registry.Key{Service: "web", ID: "b"}}, wantErr: registry.ErrNotFound},
		{name: "unknown service", op: &registry.DeregisterOp{Key: registry.Key{Service: "db", ID: "a"}}, wantErr: registry.ErrNotFound},
		{name: "if critical while passing", op: &registry.DeregisterOp{Key: key, IfCritical: registry.TTLCheckID}, wantErr: registry.ErrConflict},
		{name: "if critical on unknown check", op: &registry.DeregisterOp{Key: key, IfCritical: "nope"}, wantErr: registry.ErrConflict},
		{name: "if critical while warning", op: &registry.DeregisterOp{Key: key, IfCritical: registry.TTLCheckID},
			setup: func(t *testing.T) { f.setCheck(t, "web", "a", registry.TTLCheckID, registry.Warning, "") }, wantErr: registry.ErrConflict},
		{name: "if critical while critical", op: &registry.DeregisterOp{Key: key, IfCritical: registry.TTLCheckID},
			setup: func(t *testing.T) { f.setCheck(t, "web", "a", registry.TTLCheckID, registry.Critical, "") }},
		{name: "gone", op: &registry.DeregisterOp{Key: key}, wantErr: registry.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			_, err := f.st.Instance(tc.op.Key)
			existed := err == nil
			r := f.apply(t, tc.op)
			if !errors.Is(r.Err, tc.wantErr) || (tc.wantErr == nil && r.Err != nil) {
				t.Fatalf("err = %v, want %v", r.Err, tc.wantErr)
			}
			_, err = f.st.Instance(tc.op.Key)
			gone := errors.Is(err, registry.ErrNotFound)
			if want := tc.wantErr == nil || !existed; gone != want {
				t.Errorf("instance gone: %v, want %v", gone, want)
			}
		})
	}
}

func TestServiceRowCounts(t *testing.T) {
	f := newFixture()
	type counts struct{ instances, passing, warning, critical int }
	steps := []struct {
		name string
		do   func(t *testing.T)
		want map[string]counts // services listed by Services()
	}{
		{"three passing", func(t *testing.T) {
			for _, id := range []string{"a", "b", "c"} {
				f.register(t, inst(t, "web", id, ttl(time.Minute)))
			}
		}, map[string]counts{"web": {3, 3, 0, 0}}},
		{"one warning", func(t *testing.T) { f.setCheck(t, "web", "b", "ttl", registry.Warning, "") },
			map[string]counts{"web": {3, 2, 1, 0}}},
		{"one critical", func(t *testing.T) { f.setCheck(t, "web", "c", "ttl", registry.Critical, "") },
			map[string]counts{"web": {3, 1, 1, 1}}},
		{"warning to critical", func(t *testing.T) { f.setCheck(t, "web", "b", "ttl", registry.Critical, "") },
			map[string]counts{"web": {3, 1, 0, 2}}},
		{"active check added critical", func(t *testing.T) { f.register(t, inst(t, "web", "a", ttl(time.Minute), tcp("p", "10.0.0.1:1"))) },
			map[string]counts{"web": {3, 0, 0, 3}}},
		{"re-register heals ttl", func(t *testing.T) { f.register(t, inst(t, "web", "c", ttl(time.Minute))) },
			map[string]counts{"web": {3, 1, 0, 2}}},
		{"another service", func(t *testing.T) { f.register(t, inst(t, "db", "x")) },
			map[string]counts{"web": {3, 1, 0, 2}, "db": {1, 1, 0, 0}}},
		{"deregister critical", func(t *testing.T) {
			f.mustApply(t, &registry.DeregisterOp{Key: registry.Key{Service: "web", ID: "b"}})
		}, map[string]counts{"web": {2, 1, 0, 1}, "db": {1, 1, 0, 0}}},
		{"failed ops change nothing", func(t *testing.T) {
			f.apply(t, &registry.DeregisterOp{Key: registry.Key{Service: "web", ID: "b"}})
			f.setCheck(t, "web", "zz", "ttl", registry.Critical, "")
		}, map[string]counts{"web": {2, 1, 0, 1}, "db": {1, 1, 0, 0}}},
		{"deregister the rest", func(t *testing.T) {
			f.mustApply(t, &registry.DeregisterOp{Key: registry.Key{Service: "web", ID: "a"}})
			f.mustApply(t, &registry.DeregisterOp{Key: registry.Key{Service: "web", ID: "c"}})
		}, map[string]counts{"db": {1, 1, 0, 0}}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do(t)
			_, svcs := f.st.Services()
			got := map[string]counts{}
			for _, sv := range svcs {
				got[sv.Name] = counts{sv.Instances, sv.Passing, sv.Warning, sv.Critical}
				if _, ins := f.st.Instances(sv.Name); len(ins) != sv.Instances {
					t.Errorf("%s: row says %d instances, Instances lists %d", sv.Name, sv.Instances, len(ins))
				}
			}
			if !reflect.DeepEqual(got, s.want) {
				t.Errorf("counts %+v, want %+v", got, s.want)
			}
			st := f.st.Stats()
			wantInst := 0
			for _, c := range s.want {
				wantInst += c.instances
			}
			if st.Services != len(s.want) || st.Instances != wantInst {
				t.Errorf("Stats %+v, want %d services %d instances", st, len(s.want), wantInst)
			}
		})
	}
}

func TestTombstone(t *testing.T) {
	f := newFixture()
	f.register(t, inst(t, "web", "a"))
	ch, rel := f.st.Watch("web")
	defer rel()
	f.mustApply(t, &registry.DeregisterOp{Key: registry.Key{Service: "web", ID: "a"}})
	gone := f.idx
	if !closed(ch) {
		t.Error("removing the last instance did not wake the service's watchers")
	}
	idx, ins := f.st.Instances("web")
	if idx != gone || len(ins) != 0 {
		t.Errorf("Instances after removal = %d %v, want the tombstone's index %d and none", idx, ins, gone)
	}
	if _, svcs := f.st.Services(); len(svcs) != 0 {
		t.Errorf("Services lists a tombstone: %+v", svcs)
	}
	if idx, _ := f.st.Instances("never"); idx != 0 {
		t.Errorf("a never-seen service has index %d, want 0", idx)
	}
	res := f.register(t, inst(t, "web", "a"))
	if !res.Created || res.Instance.CreateIndex <= gone || serviceIndex(f.st, "web") <= gone {
		t.Errorf("re-created: %+v service index %d, want past %d", res, serviceIndex(f.st, "web"), gone)
	}
}

// TestInstancesOfOneServiceOnly: a service's instances are its own, even
// when its name is a prefix of another's (a prefix scan of the "id" index
// must end at the service name's terminator).
func TestInstancesOfOneServiceOnly(t *testing.T) {
	f := newFixture()
	f.register(t, inst(t, "web", "a"))
	f.register(t, inst(t, "web-api", "b"))
	f.register(t, inst(t, "webapp", "c"))
	f.register(t, inst(t, "we", "d"))
	for _, tc := range []struct {
		service string
		want    []string
	}{
		{"web", []string{"a"}},
		{"web-api", []string{"b"}},
		{"webapp", []string{"c"}},
		{"we", []string{"d"}},
	} {
		t.Run(tc.service, func(t *testing.T) {
			_, ins := f.st.Instances(tc.service)
			var got []string
			for _, in := range ins {
				got = append(got, in.Service+"/"+in.ID)
			}
			var want []string
			for _, id := range tc.want {
				want = append(want, tc.service+"/"+id)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Instances(%q) = %v, want %v", tc.service, got, want)
			}
		})
	}
}

func TestInstancesOrderedByID(t *testing.T) {
	f := newFixture()
	for _, id := range []string{"c", "a", "b", "B"} {
		f.register(t, inst(t, "web", id))
	}
	_, ins := f.st.Instances("web")
	var got []string
	for _, in := range ins {
		got = append(got, in.ID)
	}
	if want := []string{"B", "a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

func checkKeys(refs []registry.CheckRef) []string {
	var out []string
	for _, r := range refs {
		out = append(out, r.Key.Service+"/"+r.Key.ID+":"+r.Check.ID)
	}
	slices.Sort(out)
	return out
}

func TestChecksByType(t *testing.T) {
	f := newFixture()
	f.register(t, inst(t, "web", "plain"))
	f.register(t, inst(t, "web", "ttl-only", ttl(time.Minute)))
	f.register(t, inst(t, "web", "tcp-only", tcp("t", "10.0.0.1:1")))
	f.register(t, inst(t, "db", "both", ttl(time.Minute), httpCheck("h", "http://x/"), tcp("t", "x:1")))

	want := map[registry.CheckType][]string{
		registry.CheckTTL:  {"db/both:ttl", "web/ttl-only:ttl"},
		registry.CheckTCP:  {"db/both:t", "web/tcp-only:t"},
		registry.CheckHTTP: {"db/both:h"},
		registry.CheckGRPC: nil,
	}
	for typ, w := range want {
		t.Run(string(typ), func(t *testing.T) {
			_, refs := f.st.Checks(typ)
			if got := checkKeys(refs); !reflect.DeepEqual(got, w) {
				t.Errorf("Checks(%s) = %v, want %v", typ, got, w)
			}
		})
	}

	// EachCheck visits the same checks, in order, and stops when told.
	var seen []string
	f.st.EachCheck(registry.CheckTTL, func(k registry.Key, c *registry.Check) bool {
		seen = append(seen, k.Service+"/"+k.ID+":"+c.ID)
		return false
	})
	if !reflect.DeepEqual(seen, []string{"db/both:ttl"}) {
		t.Errorf("EachCheck(ttl) stopping after one visited %v", seen)
	}

	idx, _ := f.st.Checks(registry.CheckTCP)
	ch, rel := f.st.Watch(registry.WatchChecks)
	defer rel()
	// A status change is not a definition change.
	f.setCheck(t, "web", "tcp-only", "t", registry.Passing, "")
	if i, _ := f.st.Checks(registry.CheckTCP); i != idx || closed(ch) {
		t.Errorf("status change moved the checks index (%d -> %d) or woke WatchChecks (%v)", idx, i, closed(ch))
	}
	// Nor is a tag change.
	f.register(t, inst(t, "web", "tcp-only", tags("x"), tcp("t", "10.0.0.1:1")))
	if i, _ := f.st.Checks(registry.CheckTCP); i != idx || closed(ch) {
		t.Errorf("tag change moved the checks index (%d -> %d) or woke WatchChecks (%v)", idx, i, closed(ch))
	}
	// A target change is.
	f.register(t, inst(t, "web", "tcp-only", tags("x"), tcp("t", "10.0.0.1:2")))
	if i, _ := f.st.Checks(registry.CheckTCP); i != f.idx || !closed(ch) {
		t.Errorf("target change: checks index %d (want %d), woken %v", i, f.idx, closed(ch))
	}
	// So is an address change (active checks may probe it).
	ch2, rel2 := f.st.Watch(registry.WatchChecks)
	defer rel2()
	f.register(t, inst(t, "web", "tcp-only", tags("x"), tcp("t", "10.0.0.1:2"), func(in *registry.Instance) { in.Address = "10.0.0.2" }))
	if !closed(ch2) {
		t.Error("address change of an instance with active checks did not wake WatchChecks")
	}
	// Removing an instance with active checks is.
	ch3, rel3 := f.st.Watch(registry.WatchChecks)
	defer rel3()
	f.mustApply(t, &registry.DeregisterOp{Key: registry.Key{Service: "db", ID: "both"}})
	if i, _ := f.st.Checks(registry.CheckTCP); i != f.idx || !closed(ch3) {
		t.Errorf("removal: checks index %d (want %d), woken %v", i, f.idx, closed(ch3))
	}
	_, refs := f.st.Checks(registry.CheckTTL)
	if got := checkKeys(refs); !reflect.DeepEqual(got, []string{"web/ttl-only:ttl"}) {
		t.Errorf("Checks(ttl) after removal = %v", got)
	}
	// Dropping every active check from an instance removes it from the index.
	f.register(t, inst(t, "web", "tcp-only"))
	if _, refs := f.st.Checks(registry.CheckTCP); len(refs) != 0 {
		t.Errorf("Checks(tcp) = %v after the check was dropped", checkKeys(refs))
	}
}

func TestInstancesByRepo(t *testing.T) {
	f := newFixture()
	f.register(t, inst(t, "web", "a", repo("github.com/x/web")))
	f.register(t, inst(t, "web", "b", repo("github.com/x/web")))
	f.register(t, inst(t, "api", "c", repo("github.com/x/web")))
	f.register(t, inst(t, "db", "d", repo("github.com/x/db")))
	f.register(t, inst(t, "db", "e"))
	keys := func(ins []*registry.Instance) []string {
		var out []string
		for _, in := range ins {
			out = append(out, in.Service+"/"+in.ID)
		}
		slices.Sort(out)
		return out
	}
	tests := []struct {
		repo string
		want []string
	}{
		{"github.com/x/web", []string{"api/c", "web/a", "web/b"}},
		{"github.com/x/db", []string{"db/d"}},
		{"github.com/x", nil},
		{"nope", nil},
	}
	for _, tc := range tests {
		t.Run(tc.repo, func(t *testing.T) {
			if got := keys(f.st.InstancesByRepo(tc.repo)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("InstancesByRepo(%q) = %v, want %v", tc.repo, got, tc.want)
			}
		})
	}
	// Moving an instance to another repo updates the index.
	f.register(t, inst(t, "web", "a", repo("github.com/x/db")))
	if got := keys(f.st.InstancesByRepo("github.com/x/db")); !reflect.DeepEqual(got, []string{"db/d", "web/a"}) {
		t.Errorf("after move: %v", got)
	}
}

func TestApplyBatch(t *testing.T) {
	st := store.New()
	enc := func(op registry.Op) []byte {
		b, err := store.Encode(op)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	now := time.Now().UTC()
	entries := []store.Entry{
		{Index: 5, Data: enc(&registry.RegisterOp{Instance: inst(t, "web", "a", ttl(time.Minute)), At: now})},
		{Index: 6, Data: []byte{0x85, '{', '}'}}, // a future, ignorable entry type
		{Index: 7, Data: enc(&registry.DeregisterOp{Key: registry.Key{Service: "web", ID: "zz"}})},
		{Index: 8, Data: enc(&registry.SetCheckOp{Key: registry.Key{Service: "web", ID: "a"}, CheckID: "ttl", Status: registry.Warning, At: now})},
	}
	ch, rel := st.Watch("web")
	defer rel()
	out := st.ApplyBatch(entries)
	if len(out) != 4 {
		t.Fatalf("%d responses, want 4", len(out))
	}
	if out[0].Err != nil || !out[0].Result.Created || out[0].Result.Index != 5 {
		t.Errorf("register: %+v", out[0])
	}
	if out[1] != (store.Response{}) {
		t.Errorf("ignorable entry response %+v, want zero", out[1])
	}
	if !errors.Is(out[2].Err, registry.ErrNotFound) || out[2].Result.Index != 7 {
		t.Errorf("deregister of unknown: %+v", out[2])
	}
	if out[3].Err != nil || out[3].Result.Instance.Health != registry.Warning || out[3].Result.Instance.ModifyIndex != 8 {
		t.Errorf("set check: %+v", out[3])
	}
	if st.LastIndex() != 8 {
		t.Errorf("LastIndex %d, want 8", st.LastIndex())
	}
	if !closed(ch) {
		t.Error("watchers not woken after the batch")
	}
	if got := st.ApplyBatch(nil); len(got) != 0 {
		t.Errorf("empty batch: %v", got)
	}
	if st.LastIndex() != 8 {
		t.Errorf("empty batch moved LastIndex to %d", st.LastIndex())
	}
}

// TestApplyBatchPanicsOnCorruptEntry: an entry that cannot be decoded
// stops the agent rather than diverging, and nothing of its batch is
// applied.
func TestApplyBatchPanicsOnCorruptEntry(t *testing.T) {
	for _, data := range [][]byte{nil, {9}, {byte(1), '{'}, []byte("\x01null")} {
		t.Run(fmt.Sprintf("%q", data), func(t *testing.T) {
			st := store.New()
			good, _ := store.Encode(&registry.RegisterOp{Instance: inst(t, "web", "a"), At: time.Now()})
			func() {
				defer func() {
					if recover() == nil {
						t.Error("ApplyBatch did not panic")
					}
				}()
				st.ApplyBatch([]store.Entry{{Index: 2, Data: good}, {Index: 3, Data: data}})
			}()
			if st.LastIndex() != 0 {
				t.Errorf("LastIndex %d after a failed batch, want 0", st.LastIndex())
			}
			if _, err := st.Instance(registry.Key{Service: "web", ID: "a"}); !errors.Is(err, registry.ErrNotFound) {
				t.Errorf("the batch's first entry was applied: %v", err)
			}
		})
	}
}
