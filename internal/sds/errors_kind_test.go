package sds

import (
	"net/http/httptest"
	"testing"

	"github.com/rosterhq/roster/internal/registry"
	"github.com/rosterhq/roster/internal/testutil"
)

// TestErrorKinds: every error kind gets this front door's answer, as the
// one table of every door's answers (testutil.ErrorAnswers) has it.
func TestErrorKinds(t *testing.T) {
	want := testutil.ErrorAnswers(testutil.DoorSDS)
	for _, k := range registry.Kinds() {
		t.Run(k.String(), func(t *testing.T) {
			rec := httptest.NewRecorder()
			writeError(rec, testutil.KindError(k))
			want[k].Check(t, rec)
		})
	}
}
