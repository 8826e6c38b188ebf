package store_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// The golden files in testdata/ are the durable format: log entries and a
// snapshot exactly as roster wrote them when they were added. They are
// never edited; a change to the format adds new files beside them (see
// "The durable format" in ARCHITECTURE.md). -update writes files that do
// not exist yet and leaves the others alone.
var update = flag.Bool("update", false, "write golden files missing from testdata/")

// goldenAt is the time carried by every golden op.
var goldenAt = time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)

// goldenEntry is one log entry: its file in testdata/entries and the op it
// holds, written out field by field.
type goldenEntry struct {
	file string
	op   registry.Op
}

// goldenEntries are applied in order, from index 2, to build the state of
// the golden snapshot.
func goldenEntries() []goldenEntry {
	web := func(id string) registry.Key { return registry.Key{Service: "web", ID: id} }
	return []goldenEntry{
		{"01-register-minimal.entry", &registry.RegisterOp{At: goldenAt, Instance: &registry.Instance{
			Service: "web", ID: "min", Address: "10.0.0.1", Port: 80, Weight: 1, Health: registry.Passing,
		}}},
		{"02-register-full.entry", &registry.RegisterOp{At: goldenAt, Instance: &registry.Instance{
			Service: "web", ID: "a-1", Address: "2001:db8::1", Port: 8443,
			Tags: []string{"v1", "x y"}, Meta: map[string]string{"env": "prod", "empty": ""},
			Weight: 9, Priority: 3, Zone: "eu-1", Region: "eu", Canary: true, Revision: "abc123", Repo: "github.com/x/web",
			Checks: []registry.Check{
				{ID: "ttl", Name: "lease", Type: registry.CheckTTL, TTL: registry.Duration(90 * time.Second),
					DeregisterAfter: registry.Duration(time.Hour), Status: registry.Passing},
				{ID: "probe", Type: registry.CheckTCP, Target: "10.0.0.1:80", Interval: registry.Duration(10 * time.Second),
					Timeout: registry.Duration(2 * time.Second), FailuresBeforeCritical: 3, SuccessesBeforePassing: 1,
					Status: registry.Critical, Output: "refused", CriticalSince: goldenAt},
				{ID: "h", Type: registry.CheckHTTP, Target: "http://10.0.0.1/health", Interval: registry.Duration(1500 * time.Millisecond),
					Timeout: registry.Duration(time.Second), FailuresBeforeCritical: 2, SuccessesBeforePassing: 2, Status: registry.Warning},
				{ID: "g", Type: registry.CheckGRPC, Target: "10.0.0.1:9000/web", Interval: registry.Duration(time.Minute),
					Timeout: registry.Duration(5 * time.Second), FailuresBeforeCritical: 1, SuccessesBeforePassing: 1, Status: registry.Passing},
			},
			Health: registry.Critical,
		}}},
		{"03-register-critical.entry", &registry.RegisterOp{At: goldenAt, Instance: &registry.Instance{
			Service: "db", ID: "x", Address: "db.internal", Port: 5432, Weight: 1,
			Checks: []registry.Check{{ID: "h", Type: registry.CheckHTTP, Target: "http://db.internal/health",
				Interval: registry.Duration(10 * time.Second), Timeout: registry.Duration(2 * time.Second),
				FailuresBeforeCritical: 3, SuccessesBeforePassing: 1, Status: registry.Critical, CriticalSince: goldenAt}},
			Health: registry.Critical,
		}}},
		{"04-register-ttl.entry", &registry.RegisterOp{At: goldenAt, Instance: &registry.Instance{
			Service: "gone", ID: "g", Address: "10.0.0.4", Port: 1, Weight: 1,
			Checks: []registry.Check{{ID: "ttl", Type: registry.CheckTTL, TTL: registry.Duration(time.Minute), Status: registry.Critical}},
			Health: registry.Critical,
		}}},
		{"05-set-check.entry", &registry.SetCheckOp{Key: web("a-1"), CheckID: "ttl", Status: registry.Warning,
			Output: "slow \u2603", At: goldenAt}},
		{"06-set-check-no-output.entry", &registry.SetCheckOp{Key: web("a-1"), CheckID: "probe", Status: registry.Passing,
			At: goldenAt.Add(time.Second)}},
		{"07-maintenance-on.entry", &registry.MaintenanceOp{Key: web("min"), CheckID: "_service_maintenance:min", Enable: true,
			Name: "Service Maintenance Mode", Reason: "new disk", At: goldenAt}},
		{"08-maintenance-on-no-reason.entry", &registry.MaintenanceOp{Key: web("a-1"), CheckID: "maint", Enable: true, At: goldenAt}},
		{"09-maintenance-off.entry", &registry.MaintenanceOp{Key: web("min"), CheckID: "_service_maintenance:min", At: goldenAt}},
		{"10-deregister.entry", &registry.DeregisterOp{Key: registry.Key{Service: "gone", ID: "g"}}},
		{"11-deregister-if-critical.entry", &registry.DeregisterOp{Key: registry.Key{Service: "db", ID: "x"}, IfCritical: "h"}},
		{"12-register-after-tombstone.entry", &registry.RegisterOp{At: goldenAt, Instance: &registry.Instance{
			Service: "db", ID: "y", Address: "10.0.0.5", Port: 5432, Weight: 1, Health: registry.Passing,
		}}},
		{"13-reindex.entry", &registry.ReindexOp{}},
	}
}

// golden returns the named file of testdata/, writing want to it first
// with -update when it does not exist.
func golden(t *testing.T, name string, want []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file: %v (run go test -run Golden -update to write a new one)", err)
	}
	return b
}

// TestGoldenEntries: every golden entry decodes to its op, and the op
// encodes to the golden bytes.
func TestGoldenEntries(t *testing.T) {
	for _, g := range goldenEntries() {
		t.Run(g.file, func(t *testing.T) {
			enc, err := store.Encode(g.op)
			if err != nil {
				t.Fatal(err)
			}
			b := golden(t, filepath.Join("entries", g.file), enc)
			got, err := store.Decode(b)
			if err != nil {
				t.Fatalf("Decode(%q): %v", b, err)
			}
			if !reflect.DeepEqual(got, g.op) {
				t.Errorf("Decode(%q)\n got %#v\nwant %#v", b, got, g.op)
			}
			if !bytes.Equal(enc, b) {
				t.Errorf("Encode wrote\n%q\nthe golden entry is\n%q", enc, b)
			}
		})
	}
}

// goldenStore applies every golden entry from index 2, as a log would.
func goldenStore(t *testing.T) *store.Store {
	t.Helper()
	st := store.New()
	for i, g := range goldenEntries() {
		b, err := os.ReadFile(filepath.Join("testdata", "entries", g.file))
		if err != nil {
			t.Fatal(err)
		}
		st.ApplyBatch([]store.Entry{{Index: uint64(i + 2), Data: b}})
	}
	return st
}

// goldenState is the state the golden entries build and the golden
// snapshot holds.
func goldenState() view {
	maint := registry.Check{ID: "maint", Type: registry.CheckMaintenance, Status: registry.Critical,
		CriticalSince: goldenAt}
	a1 := &registry.Instance{
		Service: "web", ID: "a-1", Address: "2001:db8::1", Port: 8443,
		Tags: []string{"v1", "x y"}, Meta: map[string]string{"env": "prod", "empty": ""},
		Weight: 9, Priority: 3, Zone: "eu-1", Region: "eu", Canary: true, Revision: "abc123", Repo: "github.com/x/web",
		Checks: []registry.Check{
			{ID: "ttl", Name: "lease", Type: registry.CheckTTL, TTL: registry.Duration(90 * time.Second),
				DeregisterAfter: registry.Duration(time.Hour), Status: registry.Warning, Output: "slow \u2603"},
			{ID: "probe", Type: registry.CheckTCP, Target: "10.0.0.1:80", Interval: registry.Duration(10 * time.Second),
				Timeout: registry.Duration(2 * time.Second), FailuresBeforeCritical: 3, SuccessesBeforePassing: 1,
				Status: registry.Passing},
			{ID: "h", Type: registry.CheckHTTP, Target: "http://10.0.0.1/health", Interval: registry.Duration(1500 * time.Millisecond),
				Timeout: registry.Duration(time.Second), FailuresBeforeCritical: 2, SuccessesBeforePassing: 2, Status: registry.Warning},
			{ID: "g", Type: registry.CheckGRPC, Target: "10.0.0.1:9000/web", Interval: registry.Duration(time.Minute),
				Timeout: registry.Duration(5 * time.Second), FailuresBeforeCritical: 1, SuccessesBeforePassing: 1, Status: registry.Passing},
			maint,
		},
		Health: registry.Critical, CreateIndex: 3, ModifyIndex: 9,
	}
	min := &registry.Instance{Service: "web", ID: "min", Address: "10.0.0.1", Port: 80, Weight: 1,
		Health: registry.Passing, CreateIndex: 2, ModifyIndex: 10}
	y := &registry.Instance{Service: "db", ID: "y", Address: "10.0.0.5", Port: 5432, Weight: 1,
		Health: registry.Passing, CreateIndex: 13, ModifyIndex: 13}
	return view{
		Last: 14, ServicesIdx: 14,
		Services: []registry.ServiceSummary{
			{Name: "db", Instances: 1, Passing: 1, ModifyIndex: 14},
			{Name: "web", Instances: 2, Passing: 1, Critical: 1, ModifyIndex: 14},
		},
		Instances:    map[string][]*registry.Instance{"web": {a1, min}, "db": {y}, "gone": nil, "never": nil},
		ServiceIndex: map[string]uint64{"web": 14, "db": 14, "gone": 14, "never": 0},
		Checks: map[registry.CheckType][]registry.CheckRef{
			registry.CheckTTL:  {{Key: a1.Key(), Check: a1.Checks[0]}},
			registry.CheckTCP:  {{Key: a1.Key(), Check: a1.Checks[1]}},
			registry.CheckHTTP: {{Key: a1.Key(), Check: a1.Checks[2]}},
			registry.CheckGRPC: {{Key: a1.Key(), Check: a1.Checks[3]}},
		},
		ChecksIdx: 14,
		ByRepo:    []*registry.Instance{a1},
		Stats:     store.Stats{Services: 2, Instances: 3},
	}
}

// TestGoldenSnapshot: every golden snapshot restores to the golden state
// (directly, and as an upload through CheckSnapshot), and that state,
// whether built from the golden entries or restored, persists to the
// newest golden bytes. snapshot-v1.jsonl is what agents wrote before the
// trailer (a checksum) was added; it must still restore.
func TestGoldenSnapshot(t *testing.T) {
	built := goldenStore(t)
	newest := golden(t, "snapshot-v1-crc32c.jsonl", persist(t, built))
	for _, file := range []string{"snapshot-v1.jsonl", "snapshot-v1-crc32c.jsonl"} {
		t.Run(file, func(t *testing.T) {
			b := golden(t, file, nil)
			restored := store.New()
			if err := restored.Restore(bytes.NewReader(b)); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			top, err := store.Validate(bytes.NewReader(b))
			if err != nil || top != 14 {
				t.Errorf("Validate = %d, %v; want 14", top, err)
			}
			want := goldenState()
			for name, st := range map[string]*store.Store{"built from the golden entries": built, "restored": restored} {
				got := viewOf(st)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("state %s (-want +got):\n%s", name, diff)
				}
				if p := persist(t, st); !bytes.Equal(p, newest) {
					t.Errorf("state %s persists as\n%s\nthe newest golden snapshot is\n%s", name, p, newest)
				}
			}
			// As an upload, at an index past the file's: the same
			// instances, every service at the restore's index.
			var up bytes.Buffer
			if _, err := store.CheckSnapshot(bytes.NewReader(b), &up, 20); err != nil {
				t.Fatalf("CheckSnapshot: %v", err)
			}
			uploaded := store.New()
			if err := uploaded.Restore(&up); err != nil {
				t.Fatalf("Restore of the checked upload: %v", err)
			}
			got := viewOf(uploaded)
			if diff := cmp.Diff(want.Instances, got.Instances); diff != "" {
				t.Errorf("uploaded instances (-want +got):\n%s", diff)
			}
			for _, name := range []string{"web", "db", "gone"} {
				if got.ServiceIndex[name] != 20 {
					t.Errorf("uploaded service %s at index %d, want the restore's 20", name, got.ServiceIndex[name])
				}
			}
		})
	}
}
