package billing

import (
	"regexp"
	"slices"
	"testing"
)

// TestNewIDSortsByCreation: ids made one after another are distinct, have
// the documented form and sort in the order they were made (what keeps
// inserts on the last page of a unique index).
func TestNewIDSortsByCreation(t *testing.T) {
	form := regexp.MustCompile(`^rsv_[0-9a-f]{32}$`)
	ids := make([]string, 2000)
	for i := range ids {
		ids[i] = NewID("rsv_")
		if !form.MatchString(ids[i]) {
			t.Fatalf("id %q: want rsv_ and 32 hex digits", ids[i])
		}
	}
	// The time part (the first 16 digits) never goes down; ids of the same
	// nanosecond differ in their random part.
	for i := 1; i < len(ids); i++ {
		if ids[i][4:20] < ids[i-1][4:20] {
			t.Fatalf("id %d (%s) sorts before id %d (%s)", i, ids[i], i-1, ids[i-1])
		}
	}
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Error("ids repeat")
	}
}
