package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/rosterhq/roster/internal/testutil"
)

// TestSnapshotRestoreCannotBrick reproduces, against the real binary, the
// restores that once broke an agent for good: a header "last" of 2^64-2
// or 2^64-1, a "last" a few hundred below 2^64 followed by ~600 writes,
// and an instance modify_index near 2^64. Each is refused with 400 naming
// the field; the agent keeps accepting writes, restarts cleanly with
// everything it acknowledged, and then takes a good restore of a snapshot
// from a log far ahead of its own, at its own index.
func TestSnapshotRestoreCannotBrick(t *testing.T) {
	a := startAgent(t, testutil.AgentOptions{})
	register(t, a, "web", "kept", map[string]any{"address": "10.7.7.7", "port": 80})
	tests := []struct{ name, body, field string }{
		{"last 2^64-2", `{"version":1,"indexes":{"last":18446744073709551614}}`, "line 1, header.indexes.last"},
		{"last 2^64-1", `{"version":1,"indexes":{"last":18446744073709551615}}`, "line 1, header.indexes.last"},
		{"last a few hundred below 2^64", `{"version":1,"indexes":{"last":18446744073709551200}}` + "\n" +
			`{"instance":{"service":"web","id":"x","address":"10.0.0.1","port":80,"create_index":18446744073709551100,"modify_index":18446744073709551100}}`,
			"line 1, header.indexes.last"},
		{"modify_index near 2^64", `{"version":1,"indexes":{"last":9}}` + "\n" +
			`{"instance":{"service":"web","id":"x","address":"10.0.0.1","port":80,"modify_index":18446744073709551600}}`,
			"line 2, instance web/x, modify_index"},
	}
	n := 0
	for _, tc := range tests {
		status, _, body := testutil.Do(t, "PUT", a.URL+"/v1/registry/snapshot", tc.body)
		var ans errorAnswer
		_ = json.Unmarshal(body, &ans)
		if status != http.StatusBadRequest || len(ans.Fields) == 0 || ans.Fields[0].Field != tc.field {
			t.Errorf("%s: %d %s, want 400 naming %q", tc.name, status, body, tc.field)
		}
		for range 150 {
			register(t, a, "after", fmt.Sprintf("w-%d", n), map[string]any{"address": "10.0.0.2", "port": 80})
			n++
		}
	}
	before := fullState(t, a)
	if err := a.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	a.Restart(t)
	if d := diffState(before, fullState(t, a)); d != "" {
		t.Fatalf("after a restart the state differs:\n%s", d)
	}

	// A good snapshot whose indexes are far ahead of this log's.
	far := `{"version":1,"indexes":{"last":1099511627776,"services":1099511627776,"checks":0}}` + "\n" +
		`{"instance":{"service":"far","id":"a","address":"10.0.0.3","port":80,"create_index":1099511627770,"modify_index":1099511627776}}` + "\n"
	svcs, _ := listServices(t, a)
	idxBefore := svcs.Index
	testutil.DoJSON(t, "PUT", a.URL+"/v1/registry/snapshot", far, http.StatusOK, nil)
	ans, _, idx := listInstances(t, a, "far", "")
	if len(ans.Instances) != 1 || idx <= idxBefore || idx > idxBefore+10 {
		t.Fatalf("after the restore far holds %d instances at index %d, want 1, just past %d", len(ans.Instances), idx, idxBefore)
	}
	for i := range 600 {
		register(t, a, "far", fmt.Sprintf("w-%d", i), map[string]any{"address": "10.0.0.4", "port": 80})
	}
	before = fullState(t, a)
	if err := a.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	a.Restart(t)
	if d := diffState(before, fullState(t, a)); d != "" {
		t.Fatalf("after a restart the restored state differs:\n%s", d)
	}
	register(t, a, "far", "last", map[string]any{"address": "10.0.0.5", "port": 80})
}
