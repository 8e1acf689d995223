package main

import "testing"

// Each node reconciles its own shard's orders; orders of no shard (another
// system's) are reported by the node of the first shard, and a single node
// reconciles everything.
func TestReconcileSkip(t *testing.T) {
	t.Parallel()
	if reconcileSkip("01", nil) != nil {
		t.Fatal("a single node skips rows")
	}
	cases := []struct {
		shard, otn string
		skip       bool
	}{
		{"01", "01ABC", false}, {"01", "02ABC", true}, {"01", "XYZ", false},
		{"02", "02ABC", false}, {"02", "01ABC", true}, {"02", "XYZ", true}, {"02", "X", true},
	}
	for _, c := range cases {
		if got := reconcileSkip(c.shard, []string{"01", "02"})(c.otn); got != c.skip {
			t.Errorf("node %s, row %s: skip %v, want %v", c.shard, c.otn, got, c.skip)
		}
	}
}
