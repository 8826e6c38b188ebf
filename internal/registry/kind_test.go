package registry

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestKindOf(t *testing.T) {
	verr := &ValidationError{}
	verr.Add("port", "must be 1-65535")
	for _, tc := range []struct {
		err  error
		want Kind
	}{
		{errors.New("disk"), KindInternal},
		{verr, KindInvalid},
		{fmt.Errorf("wrapped: %w", verr), KindInvalid},
		{fmt.Errorf("web/1: %w", ErrNotFound), KindNotFound},
		{ErrConflict, KindConflict},
		{ErrNoTTL, KindNoTTL},
		{ErrNotReady, KindNotReady},
		{ErrNotLeader, KindNotLeader},
		{fmt.Errorf("%w: %w", ErrOutcomeUnknown, context.DeadlineExceeded), KindOutcomeUnknown},
		{fmt.Errorf("%w: %w", ErrNotLeader, ErrOutcomeUnknown), KindOutcomeUnknown},
		{context.DeadlineExceeded, KindTimeout},
		{context.Canceled, KindCanceled},
		{fmt.Errorf("snapshot: %w", ErrTooLarge), KindTooLarge},
	} {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("KindOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	seen := map[string]bool{}
	for _, k := range Kinds() {
		if seen[k.String()] {
			t.Errorf("kind name %q twice", k)
		}
		seen[k.String()] = true
	}
}
