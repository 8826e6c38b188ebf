package store_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
)

// TestReadsDuringApplies: readers run while the applier writes, and each
// read sees one consistent state (run it with -race).
func TestReadsDuringApplies(t *testing.T) {
	f := newFixture()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				for _, svc := range []string{"web", "web-api"} {
					idx, ins := f.st.Instances(svc)
					if len(ins) > 0 && idx == 0 {
						t.Errorf("%s: instances at index 0", svc)
					}
					for i, in := range ins {
						if in.Service != svc {
							t.Errorf("Instances(%s) returned %s/%s", svc, in.Service, in.ID)
						}
						if i > 0 && ins[i-1].ID >= in.ID {
							t.Errorf("Instances(%s) out of order: %s, %s", svc, ins[i-1].ID, in.ID)
						}
					}
				}
				_, refs := f.st.Checks(registry.CheckTCP)
				for _, r := range refs {
					if r.Check.Type != registry.CheckTCP {
						t.Errorf("Checks(tcp) returned %v", r.Check)
					}
				}
				for _, in := range f.st.InstancesByRepo("github.com/x/web") {
					if in.Repo != "github.com/x/web" {
						t.Errorf("InstancesByRepo returned repo %q", in.Repo)
					}
				}
				f.st.Services()
				f.st.Stats()
			}
		})
	}
	for i := range 2000 {
		svc := []string{"web", "web-api"}[i%2]
		id := fmt.Sprint("i", i%50)
		switch i % 5 {
		case 0, 1, 2:
			f.apply(t, &registry.RegisterOp{Instance: inst(t, svc, id, repo("github.com/x/web"), tcp("probe", "10.0.0.1:80")), At: f.now})
		case 3:
			f.apply(t, &registry.SetCheckOp{Key: registry.Key{Service: svc, ID: id}, CheckID: "probe", Status: registry.Critical, Output: fmt.Sprint(i), At: f.now})
		case 4:
			f.apply(t, &registry.DeregisterOp{Key: registry.Key{Service: svc, ID: id}})
		}
	}
	stop.Store(true)
	wg.Wait()

	// The reads of the final state agree with each other.
	st := f.st.Stats()
	n := 0
	for _, svc := range []string{"web", "web-api"} {
		_, ins := f.st.Instances(svc)
		n += len(ins)
	}
	if n != st.Instances {
		t.Errorf("Stats counts %d instances, Instances lists %d", st.Instances, n)
	}
	if _, refs := f.st.Checks(registry.CheckTCP); len(refs) != n {
		t.Errorf("%d tcp checks for %d instances", len(refs), n)
	}
	if got := len(f.st.InstancesByRepo("github.com/x/web")); got != n {
		t.Errorf("%d instances by repo, want %d", got, n)
	}
}

// TestApplyAfterFailedBatch: a batch that panicked leaves nothing behind
// for the next one either.
func TestApplyAfterFailedBatch(t *testing.T) {
	st := store.New()
	enc := func(op registry.Op) []byte {
		b, err := store.Encode(op)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("ApplyBatch did not panic")
			}
		}()
		st.ApplyBatch([]store.Entry{
			{Index: 2, Data: enc(&registry.RegisterOp{Instance: inst(t, "web", "a", tcp("probe", "10.0.0.1:80")), At: time.Now()})},
			{Index: 3, Data: []byte{9}},
		})
	}()
	out := st.ApplyBatch([]store.Entry{{Index: 2, Data: enc(&registry.RegisterOp{Instance: inst(t, "web", "b"), At: time.Now()})}})
	if out[0].Err != nil || !out[0].Result.Created {
		t.Fatalf("apply after a failed batch: %+v", out[0])
	}
	if _, err := st.Instance(registry.Key{Service: "web", ID: "a"}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("the failed batch's instance is there: %v", err)
	}
	_, ins := st.Instances("web")
	var ids []string
	for _, in := range ins {
		ids = append(ids, in.ID)
	}
	if !slices.Equal(ids, []string{"b"}) {
		t.Errorf("web instances %v, want [b]", ids)
	}
	if idx, refs := st.Checks(registry.CheckTCP); len(refs) != 0 || idx != 2 {
		t.Errorf("Checks(tcp) = %d, %v after the failed batch", idx, refs)
	}
	if s := st.Stats(); s.Instances != 1 || s.Services != 1 {
		t.Errorf("Stats %+v", s)
	}
}
