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

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

// recordingWeChat is scriptedWeChat remembering every prepay request.
type recordingWeChat struct {
	*scriptedWeChat
	mu   sync.Mutex
	reqs []wxpay.PrepayRequest
}

func (w *recordingWeChat) Prepay(ctx context.Context, req *wxpay.PrepayRequest) (wxpay.PrepayResponse, error) {
	w.mu.Lock()
	w.reqs = append(w.reqs, *req)
	w.mu.Unlock()
	return w.scriptedWeChat.Prepay(ctx, req)
}

func (w *recordingWeChat) prepaysOf(otn string) []wxpay.PrepayRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []wxpay.PrepayRequest
	for _, r := range w.reqs {
		if r.OutTradeNo == otn {
			out = append(out, r)
		}
	}
	return out
}

// newCheckoutHarness is newHarness with a WeChat that records prepays.
func newCheckoutHarness(t *testing.T, wc *scriptedWeChat) (*harness, *recordingWeChat) {
	t.Helper()
	if wc == nil {
		wc = &scriptedWeChat{state: map[string]string{}}
	}
	rec := &recordingWeChat{scriptedWeChat: wc}
	return newRecordingHarness(t, t.TempDir(), rec, nil), rec
}

// newRecordingHarness starts a system on the store in dir that calls rec;
// a second one on the same dir is the first restarted (close it first).
func newRecordingHarness(t *testing.T, dir string, rec *recordingWeChat, clk *clock) *harness {
	t.Helper()
	wc := rec.scriptedWeChat
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if clk == nil {
		clk = &clock{}
		clk.ns.Store(t0.UnixNano())
	}
	sys, err := New(Config{AppID: "wx-app", MchID: "1900000001", NotifyURL: "https://shop.example/notify",
		Idle: time.Second, Now: clk.now, Partitions: 4, PrepayQPS: -1}, st, rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{sys: sys, st: st, wc: wc, clk: clk, dir: dir, stop: cancel, done: make(chan error, 1), idle: time.Second}
	go func() { h.done <- sys.Run(ctx) }()
	t.Cleanup(h.close)
	return h
}

func checkoutMsg(otn string) *Checkout {
	return &Checkout{OutTradeNo: otn, ShopOrderID: "shop-" + otn, OpenID: "buyer", Amount: 3000, Description: "两杯茶",
		Attach: `{"cart":42}`, LineItems: []store.LineItem{{SKU: "tea", Name: "绿茶", Quantity: 2, UnitPrice: 1500}}}
}

// noReservations fails if the store holds any stock reservation.
func noReservations(t *testing.T, st *store.Store) {
	t.Helper()
	for _, sku := range []string{"", "tea"} {
		if r, s := stockOnDisk(t, st, sku); r != 0 || s != 0 {
			t.Fatalf("sku %q: %d reserved, %d sold on disk for a checkout order", sku, r, s)
		}
	}
}

// TestCheckoutRacingRequestsMakeOneOrder: a shop's backend retries one
// shop order id hundreds of times at once, with the same fields or others
// (another amount, attach, buyer, expiry or line). Each id ends with one
// order, made by exactly one request, with that request's fields; every
// request with the same fields gets that order, every other one
// StatusIdemReused; WeChat is asked once per order, with the attach and
// the line items; nothing is reserved.
func TestCheckoutRacingRequestsMakeOneOrder(t *testing.T) {
	t.Parallel()
	wc := &scriptedWeChat{state: map[string]string{}, prepayGate: make(chan struct{})}
	h, rec := newCheckoutHarness(t, wc)
	ctx := context.Background()
	variants := func(otn string) []*Checkout {
		base := checkoutMsg(otn)
		other := func(f func(m *Checkout)) *Checkout {
			m := *base
			m.LineItems = append([]store.LineItem(nil), base.LineItems...)
			f(&m)
			return &m
		}
		return []*Checkout{
			base,
			other(func(m *Checkout) { m.Amount = 3001; m.LineItems = nil }),
			other(func(m *Checkout) { m.Attach = "" }),
			other(func(m *Checkout) { m.OpenID = "someone-else" }),
			other(func(m *Checkout) { m.ExpiresIn = 5 * time.Minute }),
			other(func(m *Checkout) { m.LineItems[0].Name = "红茶" }),
		}
	}
	const ids, perID = 6, 300
	type result struct {
		m   *Checkout
		r   Reply
		err error
	}
	results := make([][]result, ids)
	var wg sync.WaitGroup
	var started atomic.Int64
	for k := 0; k < ids; k++ {
		results[k] = make([]result, perID)
		vs := variants(fmt.Sprintf("01SRACE%04d", k))
		for i := 0; i < perID; i++ {
			wg.Add(1)
			go func(k, i int) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(k), uint64(i)))
				m := vs[rng.IntN(len(vs))]
				started.Add(1)
				r, err := h.sys.Request(ctx, m)
				results[k][i] = result{m, r, err}
			}(k, i)
		}
	}
	eventually(t, "requests sent", func() bool { return started.Load() == ids*perID })
	time.Sleep(20 * time.Millisecond)
	close(wc.prepayGate)
	wg.Wait()

	for k := 0; k < ids; k++ {
		otn := fmt.Sprintf("01SRACE%04d", k)
		o := h.order(t, otn)
		created := 0
		for _, res := range results[k] {
			if res.err != nil {
				t.Fatalf("%s: %v", otn, res.err)
			}
			same := checkoutHash(res.m) == o.RequestHash
			switch res.r.Status {
			case StatusCreated:
				created++
				fallthrough
			case StatusOK:
				if !same || res.r.Order.State != store.StatePrepaid || res.r.Order.OutTradeNo != otn {
					t.Fatalf("%s: a request with fields %+v got the order %+v", otn, res.m, res.r.Order)
				}
			case StatusIdemReused:
				if same {
					t.Fatalf("%s: the order's own fields were refused", otn)
				}
			default:
				t.Fatalf("%s: status %d", otn, res.r.Status)
			}
		}
		if created != 1 {
			t.Fatalf("%s: %d requests created the order", otn, created)
		}
		if o.ShopOrderID != "shop-"+otn || o.SKU != "" || o.Quantity != 0 || o.State != store.StatePrepaid {
			t.Fatalf("%s: %+v", otn, o)
		}
		reqs := rec.prepaysOf(otn)
		if len(reqs) != 1 {
			t.Fatalf("%s: %d prepay calls", otn, len(reqs))
		}
		p := reqs[0]
		var lines int
		if p.Detail != nil {
			lines = len(p.Detail.GoodsDetail)
		}
		if p.Attach != o.Attach || p.Amount.Total != o.Total || p.Payer.OpenID != o.OpenID || lines != len(o.LineItems) ||
			p.TimeExpire != rfc3339(o.ExpiresMs) {
			t.Fatalf("%s: prepay %+v for the order %+v", otn, p, o)
		}
	}
	noReservations(t, h.st)
}

// TestCheckoutOrderLivesLikeAnyOther: a checkout order is paid by a
// notification, refunded, and every event carries the shop's order id and
// attach; no stock moves at any step.
func TestCheckoutOrderLivesLikeAnyOther(t *testing.T) {
	t.Parallel()
	h, _ := newCheckoutHarness(t, nil)
	ctx := context.Background()
	m := checkoutMsg("01SLIFE0001")
	r, err := h.sys.Request(ctx, m)
	if err != nil || r.Status != StatusCreated || r.Order.State != store.StatePrepaid || r.Order.PrepayID == "" {
		t.Fatalf("checkout: %+v %v", r, err)
	}
	if got := r.Order.ExpiresMs - r.Order.CreatedMs; got != (15 * time.Minute).Milliseconds() {
		t.Fatalf("without expires_in the order lives %d ms, want the OrderTTL", got)
	}
	tx := successTx()
	tx.OutTradeNo, tx.Amount.Total, tx.Attach = m.OutTradeNo, m.Amount, m.Attach
	if r, err = h.sys.Request(ctx, &PaymentNotified{Tx: tx, NotifyID: "n1"}); err != nil || r.Status != StatusOK {
		t.Fatalf("notification: %+v %v", r, err)
	}
	if r, err = h.sys.Request(ctx, &Get{OutTradeNo: m.OutTradeNo}); err != nil || r.Order.State != store.StatePaid {
		t.Fatalf("after the notification: %+v %v", r, err)
	}
	if r, err = h.sys.Request(ctx, &StartRefund{OutTradeNo: m.OutTradeNo, Amount: 1000, Reason: "少一杯"}); err != nil {
		t.Fatalf("refund: %v", err)
	}
	eventually(t, "refunded", func() bool {
		h.clk.advance(time.Minute) // the refund query's schedule
		h.sys.timers.poke()
		return h.order(t, m.OutTradeNo).State == store.StateRefunded
	})
	hist, err := h.st.History(m.OutTradeNo)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range hist {
		types = append(types, e.Type)
		if e.ShopOrderID != m.ShopOrderID || e.Attach != m.Attach || e.SKU != "" || e.Amount != 3000 {
			t.Fatalf("event %+v does not carry the shop's order", e)
		}
	}
	want := []string{event.OrderCreated, event.OrderPrepaid, event.OrderPaid, event.OrderRefundRequested, event.OrderRefunded}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("history %v, want %v", types, want)
	}
	noReservations(t, h.st)
	if p, err := h.st.ListOrders(store.OrderQuery{OpenID: "buyer", Limit: 5}); err != nil || len(p.Orders) != 1 ||
		p.Orders[0].State != store.StateRefunded {
		t.Fatalf("the buyer's list: %+v %v", p, err)
	}
	if otn, ok, err := h.st.ShopOrder(m.ShopOrderID); err != nil || !ok || otn != m.OutTradeNo {
		t.Fatalf("shop order index: %q %v %v", otn, ok, err)
	}
}

// TestCheckoutExpiresInIsTheOrdersTTL: an unpaid checkout order with
// expires_in is offered to WeChat with that time_expire and closed at it.
func TestCheckoutExpiresInIsTheOrdersTTL(t *testing.T) {
	t.Parallel()
	h, rec := newCheckoutHarness(t, nil)
	m := checkoutMsg("01SEXPIRE01")
	m.ExpiresIn = 2 * time.Minute
	r, err := h.sys.Request(context.Background(), m)
	if err != nil || r.Status != StatusCreated {
		t.Fatalf("checkout: %+v %v", r, err)
	}
	if want := rfc3339(t0.Add(2 * time.Minute).UnixMilli()); rec.prepaysOf(m.OutTradeNo)[0].TimeExpire != want {
		t.Fatalf("time_expire %s, want %s", rec.prepaysOf(m.OutTradeNo)[0].TimeExpire, want)
	}
	h.clk.advance(2*time.Minute + time.Second)
	h.sys.timers.poke()
	eventually(t, "closed at its expiry", func() bool { return h.order(t, m.OutTradeNo).State == store.StateClosed })
	noReservations(t, h.st)
	// Too short an expiry makes no order.
	short := checkoutMsg("01SEXPIRE02")
	short.ExpiresIn = 30 * time.Second
	if r, err := h.sys.Request(context.Background(), short); err != nil || r.Status != StatusBadRequest || r.Exists {
		t.Fatalf("30 s expiry: %+v %v", r, err)
	}
}

// TestCheckoutPrepayOutcomes: a refused prepay fails the order and its
// replay answers the FAILED order; an unknown outcome keeps it CREATED and
// the replay asks WeChat again with the same parameters.
func TestCheckoutPrepayOutcomes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		err   error
		first store.State
		then  store.State
	}{
		{"a signed 400 PARAM_ERROR fails it", &wxpay.APIError{Status: 400, Code: "PARAM_ERROR"}, store.StateFailed, store.StateFailed},
		{"a signed 500 is unknown", &wxpay.APIError{Status: 500, Code: wxpay.CodeSystemError}, store.StateCreated, store.StatePrepaid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wc := &scriptedWeChat{state: map[string]string{}}
			wc.prepayErr = func(_ string, n int64) error {
				if n == 1 {
					return tc.err
				}
				return nil
			}
			h, rec := newCheckoutHarness(t, wc)
			m := checkoutMsg("01SOUTCOME1")
			r, err := h.sys.Request(context.Background(), m)
			if !errors.Is(err, tc.err) || r.Order.State != tc.first {
				t.Fatalf("first: %s %v", r.Order.State, err)
			}
			r, err = h.sys.Request(context.Background(), m)
			if err != nil || r.Status != StatusOK || r.Order.State != tc.then {
				t.Fatalf("replay: %d %s %v", r.Status, r.Order.State, err)
			}
			reqs := rec.prepaysOf(m.OutTradeNo)
			for _, p := range reqs[1:] {
				if p.Attach != reqs[0].Attach || p.TimeExpire != reqs[0].TimeExpire || p.Amount != reqs[0].Amount {
					t.Fatalf("asked again with other parameters: %+v, then %+v", reqs[0], p)
				}
			}
			noReservations(t, h.st)
		})
	}
}

// TestCheckoutHashTellsEveryFieldApart: changing any field of a Checkout
// but its order number changes the fingerprint a replay must match.
func TestCheckoutHashTellsEveryFieldApart(t *testing.T) {
	t.Parallel()
	base := checkoutMsg("01SHASH0001")
	seen := map[string]string{checkoutHash(base): "base"}
	for name, f := range map[string]func(m *Checkout){
		"order number (ignored)": func(m *Checkout) { m.OutTradeNo = "01SHASH0002" },
		"shop order id":          func(m *Checkout) { m.ShopOrderID += "x" },
		"buyer":                  func(m *Checkout) { m.OpenID += "x" },
		"amount":                 func(m *Checkout) { m.Amount++ },
		"description":            func(m *Checkout) { m.Description += "x" },
		"attach":                 func(m *Checkout) { m.Attach += "x" },
		"expiry":                 func(m *Checkout) { m.ExpiresIn = time.Hour },
		"no lines":               func(m *Checkout) { m.LineItems = nil },
		"line sku":               func(m *Checkout) { m.LineItems[0].SKU += "x" },
		"line name":              func(m *Checkout) { m.LineItems[0].Name += "x" },
		"line quantity":          func(m *Checkout) { m.LineItems[0].Quantity++ },
		"line price":             func(m *Checkout) { m.LineItems[0].UnitPrice++ },
		"fields run together":    func(m *Checkout) { m.Description, m.Attach = m.Description+m.Attach[:1], m.Attach[1:] },
	} {
		m := *base
		m.LineItems = append([]store.LineItem(nil), base.LineItems...)
		f(&m)
		h := checkoutHash(&m)
		if name == "order number (ignored)" {
			if h != checkoutHash(base) {
				t.Fatal("the order number changed the fingerprint")
			}
			continue
		}
		if prev, dup := seen[h]; dup {
			t.Fatalf("%s and %s share a fingerprint", name, prev)
		}
		seen[h] = name
	}
}
