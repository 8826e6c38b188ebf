package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

const (
	okHeader = `{"version":1,"indexes":{"last":20,"services":20,"checks":20}}`
	okInst   = `{"instance":{"service":"web","id":"a","address":"10.0.0.1","port":80,"create_index":3,"modify_index":9}}`
)

func instLine(fields string) string {
	return `{"instance":{"service":"web","id":"b","address":"10.0.0.2","port":80` + fields + `}}`
}

// TestCheckSnapshotRefuses: an upload that registration, the format or
// the index rules refuse is refused whole, naming the line, the record
// and the field. The cases include the ones that once bricked an agent.
func TestCheckSnapshotRefuses(t *testing.T) {
	manyTags := `,"tags":[` + strings.TrimSuffix(strings.Repeat(`"t",`, 10000), ",") + `]`
	tests := []struct {
		name, data, field string
	}{
		{"empty", "", "snapshot"},
		{"not a header", "garbage", "snapshot"},
		{"gzip", "\x1f\x8b\x08\x00garbage", "snapshot"},
		{"unknown version", `{"version":2,"indexes":{}}`, "line 1, header.version"},
		{"other kind", `{"version":1,"kind":"consul","indexes":{}}`, "line 1, header.kind"},
		{"last 2^64-2", `{"version":1,"indexes":{"last":18446744073709551614}}`, "line 1, header.indexes.last"},
		{"last 2^64-1", `{"version":1,"indexes":{"last":18446744073709551615}}`, "line 1, header.indexes.last"},
		{"last a few hundred below 2^64", `{"version":1,"indexes":{"last":18446744073709551000}}` + "\n" + okInst, "line 1, header.indexes.last"},
		{"services past last", `{"version":1,"indexes":{"last":5,"services":9}}`, "line 1, header.indexes.services"},
		{"modify_index near 2^64", okHeader + "\n" + instLine(`,"modify_index":18446744073709551600`), "line 2, instance web/b, modify_index"},
		{"create_index past last", okHeader + "\n" + instLine(`,"create_index":21`), "line 2, instance web/b, create_index"},
		{"service index past last", okHeader + "\n" + `{"service":{"name":"web","modify_index":99}}`, "line 2, service web, modify_index"},
		{"bad service name", okHeader + "\n" + `{"instance":{"service":"BAD_Name.x","id":"a","address":"10.0.0.1","port":80}}`, `line 2, instance BAD_Name.x/a, service`},
		{"bad service row", okHeader + "\n" + `{"service":{"name":"BAD_Name.x"}}`, "line 2, service BAD_Name.x, name"},
		{"NUL in id", okHeader + "\n" + `{"instance":{"service":"web","id":"a\u0000b","address":"10.0.0.1","port":80}}`, `line 2, instance web/"a\x00b", id`},
		{"no id", okHeader + "\n" + `{"instance":{"service":"web","address":"10.0.0.1","port":80}}`, `line 2, instance web/"", id`},
		{"port 0", okHeader + "\n" + instLine(`,"port":0`), "line 2, instance web/b, port"},
		{"10000 tags", okHeader + "\n" + instLine(manyTags), "line 2, instance web/b, tags"},
		{"60 KB of metadata", okHeader + "\n" + instLine(`,"meta":{"k":"`+strings.Repeat("x", 60<<10)+`"}`), "line 2, instance web/b, meta.k"},
		{"1ms HTTP check", okHeader + "\n" + instLine(`,"checks":[{"id":"h","type":"http","target":"http://10.0.0.2/","interval":"1ms","timeout":"1ms"}]`), "line 2, instance web/b, checks[0].interval"},
		{"duplicate instance", okHeader + "\n" + okInst + "\n" + okInst, "line 3, instance web/a"},
		{"duplicate service", okHeader + "\n" + `{"service":{"name":"web"}}` + "\n" + `{"service":{"name":"web"}}`, "line 3, service web"},
		{"empty record", okHeader + "\n{}", "line 2"},
		{"not json", okHeader + "\n{nope", "line 2"},
		{"invalid on the last record", okHeader + "\n" + okInst + "\n" + instLine(`,"port":70000`), "line 3, instance web/b, port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := store.CheckSnapshot(strings.NewReader(tc.data), &out, 100)
			var verr *registry.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("CheckSnapshot = %v, want a ValidationError", err)
			}
			if got := verr.Fields[0].Field; got != tc.field {
				t.Errorf("field %q, want %q (%v)", got, tc.field, err)
			}
		})
	}
}

// TestCheckSnapshotChecksum: a damaged byte, a cut trailer or data after
// it are refused; a snapshot without a trailer from before it existed
// is accepted.
func TestCheckSnapshotChecksum(t *testing.T) {
	f := newFixture()
	populate(t, f)
	good := string(persist(t, f.st))
	lines := strings.SplitAfter(good, "\n")
	trailer := lines[len(lines)-2]
	old, err := os.ReadFile(filepath.Join("testdata", "snapshot-v1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, data, field string // field "" means accepted
	}{
		{"as written", good, ""},
		{"older, without a trailer", string(old), ""},
		{"changed byte", strings.Replace(good, "10.0.0.2", "10.0.0.3", 1), "trailer.crc32c"},
		{"trailer cut", strings.TrimSuffix(good, trailer), "snapshot"},
		{"record and trailer cut", strings.Join(lines[:len(lines)-3], ""), "snapshot"},
		{"data after the trailer", good + okInst + "\n", "line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.CheckSnapshot(strings.NewReader(tc.data), &bytes.Buffer{}, 1000)
			rerr := store.New().Restore(strings.NewReader(tc.data))
			if tc.field == "" {
				if err != nil || rerr != nil {
					t.Fatalf("CheckSnapshot: %v; Restore: %v", err, rerr)
				}
				return
			}
			if err == nil || rerr == nil {
				t.Fatalf("accepted: CheckSnapshot %v, Restore %v", err, rerr)
			}
			var verr *registry.ValidationError
			if !errors.As(err, &verr) || !strings.Contains(verr.Fields[0].Field, tc.field) {
				t.Errorf("CheckSnapshot = %v, want field %q", err, tc.field)
			}
		})
	}
}

// TestCheckSnapshotIndexes: indexes are the agent's. Below the restore's
// index they are kept; above it they are moved below it, keeping their
// order; every service lands at the restore's index.
func TestCheckSnapshotIndexes(t *testing.T) {
	data := func(last uint64) string {
		return fmt.Sprintf(`{"version":1,"indexes":{"last":%d,"services":%d,"checks":1}}`+"\n", last, last) +
			fmt.Sprintf(`{"service":{"name":"gone","modify_index":%d}}`+"\n", last-1) +
			fmt.Sprintf(`{"instance":{"service":"web","id":"a","address":"10.0.0.1","port":80,"create_index":%d,"modify_index":%d}}`+"\n", last-5, last) +
			fmt.Sprintf(`{"instance":{"service":"db","id":"b","address":"10.0.0.1","port":80,"create_index":%d,"modify_index":%d}}`+"\n", 1, last-2)
	}
	tests := []struct {
		name     string
		last, at uint64
		want     map[string][2]uint64 // id → create, modify
	}{
		{"below the restore's index", 50, 100, map[string][2]uint64{"a": {45, 50}, "b": {1, 48}}},
		{"at the restore's index", 100, 100, map[string][2]uint64{"a": {94, 99}, "b": {1, 97}}},
		{"far above it", 1 << 40, 10, map[string][2]uint64{"a": {4, 9}, "b": {1, 7}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if _, err := store.CheckSnapshot(strings.NewReader(data(tc.last)), &out, tc.at); err != nil {
				t.Fatal(err)
			}
			st := store.New()
			if err := st.Restore(&out); err != nil {
				t.Fatal(err)
			}
			got := map[string][2]uint64{}
			for _, svc := range []string{"web", "db"} {
				idx, ins := st.Instances(svc)
				if idx != tc.at {
					t.Errorf("service %s at %d, want %d", svc, idx, tc.at)
				}
				for _, in := range ins {
					got[in.ID] = [2]uint64{in.CreateIndex, in.ModifyIndex}
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("instance indexes %v, want %v", got, tc.want)
			}
			if idx, _ := st.Instances("gone"); idx != tc.at {
				t.Errorf("tombstone at %d, want %d", idx, tc.at)
			}
			if st.LastIndex() != tc.at {
				t.Errorf("LastIndex %d, want %d", st.LastIndex(), tc.at)
			}
		})
	}
}

// FuzzReadSnapshot: the snapshot readers never panic; whatever
// CheckSnapshot accepts passes registration's validation, restores, and
// round-trips: persisted and checked again, it gives the same state.
func FuzzReadSnapshot(f *testing.F) {
	for _, name := range []string{"snapshot-v1.jsonl", "snapshot-v1-crc32c.jsonl"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint64(20))
	}
	f.Add([]byte(okHeader+"\n"+okInst+"\n"+instLine(`,"tags":["x"],"checks":[{"type":"ttl","ttl":"10s"}]`)+"\n"), uint64(5))
	f.Add([]byte(`{"version":1,"indexes":{"last":18446744073709551614}}`), uint64(3))
	f.Fuzz(func(t *testing.T, data []byte, at uint64) {
		_ = store.New().Restore(bytes.NewReader(data))
		_, _ = store.Validate(bytes.NewReader(data))
		at = at%store.MaxIndex + 1
		var out bytes.Buffer
		if _, err := store.CheckSnapshot(bytes.NewReader(data), &out, at); err != nil {
			return
		}
		st := store.New()
		if err := st.Restore(bytes.NewReader(out.Bytes())); err != nil {
			t.Fatalf("a checked snapshot does not restore: %v\n%s", err, out.Bytes())
		}
		_, svcs := st.Services()
		for _, s := range svcs {
			_, ins := st.Instances(s.Name)
			for _, in := range ins {
				cp := *in
				if err := registry.Normalize(&cp); err != nil {
					t.Fatalf("restored instance %s fails validation: %v", in.Key(), err)
				}
				if in.ModifyIndex > at || in.CreateIndex > at {
					t.Fatalf("instance %s indexes %d/%d past the restore's %d", in.Key(), in.CreateIndex, in.ModifyIndex, at)
				}
			}
		}
		again := persist(t, st)
		var out2 bytes.Buffer
		if _, err := store.CheckSnapshot(bytes.NewReader(again), &out2, at+1); err != nil {
			t.Fatalf("a restored state does not check again: %v", err)
		}
		st2 := store.New()
		if err := st2.Restore(&out2); err != nil {
			t.Fatal(err)
		}
		// Restored again past its own index, only the service indexes move.
		a, b := viewOf(st), viewOf(st2)
		if diff := cmp.Diff([]any{a.Instances, a.Checks, a.ByRepo, a.Stats}, []any{b.Instances, b.Checks, b.ByRepo, b.Stats}); diff != "" {
			t.Fatalf("round trip differs (-first +second):\n%s", diff)
		}
	})
}
