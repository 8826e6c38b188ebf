package testutil

import (
	"testing"

	"github.com/rosterhq/roster/internal/registry"
)

// TestErrorAnswersCoverEveryKind: every kind has an answer at every door,
// and KindError makes an error of that kind.
func TestErrorAnswersCoverEveryKind(t *testing.T) {
	for _, door := range []string{DoorNative, DoorConsul, DoorSDS} {
		answers := ErrorAnswers(door)
		for _, k := range registry.Kinds() {
			if a, ok := answers[k]; !ok || a.Code == 0 {
				t.Errorf("%s: no answer for %s", door, k)
			}
		}
	}
	for _, k := range registry.Kinds() {
		if got := registry.KindOf(KindError(k)); got != k {
			t.Errorf("KindOf(KindError(%s)) = %s", k, got)
		}
	}
}
