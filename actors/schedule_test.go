package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

// TestFailedClosesBackOffAcrossRestarts: WeChat answers 500 to every close.
// The order is closed once per backoff step, not in a loop, and neither
// passivation nor a restart resets the schedule (it is on disk).
func TestFailedClosesBackOffAcrossRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wc := &scriptedWeChat{state: map[string]string{}, closeErr: &wxpay.APIError{Status: 500, Code: wxpay.CodeSystemError}}
	h := newHarness(t, dir, 5*time.Millisecond, wc, nil)
	h.putSKU(t, "c", 5, 0)
	ctx := context.Background()
	if _, err := h.buy(ctx, "c", "01KCLOSE0001", "b", 1); err != nil {
		t.Fatal(err)
	}
	h.clk.advance(16 * time.Minute) // past the TTL
	h.sys.timers.poke()
	eventually(t, "the first close", func() bool { return wc.closes.Load() >= 1 })
	// Real time passes, the actor passivates and wakes; business time
	// stands still: no second close may go out.
	for i := 0; i < 20; i++ {
		time.Sleep(10 * time.Millisecond)
		h.sys.timers.poke()
	}
	if n := wc.closes.Load(); n != 1 {
		t.Fatalf("%d closes before the backoff elapsed", n)
	}
	o := h.order(t, "01KCLOSE0001")
	if o.Queries != 1 || o.NextTickMs <= h.clk.now().UnixMilli() {
		t.Fatalf("schedule not persisted: queries %d next %d", o.Queries, o.NextTickMs)
	}

	h.close()
	h2 := newHarness(t, dir, 5*time.Millisecond, wc, h.clk)
	if _, err := h2.sys.Recover(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := wc.closes.Load(); n != 1 {
		t.Fatalf("a restart reset the backoff: %d closes", n)
	}
	h2.clk.advance(time.Minute)
	h2.sys.timers.poke()
	eventually(t, "the second close after the backoff", func() bool { return wc.closes.Load() == 2 })
	time.Sleep(30 * time.Millisecond)
	if o := h2.order(t, "01KCLOSE0001"); o.State != store.StatePrepaid || o.Queries != 2 {
		t.Fatalf("after two failed closes: %s, %d attempts", o.State, o.Queries)
	}
	// WeChat recovers: the next attempt closes it and frees the unit.
	wc.mu.Lock()
	wc.closeErr = nil
	wc.mu.Unlock()
	h2.clk.advance(3 * time.Minute)
	h2.sys.timers.poke()
	eventually(t, "closed", func() bool { return h2.order(t, "01KCLOSE0001").State == store.StateClosed })
	eventually(t, "stock back", func() bool { v, _ := h2.sys.Inventory().Get(ctx, "c"); return v.Reserved == 0 && v.Left == 5 })
}

// TestRefundWhoseAnswerIsLostIsNotFailed: the refund create took effect at
// WeChat but its answer was a 500. The admin hears "pending"; the refund
// stays pending (never FAILED, the order never back to PAID), is sent again
// with the same out_refund_no and completes; WeChat booked one refund.
func TestRefundWhoseAnswerIsLostIsNotFailed(t *testing.T) {
	t.Parallel()
	wc := &scriptedWeChat{state: map[string]string{}}
	wc.refundErr = func(n int64) error {
		if n == 1 {
			return &wxpay.APIError{Status: 500, Code: wxpay.CodeSystemError}
		}
		return nil
	}
	h := newHarness(t, t.TempDir(), time.Second, wc, nil)
	h.putSKU(t, "f", 1, 0)
	ctx := context.Background()
	otn := "01KREFLOST01"
	if _, err := h.buy(ctx, "f", otn, "b", 1); err != nil {
		t.Fatal(err)
	}
	tx := successTx()
	tx.OutTradeNo = otn
	if _, err := h.sys.Request(ctx, &PaymentNotified{Tx: tx, NotifyID: "EV-1"}); err != nil {
		t.Fatal(err)
	}
	r, err := h.sys.Request(ctx, &StartRefund{OutTradeNo: otn, Amount: 500, Reason: "lost"})
	if err != nil || r.Status != StatusPending || r.Order.State != store.StateRefunding {
		t.Fatalf("start: %v status %d %s", err, r.Status, r.Order.State)
	}
	no := r.Order.Refunds[0].OutRefundNo
	// The admin retries the same refund: the same refund answers.
	if r, err := h.sys.Request(ctx, &StartRefund{OutTradeNo: otn, OutRefundNo: no, Amount: 500}); err != nil ||
		r.Status != StatusOK || len(r.Order.Refunds) != 1 {
		t.Fatalf("retry: %v %d %+v", err, r.Status, r.Order.Refunds)
	}
	h.clk.advance(2 * time.Minute)
	h.sys.timers.poke()
	eventually(t, "sent again and confirmed", func() bool { return h.order(t, otn).Refunds[0].RefundID == "5020" })
	h.clk.advance(3 * time.Minute)
	h.sys.timers.poke()
	eventually(t, "refunded", func() bool { return h.order(t, otn).State == store.StateRefunded })
	o := h.order(t, otn)
	if o.RefundedFen != 500 || len(o.Refunds) != 1 || wc.refundsN.Load() != 2 || len(wc.refunds) != 1 {
		t.Fatalf("refunded %d, refunds %+v, %d creates, WeChat booked %v", o.RefundedFen, o.Refunds, wc.refundsN.Load(), wc.refunds)
	}
}

// TestAbnormalRefundIsRecordedOnceThenApplied: every query answers ABNORMAL;
// the order records it once (one event, one alert), keeps querying on the
// backoff without new events, and the admin's apply-abnormal-refund
// completes it.
func TestAbnormalRefundIsRecordedOnceThenApplied(t *testing.T) {
	t.Parallel()
	wc := &scriptedWeChat{state: map[string]string{}, refundStatus: wxpay.RefundStatusAbnormal}
	h := newHarness(t, t.TempDir(), time.Second, wc, nil)
	h.putSKU(t, "a", 1, 0)
	ctx := context.Background()
	otn := "01KABNORMAL1"
	if _, err := h.buy(ctx, "a", otn, "b", 1); err != nil {
		t.Fatal(err)
	}
	tx := successTx()
	tx.OutTradeNo = otn
	if _, err := h.sys.Request(ctx, &PaymentNotified{Tx: tx, NotifyID: "EV-1"}); err != nil {
		t.Fatal(err)
	}
	r, err := h.sys.Request(ctx, &StartRefund{OutTradeNo: otn, Amount: 500})
	if err != nil || r.Status != StatusOK {
		t.Fatalf("start: %v %d", err, r.Status)
	}
	no := r.Order.Refunds[0].OutRefundNo
	if r, _ := h.sys.Request(ctx, &ApplyAbnormalRefund{OutTradeNo: otn, Request: wxpay.AbnormalRefundRequest{OutRefundNo: no, Type: "MERCHANT_BANK_CARD"}}); r.Status != StatusConflict {
		t.Fatalf("apply before ABNORMAL: %d", r.Status)
	}
	for i := 0; i < 6; i++ { // six backoff steps, each a query answering ABNORMAL
		h.clk.advance(11 * time.Minute)
		h.sys.timers.poke()
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, "abnormal", func() bool { return h.order(t, otn).Refunds[0].Status == wxpay.RefundStatusAbnormal })
	hist, _ := h.st.History(otn)
	abnormal := 0
	for _, e := range hist {
		if e.Type == "order.refund_abnormal" {
			abnormal++
		}
	}
	if o := h.order(t, otn); abnormal != 1 || len(o.Alerts) != 1 || o.State != store.StateRefunding {
		t.Fatalf("%d abnormal events, alerts %v, state %s", abnormal, o.Alerts, o.State)
	}
	r, err = h.sys.Request(ctx, &ApplyAbnormalRefund{OutTradeNo: otn, Request: wxpay.AbnormalRefundRequest{OutRefundNo: no, Type: "MERCHANT_BANK_CARD"}})
	if err != nil || r.Status != StatusOK || r.Order.Refunds[0].Status != wxpay.RefundStatusProcessing || wc.applied.Load() != 1 {
		t.Fatalf("apply: %v %d %+v", err, r.Status, r.Order.Refunds)
	}
	h.clk.advance(11 * time.Minute)
	h.sys.timers.poke()
	eventually(t, "refunded", func() bool { return h.order(t, otn).State == store.StateRefunded })
}

// TestReconcileAppliesAMissedPayment: WeChat has the payment, wxpayd never
// heard of it (no notification, its timer not yet due). A Reconcile queries
// now and pays the order, once, with an alert; a second Reconcile changes
// nothing.
func TestReconcileAppliesAMissedPayment(t *testing.T) {
	t.Parallel()
	wc := &scriptedWeChat{state: map[string]string{}}
	h := newHarness(t, t.TempDir(), time.Second, wc, nil)
	h.putSKU(t, "r", 2, 0)
	ctx := context.Background()
	otn := "01KRECON0001"
	if _, err := h.buy(ctx, "r", otn, "b", 1); err != nil {
		t.Fatal(err)
	}
	wc.set(otn, wxpay.TradeStateSuccess)
	r, err := h.sys.Request(ctx, &Reconcile{OutTradeNo: otn, Reason: "in the trade bill, not paid here"})
	if err != nil || r.Order.State != store.StatePaid || len(r.Order.Alerts) != 1 {
		t.Fatalf("reconcile: %v %s %v", err, r.Order.State, r.Order.Alerts)
	}
	if r, err := h.sys.Request(ctx, &Reconcile{OutTradeNo: otn, Reason: "again"}); err != nil || r.Order.Seq != 3 {
		t.Fatalf("second reconcile: %v seq %d", err, r.Order.Seq)
	}
	hist, _ := h.st.History(otn)
	if len(hist) != 3 || hist[2].Type != "order.paid" || hist[2].Reason != "reconcile" || hist[2].Alert == "" {
		t.Fatalf("history %+v", hist)
	}
	eventually(t, "stock sold", func() bool { v, _ := h.sys.Inventory().Get(ctx, "r"); return v.Sold == 1 && v.Reserved == 0 })
}

// TestRefundCallsSlowWhileWeChatFailsThem: after a refund call whose
// outcome is unknown, refund calls are paced at WeChat's 6 QPS for a
// minute instead of 150.
func TestRefundCallsSlowWhileWeChatFailsThem(t *testing.T) {
	t.Parallel()
	h := newHarness(t, t.TempDir(), time.Second, nil, nil)
	h.sys.refunds = newBudget(150, 0, h.clk.now)
	h.sys.refundsFailing = newBudget(failingRefundQPS, 0, h.clk.now)
	granted := func() int {
		n := 0
		for i := 0; i < 100; i++ {
			if h.sys.refundToken() {
				n++
			}
		}
		return n
	}
	if n := granted(); n < 10 {
		t.Fatalf("healthy: %d of 100 granted at once", n)
	}
	h.clk.advance(time.Second) // refill
	h.sys.refundFailed()
	if n := granted(); n != 1 {
		t.Fatalf("failing: %d of 100 granted at once, want 1 (6 QPS, burst 1)", n)
	}
	h.clk.advance(failingFor + time.Second)
	if n := granted(); n < 10 {
		t.Fatalf("a minute later: %d of 100 granted", n)
	}
}

// TestRacingAdminRefundsRefundOnce: many admins refund one paid order at
// once, some under the same refund number, while WeChat loses every other
// create's answer. Each refund number exists once at wxpayd and once at
// WeChat, nothing is refunded past the total, and what wxpayd booked
// refunded equals what WeChat refunded.
func TestRacingAdminRefundsRefundOnce(t *testing.T) {
	t.Parallel()
	wc := &scriptedWeChat{state: map[string]string{}}
	wc.refundErr = func(n int64) error {
		if n%2 == 1 {
			return &wxpay.APIError{Status: 500, Code: wxpay.CodeSystemError} // took effect, answer lost
		}
		return nil
	}
	h := newHarness(t, t.TempDir(), time.Second, wc, nil)
	h.putSKU(t, "rr", 1, 0)
	ctx := context.Background()
	otn := "01KRACEREF01"
	if _, err := h.buy(ctx, "rr", otn, "b", 1); err != nil {
		t.Fatal(err)
	}
	tx := successTx()
	tx.OutTradeNo = otn
	if _, err := h.sys.Request(ctx, &PaymentNotified{Tx: tx, NotifyID: "EV-1"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			m := &StartRefund{OutTradeNo: otn, Amount: 100}
			if i%2 == 0 {
				m.OutRefundNo = otn + "-K1" // one admin's request, retried
			}
			if _, err := h.sys.Request(ctx, m); err != nil && !errors.Is(err, ErrTimeout) {
				var we *wxpay.APIError
				if !errors.As(err, &we) {
					t.Error(err)
				}
			}
		}(i)
	}
	wg.Wait()
	// Let every pending refund be sent again and complete, admins asking
	// for more as the order allows.
	for step := 0; step < 12; step++ {
		h.clk.advance(11 * time.Minute)
		h.sys.timers.poke()
		time.Sleep(20 * time.Millisecond)
		_, _ = h.sys.Request(ctx, &StartRefund{OutTradeNo: otn, Amount: 100})
	}
	eventually(t, "refunds settle", func() bool {
		return h.order(t, otn).State == store.StateRefunded && pendingRefund(ptr(h.order(t, otn))) == nil
	})
	o := h.order(t, otn)
	seen := map[string]bool{}
	var sum, success int64
	for _, r := range o.Refunds {
		if seen[r.OutRefundNo] {
			t.Fatalf("refund number %s twice: %+v", r.OutRefundNo, o.Refunds)
		}
		seen[r.OutRefundNo] = true
		sum += r.Amount
		if r.Status == wxpay.RefundStatusSuccess {
			success += r.Amount
		}
	}
	wc.mu.Lock()
	var atWeChat int64
	for no, amt := range wc.refunds {
		if !seen[no] {
			t.Errorf("WeChat refunded %s, which wxpayd does not know", no)
		}
		atWeChat += amt
	}
	wc.mu.Unlock()
	if sum > o.Total || success != o.RefundedFen || atWeChat != o.RefundedFen {
		t.Fatalf("refunds %d (success %d) of %d; wxpayd booked %d, WeChat refunded %d", sum, success, o.Total, o.RefundedFen, atWeChat)
	}
}

func ptr(o store.Order) *store.Order { return &o }

// TestReconcileRacingANotificationPaysOnce: the reconciliation's repair and
// WeChat's late notification arrive together, many times over; the order
// is paid once and its unit sold once.
func TestReconcileRacingANotificationPaysOnce(t *testing.T) {
	t.Parallel()
	wc := &scriptedWeChat{state: map[string]string{}}
	h := newHarness(t, t.TempDir(), time.Second, wc, nil)
	h.putSKU(t, "rn", 3, 0)
	ctx := context.Background()
	otn := "01KRECRACE01"
	if _, err := h.buy(ctx, "rn", otn, "b", 1); err != nil {
		t.Fatal(err)
	}
	wc.set(otn, wxpay.TradeStateSuccess)
	tx := successTx()
	tx.OutTradeNo = otn
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = h.sys.Request(ctx, &Reconcile{OutTradeNo: otn, Reason: "race"}) }()
		go func(i int) {
			defer wg.Done()
			_, _ = h.sys.Request(ctx, &PaymentNotified{Tx: tx, NotifyID: fmt.Sprintf("EV-%d", i%3)})
		}(i)
	}
	wg.Wait()
	hist, err := h.st.History(otn)
	if err != nil {
		t.Fatal(err)
	}
	paid := 0
	for _, e := range hist {
		if e.Type == "order.paid" {
			paid++
		}
	}
	if paid != 1 {
		t.Fatalf("%d order.paid events", paid)
	}
	eventually(t, "one unit sold", func() bool { v, _ := h.sys.Inventory().Get(ctx, "rn"); return v.Sold == 1 && v.Reserved == 0 })
}
