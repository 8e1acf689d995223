package actors

import (
	"context"
	"testing"
	"time"
)

// TestDurableHoldsSurviveARestartAndSettleOnce covers the owner's side of
// cross-node stock: a hold for an order on another node is durable before
// the answer, is counted again after a restart, and release/commit are
// idempotent and durable too.
func TestDurableHoldsSurviveARestartAndSettleOnce(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	h := newHarness(t, dir, time.Minute, nil, nil)
	h.putSKU(t, "s", 3, 0)
	inv := h.sys.Inventory()
	for _, otn := range []string{"02a", "02b", "03c"} {
		if r, err := inv.ReserveDurable(ctx, "s", otn, "o-"+otn, 1, true); err != nil || r.Status != Reserved {
			t.Fatalf("%s: %v %v", otn, r.Status, err)
		}
	}
	if r, _ := inv.ReserveDurable(ctx, "s", "02d", "o", 1, false); r.Status != SoldOut {
		t.Fatalf("fourth hold of 3 units: %v", r.Status)
	}
	h.close()

	h = newHarness(t, dir, time.Minute, nil, nil)
	inv = h.sys.Inventory()
	v, err := inv.Get(ctx, "s")
	if err != nil || v.Reserved != 3 || v.Left != 0 {
		t.Fatalf("after restart: %+v %v", v, err)
	}
	held, err := inv.HeldBefore(ctx, h.clk.now().Add(time.Second))
	if err != nil || len(held) != 3 {
		t.Fatalf("held: %v %v", held, err)
	}
	for i := 0; i < 2; i++ { // repeats are no-ops
		if err := inv.Settle(ctx, "s", "02a", "o-02a", 1, true); err != nil {
			t.Fatal(err)
		}
		if err := inv.Settle(ctx, "s", "02b", "o-02b", 1, false); err != nil {
			t.Fatal(err)
		}
	}
	h.close()

	h = newHarness(t, dir, time.Minute, nil, nil)
	v, err = h.sys.Inventory().Get(ctx, "s")
	if err != nil || v.Sold != 1 || v.Reserved != 1 || v.Left != 1 {
		t.Fatalf("after settling and a restart: %+v %v", v, err)
	}
	if held, _ := h.sys.Inventory().HeldBefore(ctx, h.clk.now().Add(time.Second)); len(held) != 1 || held[0].OutTradeNo != "03c" {
		t.Fatalf("still held: %+v", held)
	}
}
