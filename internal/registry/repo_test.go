package registry_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/store"
	"github.com/rosterhq/roster/internal/testutil"
)

func TestInstancesByRepo(t *testing.T) {
	st := store.New()
	svc := registry.New(registry.Config{State: st, Log: testutil.NewMemLog(st)})
	ctx := context.Background()
	reg := func(service, id, repo string) {
		t.Helper()
		in := &registry.Instance{Service: service, ID: id, Address: "10.0.0.1", Port: 80, Repo: repo}
		if _, err := svc.Register(ctx, in); err != nil {
			t.Fatalf("Register %s/%s: %v", service, id, err)
		}
	}
	reg("web", "b", "github.com/x/app")
	reg("web", "a", "github.com/x/app")
	reg("worker", "a", "github.com/x/app")
	reg("db", "a", "github.com/x/db")
	reg("cache", "a", "")

	keys := func(ins []*registry.Instance) []string {
		var out []string
		for _, in := range ins {
			out = append(out, in.Service+"/"+in.ID)
		}
		return out
	}
	tests := []struct {
		name, repo string
		want       []string
	}{
		{"shared by two services", "github.com/x/app", []string{"web/a", "web/b", "worker/a"}},
		{"one instance", "github.com/x/db", []string{"db/a"}},
		{"unknown", "github.com/x/none", nil},
		{"empty matches nothing", "", nil},
		{"case matters", "github.com/X/app", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := svc.InstancesByRepo(tc.repo)
			if err != nil {
				t.Fatal(err)
			}
			if g := keys(got); !slices.Equal(g, tc.want) {
				t.Errorf("InstancesByRepo(%q) = %v, want %v", tc.repo, g, tc.want)
			}
		})
	}

	// A change of repo moves the instance in the index.
	reg("web", "a", "github.com/x/db")
	got, _ := svc.InstancesByRepo("github.com/x/db")
	if g := keys(got); !slices.Equal(g, []string{"db/a", "web/a"}) {
		t.Errorf("after moving web/a: %v", g)
	}
	if _, err := svc.Deregister(ctx, registry.Key{Service: "db", ID: "a"}); err != nil {
		t.Fatal(err)
	}
	got, _ = svc.InstancesByRepo("github.com/x/db")
	if g := keys(got); !slices.Equal(g, []string{"web/a"}) {
		t.Errorf("after deregistering db/a: %v", g)
	}
}

func TestInstancesByRepoNeedsIndex(t *testing.T) {
	h := newHarness(t) // its State hides the store's repo index
	if _, err := h.svc.InstancesByRepo("x"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("err = %v, want ErrUnsupported", err)
	}
	st := store.New()
	notReady := registry.New(registry.Config{State: st, Log: testutil.NewMemLog(st), Ready: func() bool { return false }})
	if _, err := notReady.InstancesByRepo("x"); !errors.Is(err, registry.ErrNotReady) {
		t.Fatalf("err = %v, want ErrNotReady", err)
	}
}
