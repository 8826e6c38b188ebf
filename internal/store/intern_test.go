package store

import (
	"context"
	"reflect"
	"testing"
	"unsafe"

	"github.com/rosterhq/roster/internal/registry"
)

func mapID(m map[string]string) uintptr {
	return uintptr(unsafe.Pointer(reflect.ValueOf(m).UnsafePointer()))
}

func TestInternerSharesEqualSets(t *testing.T) {
	n := newInterner()
	mk := func(tags []string, meta map[string]string) *registry.Instance {
		in := &registry.Instance{Service: "web", ID: "x", Tags: tags, Meta: meta, Zone: "a",
			Checks: []registry.Check{{ID: "ttl", Type: registry.CheckTTL, Status: registry.Passing}}}
		n.instance(in)
		return in
	}
	a := mk([]string{"v1", "http"}, map[string]string{"team": "pay", "version": "1"})
	b := mk([]string{"v1", "http"}, map[string]string{"version": "1", "team": "pay"})
	c := mk([]string{"http", "v1"}, map[string]string{"version": "2", "team": "pay"})
	d := mk([]string{}, map[string]string{})

	if &a.Tags[0] != &b.Tags[0] {
		t.Error("equal tag lists are not shared")
	}
	if mapID(a.Meta) != mapID(b.Meta) {
		t.Error("equal metadata maps are not shared")
	}
	if &a.Tags[0] == &c.Tags[0] {
		t.Error("tag lists in another order share one slice; order is part of the value")
	}
	if mapID(a.Meta) == mapID(c.Meta) {
		t.Error("different metadata shares one map")
	}
	if !reflect.DeepEqual(c.Meta, map[string]string{"version": "2", "team": "pay"}) || !reflect.DeepEqual(c.Tags, []string{"http", "v1"}) {
		t.Errorf("interned values changed: %v %v", c.Tags, c.Meta)
	}
	if d.Tags != nil || d.Meta != nil {
		t.Errorf("empty sets should become nil, got %#v %#v", d.Tags, d.Meta)
	}
	if unsafe.StringData(a.Zone) != unsafe.StringData(c.Zone) {
		t.Error("zone strings are not shared")
	}
}

func TestInternerTablesAreBounded(t *testing.T) {
	n := newInterner()
	n.max = 4
	for i := range 10 {
		in := &registry.Instance{Tags: []string{string(rune('a' + i))}, Meta: map[string]string{"k": string(rune('a' + i))}}
		n.instance(in)
		if got := in.Tags[0]; got != string(rune('a'+i)) {
			t.Fatalf("tag %d = %q", i, got)
		}
	}
	if len(n.tags) > 4 || len(n.meta) > 4 {
		t.Errorf("tables hold %d tag and %d meta sets, bound is 4", len(n.tags), len(n.meta))
	}
}

// A caller's instance handed in through the log must not share mutable
// parts with what the store keeps.
func TestPendingRegisterDoesNotShareCallerMemory(t *testing.T) {
	st := New()
	in := &registry.Instance{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80, Weight: 1,
		Tags: []string{"v1"}, Meta: map[string]string{"k": "v"}}
	log := NewLog(st, appendFunc(func(b []byte) Response { return st.ApplyBatch([]Entry{{Index: 2, Data: b}})[0] }))
	if _, err := log.Apply(context.Background(), &registry.RegisterOp{Instance: in}); err != nil {
		t.Fatal(err)
	}
	in.Tags[0], in.Meta["k"] = "changed", "changed"
	got, err := st.Instance(registry.Key{Service: "web", ID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Tags[0] != "v1" || got.Meta["k"] != "v" {
		t.Errorf("stored instance changed with the caller's: %v %v", got.Tags, got.Meta)
	}
}

type appendFunc func([]byte) Response

func (f appendFunc) Append(_ context.Context, b []byte) (Response, error) { return f(b), nil }

func TestInternerTrimsDecodedChecks(t *testing.T) {
	n := newInterner()
	in := &registry.Instance{Checks: make([]registry.Check, 1, 4)}
	n.instance(in)
	if cap(in.Checks) != 1 {
		t.Errorf("checks kept capacity %d for 1 check", cap(in.Checks))
	}
}
