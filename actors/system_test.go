package actors

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/sink/itest"
	"github.com/wxpayd/wxpayd/wxpay"
)

// scriptedWeChat answers WeChat calls as a test script says. It stands in
// for WeChat only in these unit tests; the end-to-end tests in ingress run
// against wxpaysim.
type scriptedWeChat struct {
	mu      sync.Mutex
	state   map[string]string // out_trade_no → trade state WeChat reports
	queries atomic.Int64
	closes  atomic.Int64
	prepays atomic.Int64
	// prepayErr, when set, answers each prepay instead of a prepay_id.
	prepayErr func(otn string, n int64) error
	// prepayGate, when set, holds every prepay until it is closed.
	prepayGate chan struct{}
	// closeErr, when set, answers every close.
	closeErr error
	// refundErr, when set, answers the nth refund create after it took
	// effect (the answer lost) when it returns an error.
	refundErr func(n int64) error
	refundsN  atomic.Int64
	refunds   map[string]int64 // out_refund_no → amount, as WeChat booked it
	// refundStatus, when set, is what refund queries answer (else SUCCESS).
	refundStatus string
	applied      atomic.Int64
}

func (w *scriptedWeChat) Prepay(_ context.Context, req *wxpay.PrepayRequest) (wxpay.PrepayResponse, error) {
	n := w.prepays.Add(1)
	if w.prepayGate != nil {
		<-w.prepayGate
	}
	if w.prepayErr != nil {
		if err := w.prepayErr(req.OutTradeNo, n); err != nil {
			return wxpay.PrepayResponse{}, err
		}
	}
	return wxpay.PrepayResponse{PrepayID: "wx-" + req.OutTradeNo}, nil
}

func (w *scriptedWeChat) set(otn, st string) { w.mu.Lock(); w.state[otn] = st; w.mu.Unlock() }

func (w *scriptedWeChat) QueryByOutTradeNo(_ context.Context, otn string) (wxpay.Transaction, error) {
	w.queries.Add(1)
	w.mu.Lock()
	st := w.state[otn]
	w.mu.Unlock()
	tx := successTx()
	tx.OutTradeNo = otn
	tx.TradeState = st
	if st == "" {
		tx.TradeState = wxpay.TradeStateNotPay
	}
	return tx, nil
}

func (w *scriptedWeChat) CloseOrder(_ context.Context, otn string) error {
	w.closes.Add(1)
	if w.closeErr != nil {
		return w.closeErr
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state[otn] == wxpay.TradeStateSuccess {
		return &wxpay.APIError{Status: 400, Code: wxpay.CodeOrderPaid}
	}
	w.state[otn] = wxpay.TradeStateClosed
	return nil
}

func (w *scriptedWeChat) CreateRefund(_ context.Context, r *wxpay.RefundRequest) (wxpay.Refund, error) {
	n := w.refundsN.Add(1)
	w.mu.Lock()
	if w.refunds == nil {
		w.refunds = map[string]int64{}
	}
	w.refunds[r.OutRefundNo] = r.Amount.Refund // WeChat refunds once per number
	w.mu.Unlock()
	if w.refundErr != nil {
		if err := w.refundErr(n); err != nil {
			return wxpay.Refund{}, err
		}
	}
	return wxpay.Refund{OutRefundNo: r.OutRefundNo, Status: wxpay.RefundStatusProcessing, RefundID: "5020"}, nil
}

func (w *scriptedWeChat) ApplyAbnormalRefund(_ context.Context, id string, r *wxpay.AbnormalRefundRequest) (wxpay.Refund, error) {
	w.applied.Add(1)
	w.mu.Lock()
	w.refundStatus = ""
	w.mu.Unlock()
	return wxpay.Refund{OutRefundNo: r.OutRefundNo, Status: wxpay.RefundStatusProcessing, RefundID: id}, nil
}

func (w *scriptedWeChat) QueryRefund(_ context.Context, no string) (wxpay.Refund, error) {
	w.mu.Lock()
	st := cmp.Or(w.refundStatus, wxpay.RefundStatusSuccess)
	w.mu.Unlock()
	return wxpay.Refund{OutRefundNo: no, Status: st, RefundID: "5020"}, nil
}

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

type harness struct {
	sys  *System
	st   *store.Store
	wc   *scriptedWeChat
	clk  *clock
	dir  string
	stop context.CancelFunc
	done chan error
	idle time.Duration
}

func newHarness(t *testing.T, dir string, idle time.Duration, wc *scriptedWeChat, clk *clock) *harness {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if wc == nil {
		wc = &scriptedWeChat{state: map[string]string{}}
	}
	if clk == nil {
		clk = &clock{}
		clk.ns.Store(t0.UnixNano())
	}
	sys, err := New(Config{AppID: "wx-app", MchID: "1900000001", NotifyURL: "https://shop.example/notify", Idle: idle,
		Now: clk.now, Partitions: 4, PrepayQPS: -1}, st, wc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{sys: sys, st: st, wc: wc, clk: clk, dir: dir, stop: cancel, done: make(chan error, 1), idle: idle}
	go func() { h.done <- sys.Run(ctx) }()
	t.Cleanup(h.close)
	return h
}

func (h *harness) close() {
	if h.stop == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = h.sys.Close(ctx)
	h.stop()
	<-h.done
	_ = h.st.Close()
	h.stop = nil
}

// eventually is the module's one poll (itest.Eventually): 10 s, every 5 ms.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	itest.Eventually(t, 10*time.Second, 5*time.Millisecond, what, func() (bool, string) { return cond(), "" })
}

func (h *harness) putSKU(t *testing.T, sku string, stock, limit int64) {
	t.Helper()
	if _, err := h.sys.Inventory().Put(context.Background(), store.SKU{SKU: sku, Description: "flash", Price: 500, Stock: stock, PerBuyerLimit: limit}); err != nil {
		t.Fatal(err)
	}
}

// buy sends the Prepay the ingress sends for a request without a key.
func (h *harness) buy(ctx context.Context, sku, otn, openid string, qty int64) (ReserveStatus, error) {
	r, err := h.sys.Request(ctx, &Prepay{OutTradeNo: otn, OpenID: openid, SKU: sku, Quantity: qty, Fast: true})
	if err != nil {
		return 0, err
	}
	switch r.Status {
	case StatusCreated, StatusOK:
		return Reserved, nil
	case StatusSoldOut:
		return SoldOut, nil
	case StatusLimitExceeded:
		return LimitExceeded, nil
	case StatusUnknownSKU:
		return UnknownSKU, nil
	}
	return 0, fmt.Errorf("prepay %s: status %d", otn, r.Status)
}

func (h *harness) order(t *testing.T, otn string) store.Order {
	t.Helper()
	r, err := h.sys.Request(context.Background(), &Get{OutTradeNo: otn})
	if err != nil {
		t.Fatal(err)
	}
	return r.Order
}

func TestTenThousandBuyersRaceForOneHundredUnits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, t.TempDir(), time.Second, nil, nil)
	h.putSKU(t, "flash", 100, 1)
	const buyers = 10000
	var won, soldOut atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for i := 0; i < buyers; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			st, err := h.buy(context.Background(), "flash", fmt.Sprintf("S01RACE%06d", i), fmt.Sprintf("buyer-%d", i), 1)
			if err != nil {
				t.Error(err)
				return
			}
			switch st {
			case Reserved:
				won.Add(1)
			case SoldOut:
				soldOut.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if won.Load() != 100 || soldOut.Load() != buyers-100 {
		t.Fatalf("won %d, sold out %d", won.Load(), soldOut.Load())
	}
	v, err := h.sys.Inventory().Get(context.Background(), "flash")
	if err != nil || v.Left != 0 || v.Reserved != 100 {
		t.Fatalf("view %+v %v", v, err)
	}
	n := 0
	_ = h.st.Reservations("flash", func(string, store.Reservation) error { n++; return nil })
	if n != 100 {
		t.Fatalf("%d durable reservations, want 100", n)
	}
}

func TestPerBuyerLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, t.TempDir(), time.Second, nil, nil)
	h.putSKU(t, "ltd", 10, 2)
	ctx := context.Background()
	if st, _ := h.buy(ctx, "ltd", "S01LIMIT0001", "same-buyer", 2); st != Reserved {
		t.Fatalf("first: %d", st)
	}
	if st, _ := h.buy(ctx, "ltd", "S01LIMIT0002", "same-buyer", 1); st != LimitExceeded {
		t.Fatalf("second: %d", st)
	}
	if st, _ := h.buy(ctx, "nope", "S01LIMIT0003", "same-buyer", 1); st != UnknownSKU {
		t.Fatalf("unknown sku: %d", st)
	}
}

func TestPassivationLosesNoMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, t.TempDir(), 2*time.Millisecond, nil, nil)
	h.putSKU(t, "p", 1000, 0)
	ctx := context.Background()
	const orders = 50
	for i := 0; i < orders; i++ {
		if _, err := h.buy(ctx, "p", fmt.Sprintf("S01PASV%05d", i), "b", 1); err != nil {
			t.Fatal(err)
		}
	}
	// Hammer the orders with gaps around the idle time, so actors stop and
	// restart while messages arrive; every request must be answered.
	var wg sync.WaitGroup
	var answered atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				otn := fmt.Sprintf("S01PASV%05d", (g*31+i)%orders)
				r, err := h.sys.Request(ctx, &Get{OutTradeNo: otn})
				if err != nil || r.Order.OutTradeNo != otn {
					t.Errorf("request %s: %v %+v", otn, err, r.Order.OutTradeNo)
					return
				}
				answered.Add(1)
				if i%7 == 0 {
					time.Sleep(3 * time.Millisecond)
				}
			}
		}(g)
	}
	wg.Wait()
	if answered.Load() != 1600 {
		t.Fatalf("answered %d", answered.Load())
	}
	if h.sys.Metrics().Passivated.Load() == 0 {
		t.Fatal("no actor passivated: the test did not exercise passivation")
	}
	eventually(t, "all order actors passivated", func() bool { return h.sys.Metrics().LiveOrders.Load() == 0 })
}

func TestTimersQueryThenCloseAtTTL(t *testing.T) {
	t.Parallel()
	h := newHarness(t, t.TempDir(), time.Second, nil, nil)
	h.putSKU(t, "t", 2, 0)
	ctx := context.Background()
	for _, otn := range []string{"S01TIMERPAID1", "S01TIMERLATE1"} {
		if _, err := h.buy(ctx, "t", otn, "b", 1); err != nil {
			t.Fatal(err)
		}
	}
	// One buyer paid but the notification never came: the query finds it.
	h.wc.set("S01TIMERPAID1", wxpay.TradeStateSuccess)
	h.clk.advance(61 * time.Second)
	h.sys.timers.poke()
	eventually(t, "query pays the order", func() bool { return h.order(t, "S01TIMERPAID1").State == store.StatePaid })
	if h.order(t, "S01TIMERLATE1").State != store.StatePrepaid {
		t.Fatal("unpaid order changed before its TTL")
	}
	// Past the TTL the unpaid one is closed at WeChat and its stock returns.
	h.clk.advance(15 * time.Minute)
	h.sys.timers.poke()
	eventually(t, "close at TTL", func() bool { return h.order(t, "S01TIMERLATE1").State == store.StateClosed })
	eventually(t, "stock released", func() bool {
		v, _ := h.sys.Inventory().Get(ctx, "t")
		return v.Left == 1 && v.Sold == 1 && v.Reserved == 0
	})
	if h.wc.closes.Load() != 1 {
		t.Fatalf("closes %d", h.wc.closes.Load())
	}
}

func TestStateSurvivesRestartAndTimersResume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := &clock{}
	clk.ns.Store(t0.UnixNano())
	wc := &scriptedWeChat{state: map[string]string{}}
	h := newHarness(t, dir, time.Second, wc, clk)
	h.putSKU(t, "r", 5, 0)
	ctx := context.Background()
	for _, otn := range []string{"S01RESTART01", "S01RESTART02"} {
		if _, err := h.buy(ctx, "r", otn, "b", 1); err != nil {
			t.Fatal(err)
		}
	}
	tx := successTx()
	tx.OutTradeNo = "S01RESTART01"
	if r, err := h.sys.Request(ctx, &PaymentNotified{Tx: tx, NotifyID: "EV-1"}); err != nil || r.Status != StatusOK || r.Order.OutTradeNo != "" {
		t.Fatalf("pay: %v %+v (a notification's reply is its outcome, without the order)", err, r)
	}
	if r, err := h.sys.Request(ctx, &Get{OutTradeNo: tx.OutTradeNo}); err != nil || r.Order.State != store.StatePaid {
		t.Fatalf("paid order: %v %+v", err, r)
	}
	h.close()

	// A new process: the paid order is still paid, the duplicate notice is
	// recognised, stock counts are rebuilt and the PREPAID order's timer
	// runs again.
	wc.set("S01RESTART02", wxpay.TradeStateSuccess)
	h2 := newHarness(t, dir, time.Second, wc, clk)
	if n, err := h2.sys.Recover(); err != nil || n != 1 {
		t.Fatalf("recovered %d active orders, %v", n, err)
	}
	if _, err := h2.sys.Request(ctx, &PaymentNotified{Tx: tx, NotifyID: "EV-1"}); err != nil {
		t.Fatalf("duplicate after restart: %v", err)
	}
	if r, err := h2.sys.Request(ctx, &Get{OutTradeNo: tx.OutTradeNo}); err != nil || r.Order.Seq != 4 {
		t.Fatalf("duplicate after restart: %v seq %d", err, r.Order.Seq)
	}
	v, err := h2.sys.Inventory().Get(ctx, "r")
	if err != nil || v.Sold != 1 || v.Reserved != 1 || v.Left != 3 {
		t.Fatalf("rebuilt counts %+v %v", v, err)
	}
	clk.advance(2 * time.Minute)
	h2.sys.timers.poke()
	eventually(t, "resumed timer pays the second order", func() bool { return h2.order(t, "S01RESTART02").State == store.StatePaid })
	hist, err := h2.st.History("S01RESTART01")
	if err != nil || len(hist) != 4 {
		t.Fatalf("history %d %v", len(hist), err)
	}
	for i, e := range hist {
		if e.Seq != uint64(i+1) {
			t.Fatalf("history seq %d at %d", e.Seq, i)
		}
	}
}

func TestRefundCompletesByQuery(t *testing.T) {
	t.Parallel()
	h := newHarness(t, t.TempDir(), time.Second, nil, nil)
	h.putSKU(t, "f", 1, 0)
	ctx := context.Background()
	otn := "S01REFUND001"
	if _, err := h.buy(ctx, "f", otn, "b", 1); err != nil {
		t.Fatal(err)
	}
	tx := successTx()
	tx.OutTradeNo = otn
	_, _ = h.sys.Request(ctx, &PaymentNotified{Tx: tx, NotifyID: "EV-1"})
	r, err := h.sys.Request(ctx, &StartRefund{OutTradeNo: otn, OutRefundNo: "RF1", Amount: 500, Reason: "test"})
	if err != nil || r.Order.State != store.StateRefunding || r.Order.Refunds[0].RefundID != "5020" {
		t.Fatalf("start refund: %v %+v", err, r.Order)
	}
	h.clk.advance(2 * time.Minute)
	h.sys.timers.poke()
	eventually(t, "refund query completes", func() bool {
		o := h.order(t, otn)
		return o.State == store.StateRefunded && o.RefundedFen == 500
	})
}
