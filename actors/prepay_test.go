package actors

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

// stockOnDisk sums a SKU's durable reservations.
func stockOnDisk(t *testing.T, st *store.Store, sku string) (reserved, sold int64) {
	t.Helper()
	err := st.Reservations(sku, func(_ string, r store.Reservation) error {
		if r.Sold {
			sold += r.Quantity
		} else {
			reserved += r.Quantity
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return reserved, sold
}

// checkStock asserts memory == disk == orders for each SKU.
func checkStock(t *testing.T, h *harness, orders map[string]store.Order, skus ...string) {
	t.Helper()
	for _, sku := range skus {
		var open, paid int64
		for _, o := range orders {
			if o.SKU != sku {
				continue
			}
			switch o.State {
			case store.StateCreated, store.StatePrepaid:
				open += o.Quantity
			case store.StatePaid, store.StateRefunding, store.StateRefunded:
				paid += o.Quantity
			}
		}
		v, err := h.sys.Inventory().Get(context.Background(), sku)
		if err != nil {
			t.Fatal(err)
		}
		dr, ds := stockOnDisk(t, h.st, sku)
		if v.Reserved != open || dr != open || v.Sold != paid || ds != paid {
			t.Fatalf("%s: memory reserved %d sold %d, disk reserved %d sold %d, orders open %d paid %d",
				sku, v.Reserved, v.Sold, dr, ds, open, paid)
		}
		if v.Left+v.Reserved+v.Sold != v.Stock {
			t.Fatalf("%s: left %d + reserved %d + sold %d != stock %d", sku, v.Left, v.Reserved, v.Sold, v.Stock)
		}
	}
}

// TestSameKeyRaceNeverOversells is the Idempotency-Key race: one buyer
// sends thousands of concurrent requests under a few keys, each with a
// random SKU and quantity. Each key ends with at most one order, made by
// exactly one request; replays with its parameters get that order, others
// StatusIdemReused; stock in memory equals stock on disk equals the orders,
// before and after a restart.
func TestSameKeyRaceNeverOversells(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wc := &scriptedWeChat{state: map[string]string{}, prepayGate: make(chan struct{})}
	h := newHarness(t, dir, time.Second, wc, nil)
	h.putSKU(t, "S", 150, 2)
	h.putSKU(t, "T", 150, 2)
	ctx := context.Background()
	const keys, perKey = 8, 400
	type result struct {
		sku string
		qty int64
		r   Reply
		err error
	}
	results := make([][]result, keys)
	var wg sync.WaitGroup
	var started atomic.Int64
	for k := 0; k < keys; k++ {
		results[k] = make([]result, perKey)
		for i := 0; i < perKey; i++ {
			wg.Add(1)
			go func(k, i int) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(k), uint64(i)))
				sku := []string{"S", "T"}[rng.IntN(2)]
				qty := []int64{1, 2, 99}[rng.IntN(3)]
				started.Add(1)
				r, err := h.sys.Request(ctx, &Prepay{OutTradeNo: fmt.Sprintf("01KRACE%04d", k), OpenID: "one-buyer",
					SKU: sku, Quantity: qty, IdemKey: fmt.Sprint(k)})
				results[k][i] = result{sku, qty, r, err}
			}(k, i)
		}
	}
	// Let the requests pile up behind the first prepays, then let WeChat answer.
	eventually(t, "requests sent", func() bool { return started.Load() == keys*perKey })
	time.Sleep(20 * time.Millisecond)
	close(wc.prepayGate)
	wg.Wait()

	orders := map[string]store.Order{}
	for k := 0; k < keys; k++ {
		otn := fmt.Sprintf("01KRACE%04d", k)
		r, err := h.sys.Request(ctx, &Get{OutTradeNo: otn})
		if err != nil {
			t.Fatal(err)
		}
		created := 0
		for _, res := range results[k] {
			if res.err != nil {
				t.Fatalf("key %d: %v", k, res.err)
			}
			switch res.r.Status {
			case StatusCreated:
				created++
				fallthrough
			case StatusOK:
				if !r.Exists || res.sku != r.Order.SKU || res.qty != r.Order.Quantity {
					t.Fatalf("key %d: %s x%d answered with order %s x%d", k, res.sku, res.qty, r.Order.SKU, r.Order.Quantity)
				}
				if res.r.Order.State != store.StatePrepaid {
					t.Fatalf("key %d: answered %s", k, res.r.Order.State)
				}
			case StatusIdemReused:
				if !r.Exists || res.sku == r.Order.SKU && res.qty == r.Order.Quantity {
					t.Fatalf("key %d: the order's own parameters refused", k)
				}
			case StatusLimitExceeded, StatusSoldOut:
			default:
				t.Fatalf("key %d: status %d", k, res.r.Status)
			}
		}
		if r.Exists {
			if created != 1 {
				t.Fatalf("key %d: %d requests created the order", k, created)
			}
			orders[otn] = r.Order
		} else if created != 0 {
			t.Fatalf("key %d: created but no order", k)
		}
	}
	units := map[string]int64{}
	for _, o := range orders {
		units[o.SKU] += o.Quantity
	}
	for sku, n := range units {
		if n > 2 {
			t.Fatalf("one buyer holds %d units of %s past the per-buyer limit 2", n, sku)
		}
	}
	checkStock(t, h, orders, "S", "T")
	if n := wc.prepays.Load(); n != int64(len(orders)) {
		t.Fatalf("%d prepay calls for %d orders", n, len(orders))
	}

	h.close()
	h2 := newHarness(t, dir, time.Second, wc, h.clk)
	checkStock(t, h2, orders, "S", "T")
}

// TestPrepayOutcomes: a definitive refusal fails the order and frees its
// stock; an unknown outcome (5xx, timeout, 429) keeps the order CREATED
// with its stock, and the replay asks WeChat again with the same number.
func TestPrepayOutcomes(t *testing.T) {
	t.Parallel()
	signed := func(status int, code string) error {
		return fmt.Errorf("wxpay client: prepay: %w", &wxpay.APIError{Status: status, Code: code})
	}
	cases := []struct {
		name  string
		err   error
		state store.State
	}{
		{"a signed 403 NO_AUTH fails the order", signed(403, wxpay.CodeNoAuth), store.StateFailed},
		{"a signed 500 SYSTEM_ERROR is unknown", signed(500, wxpay.CodeSystemError), store.StateCreated},
		{"a signed 429 created nothing but may pass later", signed(429, wxpay.CodeFrequencyLimited), store.StateCreated},
		{"a timeout is unknown", fmt.Errorf("prepay: %w", client.ErrTimeout), store.StateCreated},
		{"an unsigned 4xx is unknown", fmt.Errorf("%w: %w", client.ErrUnsignedResponse, &wxpay.APIError{Status: 400, Code: "PARAM_ERROR"}), store.StateCreated},
		{"a cut connection is unknown", fmt.Errorf("prepay: %w", client.ErrTransport), store.StateCreated},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wc := &scriptedWeChat{state: map[string]string{}}
			wc.prepayErr = func(_ string, n int64) error {
				if n == 1 {
					return tc.err
				}
				return nil
			}
			h := newHarness(t, t.TempDir(), time.Second, wc, nil)
			h.putSKU(t, "o", 5, 0)
			ctx := context.Background()
			otn := fmt.Sprintf("01KOUT%04d", i)
			m := &Prepay{OutTradeNo: otn, OpenID: "b", SKU: "o", Quantity: 2, IdemKey: "k"}
			r, err := h.sys.Request(ctx, m)
			if !errors.Is(err, tc.err) && err != tc.err && !errors.Is(err, errors.Unwrap(tc.err)) {
				t.Fatalf("the buyer got %v, want the WeChat error %v", err, tc.err)
			}
			if r.Order.State != tc.state {
				t.Fatalf("state %s, want %s", r.Order.State, tc.state)
			}
			v, _ := h.sys.Inventory().Get(ctx, "o")
			wantHeld := int64(2)
			if tc.state == store.StateFailed {
				wantHeld = 0
			}
			eventually(t, "stock", func() bool { v, _ = h.sys.Inventory().Get(ctx, "o"); return v.Reserved == wantHeld })
			r, err = h.sys.Request(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			want := store.StatePrepaid
			if tc.state == store.StateFailed {
				want = store.StateFailed
			}
			if r.Order.State != want {
				t.Fatalf("replay: %s, want %s", r.Order.State, want)
			}
			checkStock(t, h, map[string]store.Order{otn: r.Order}, "o")
		})
	}
}

// TestBudgetRefusalHoldsNothing: with the merchant's budget spent the
// buyer gets StatusBudget and no unit stays reserved.
func TestBudgetRefusalHoldsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, t.TempDir(), time.Second, nil, nil)
	h.sys.budget = newBudget(1, time.Millisecond, func() time.Time { return t0 }) // one token, never refilled
	h.putSKU(t, "b", 10, 0)
	ctx := context.Background()
	if st, err := h.buy(ctx, "b", "01KBUDGET01", "x", 1); err != nil || st != Reserved {
		t.Fatalf("first: %d %v", st, err)
	}
	r, err := h.sys.Request(ctx, &Prepay{OutTradeNo: "01KBUDGET02", OpenID: "y", SKU: "b", Quantity: 3})
	if err != nil || r.Status != StatusBudget || r.RetryAfter <= 0 {
		t.Fatalf("second: %d %v retry %s", r.Status, err, r.RetryAfter)
	}
	o1 := h.order(t, "01KBUDGET01")
	checkStock(t, h, map[string]store.Order{o1.OutTradeNo: o1}, "b")
}
