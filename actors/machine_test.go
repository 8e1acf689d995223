package actors

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

var t0 = time.UnixMilli(1_700_000_000_000)

func testEnv(now time.Time) Env {
	return Env{Now: now, AppID: "wx-app", MchID: "1900000001", QueryAfter: time.Minute, CloseGrace: time.Minute}
}

func orderIn(st store.State) store.Order {
	o := store.Order{
		OutTradeNo: "S01ABCDEF0001", Seq: 2, State: st, OpenID: "o-buyer", SKU: "sku-1", Quantity: 1,
		Total: 500, Currency: "CNY", CreatedMs: t0.UnixMilli(), ExpiresMs: t0.Add(15 * time.Minute).UnixMilli(),
	}
	if st != store.StateCreated {
		o.PrepayID, o.PrepaidMs = "wx-prepay-1", t0.Add(time.Second).UnixMilli()
	}
	switch st {
	case store.StatePaid, store.StateRefunding, store.StateRefunded:
		o.TransactionID, o.PaidMs = "4200001", t0.Add(time.Minute).UnixMilli()
	}
	if st == store.StateRefunding {
		o.Refunds = []store.Refund{{OutRefundNo: "R1", Amount: 200, Status: wxpay.RefundStatusProcessing, RefundID: "5020", CreatedMs: t0.UnixMilli()}}
	}
	if st == store.StateRefunded {
		o.RefundedFen = 200
		o.Refunds = []store.Refund{{OutRefundNo: "R1", Amount: 200, Status: wxpay.RefundStatusSuccess}}
	}
	return o
}

func successTx() wxpay.Transaction {
	return wxpay.Transaction{
		AppID: "wx-app", MchID: "1900000001", OutTradeNo: "S01ABCDEF0001", TransactionID: "4200001",
		TradeState: wxpay.TradeStateSuccess, Amount: wxpay.TransactionAmount{Total: 500, Currency: "CNY"},
	}
}

// TestTransitions runs the state machine over (state × message) and checks
// the resulting state, the events (types and consecutive seqs), the stock
// effect, the WeChat call and the answer.
func TestTransitions(t *testing.T) {
	t.Parallel()
	env := testEnv(t0.Add(2 * time.Minute))
	late := testEnv(t0.Add(16 * time.Minute))
	tx := successTx()
	mism := func(mod func(*wxpay.Transaction)) *wxpay.Transaction { x := successTx(); mod(&x); return &x }
	apiErr := func(code string) error { return &wxpay.APIError{Status: 400, Code: code} }

	type run func(o store.Order) Outcome
	cases := []struct {
		name   string
		from   store.State
		run    run
		to     store.State
		events []string
		stock  stockEffect
		call   callKind
		status Status
	}{
		{"a successful prepay moves CREATED to PREPAID", store.StateCreated,
			func(o store.Order) Outcome { return prepayDone(o, &PrepayDone{PrepayID: "wx1", Micros: 900}, env) },
			store.StatePrepaid, []string{event.OrderPrepaid}, stockNone, callNone, StatusOK},
		{"a refused prepay fails the order and releases stock", store.StateCreated,
			func(o store.Order) Outcome {
				return prepayDone(o, &PrepayDone{Code: "NO_AUTH", Definitive: true, Err: errors.New("refused")}, env)
			},
			store.StateFailed, []string{event.OrderPrepayFailed}, stockRelease, callNone, StatusOK},
		{"a prepay whose outcome is unknown keeps the order CREATED and its stock", store.StateCreated,
			func(o store.Order) Outcome {
				return prepayDone(o, &PrepayDone{Code: "SYSTEM_ERROR", Err: errors.New("500")}, env)
			},
			store.StateCreated, nil, stockNone, callNone, StatusOK},
		{"a prepay result for a closed order changes nothing", store.StateClosed,
			func(o store.Order) Outcome { return prepayDone(o, &PrepayDone{PrepayID: "wx1"}, env) },
			store.StateClosed, nil, stockNone, callNone, StatusConflict},
		{"a matching notification pays a PREPAID order and commits stock", store.StatePrepaid,
			func(o store.Order) Outcome { return paid(o, &tx, "EV-1", env) },
			store.StatePaid, []string{event.OrderPaid}, stockCommit, callNone, StatusOK},
		{"a notification for a CREATED order pays it", store.StateCreated,
			func(o store.Order) Outcome { return paid(o, &tx, "EV-1", env) },
			store.StatePaid, []string{event.OrderPaid}, stockCommit, callNone, StatusOK},
		{"a duplicate notification is acknowledged and pays nothing twice", store.StatePaid,
			func(o store.Order) Outcome { return paid(o, &tx, "EV-1", env) },
			store.StatePaid, []string{event.NotifyDuplicate}, stockNone, callNone, StatusOK},
		{"a duplicate during a refund keeps REFUNDING", store.StateRefunding,
			func(o store.Order) Outcome { return paid(o, &tx, "EV-1", env) },
			store.StateRefunding, []string{event.NotifyDuplicate}, stockNone, callNone, StatusOK},
		{"a payment for a CLOSED order is recorded as PAID with an alert", store.StateClosed,
			func(o store.Order) Outcome { return paid(o, &tx, "EV-1", env) },
			store.StatePaid, []string{event.OrderPaid}, stockCommit, callNone, StatusOK},
		{"a payment for a FAILED order is recorded as PAID", store.StateFailed,
			func(o store.Order) Outcome { return paid(o, &tx, "EV-1", env) },
			store.StatePaid, []string{event.OrderPaid}, stockCommit, callNone, StatusOK},
		{"an amount mismatch is an alert, never a payment", store.StatePrepaid,
			func(o store.Order) Outcome {
				return paid(o, mism(func(x *wxpay.Transaction) { x.Amount.Total = 1 }), "EV-1", env)
			},
			store.StatePrepaid, []string{event.NotifyMismatch}, stockNone, callNone, StatusMismatch},
		{"an appid mismatch is an alert", store.StatePrepaid,
			func(o store.Order) Outcome {
				return paid(o, mism(func(x *wxpay.Transaction) { x.AppID = "wx-other" }), "EV-1", env)
			},
			store.StatePrepaid, []string{event.NotifyMismatch}, stockNone, callNone, StatusMismatch},
		{"a mchid mismatch is an alert", store.StatePrepaid,
			func(o store.Order) Outcome {
				return paid(o, mism(func(x *wxpay.Transaction) { x.MchID = "1" }), "EV-1", env)
			},
			store.StatePrepaid, []string{event.NotifyMismatch}, stockNone, callNone, StatusMismatch},
		{"an out_trade_no mismatch is an alert", store.StatePrepaid,
			func(o store.Order) Outcome {
				return paid(o, mism(func(x *wxpay.Transaction) { x.OutTradeNo = "S01OTHER" }), "EV-1", env)
			},
			store.StatePrepaid, []string{event.NotifyMismatch}, stockNone, callNone, StatusMismatch},
		{"a second transaction for a paid order is an alert", store.StatePaid,
			func(o store.Order) Outcome {
				return paid(o, mism(func(x *wxpay.Transaction) { x.TransactionID = "42XX" }), "EV-2", env)
			},
			store.StatePaid, []string{event.NotifyMismatch}, stockNone, callNone, StatusMismatch},
		{"a non-SUCCESS trade state moves nothing", store.StatePrepaid,
			func(o store.Order) Outcome {
				return paid(o, mism(func(x *wxpay.Transaction) { x.TradeState = "NOTPAY" }), "EV-1", env)
			},
			store.StatePrepaid, []string{event.NotifyRejected}, stockNone, callNone, StatusIgnored},
		{"the timer queries a PREPAID order a minute after prepay", store.StatePrepaid,
			func(o store.Order) Outcome { return tick(o, env) },
			store.StatePrepaid, nil, stockNone, callQuery, StatusOK},
		{"the timer closes a PREPAID order at its TTL", store.StatePrepaid,
			func(o store.Order) Outcome { return tick(o, late) },
			store.StatePrepaid, nil, stockNone, callClose, StatusOK},
		{"the timer closes a CREATED order whose prepay never finished", store.StateCreated,
			func(o store.Order) Outcome { return tick(o, env) },
			store.StateCreated, nil, stockNone, callClose, StatusOK},
		{"the timer does nothing to a PAID order", store.StatePaid,
			func(o store.Order) Outcome { return tick(o, late) },
			store.StatePaid, nil, stockNone, callNone, StatusOK},
		{"a query answering SUCCESS pays the order", store.StatePrepaid,
			func(o store.Order) Outcome { return queried(o, &QueryDone{Tx: tx}, env) },
			store.StatePaid, []string{event.OrderPaid}, stockCommit, callNone, StatusOK},
		{"a query answering NOTPAY changes nothing", store.StatePrepaid,
			func(o store.Order) Outcome {
				return queried(o, &QueryDone{Tx: *mism(func(x *wxpay.Transaction) { x.TradeState = "NOTPAY" })}, env)
			},
			store.StatePrepaid, nil, stockNone, callNone, StatusOK},
		{"a query answering CLOSED closes the order and releases stock", store.StatePrepaid,
			func(o store.Order) Outcome {
				return queried(o, &QueryDone{Tx: *mism(func(x *wxpay.Transaction) { x.TradeState = "CLOSED" })}, env)
			},
			store.StateClosed, []string{event.OrderClosed}, stockRelease, callNone, StatusOK},
		{"a query failing in transport changes nothing", store.StatePrepaid,
			func(o store.Order) Outcome { return queried(o, &QueryDone{Err: errors.New("timeout")}, env) },
			store.StatePrepaid, nil, stockNone, callNone, StatusOK},
		{"a successful close closes the order and releases stock", store.StatePrepaid,
			func(o store.Order) Outcome { return closeDone(o, &CloseDone{}, late) },
			store.StateClosed, []string{event.OrderClosed}, stockRelease, callNone, StatusOK},
		{"closing an order WeChat reports paid queries it instead", store.StatePrepaid,
			func(o store.Order) Outcome { return closeDone(o, &CloseDone{Err: apiErr(wxpay.CodeOrderPaid)}, late) },
			store.StatePrepaid, nil, stockNone, callQuery, StatusOK},
		{"closing an order WeChat does not know closes it", store.StateCreated,
			func(o store.Order) Outcome {
				return closeDone(o, &CloseDone{Err: apiErr(wxpay.CodeOrderNotExist)}, late)
			},
			store.StateClosed, []string{event.OrderClosed}, stockRelease, callNone, StatusOK},
		{"a close result after payment changes nothing", store.StatePaid,
			func(o store.Order) Outcome { return closeDone(o, &CloseDone{}, late) },
			store.StatePaid, nil, stockNone, callNone, StatusOK},
		{"a refund of a paid order moves it to REFUNDING and calls WeChat", store.StatePaid,
			func(o store.Order) Outcome { return refundStart(o, &StartRefund{OutRefundNo: "R2", Amount: 300}, env) },
			store.StateRefunding, []string{event.OrderRefundRequested}, stockNone, callRefund, StatusOK},
		{"a refund above the amount left is refused", store.StateRefunded,
			func(o store.Order) Outcome { return refundStart(o, &StartRefund{OutRefundNo: "R2", Amount: 301}, env) },
			store.StateRefunded, nil, stockNone, callNone, StatusBadRequest},
		{"a refund of an unpaid order is refused", store.StatePrepaid,
			func(o store.Order) Outcome { return refundStart(o, &StartRefund{OutRefundNo: "R2", Amount: 1}, env) },
			store.StatePrepaid, nil, stockNone, callNone, StatusConflict},
		{"a refund success notification completes the refund", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundResult(o, refundOutcome{outRefundNo: "R1", status: "SUCCESS", refundID: "5020", notifyID: "EV-R1"}, env)
			},
			store.StateRefunded, []string{event.OrderRefunded}, stockNone, callNone, StatusOK},
		{"a repeated refund notification is a duplicate", store.StateRefunded,
			func(o store.Order) Outcome {
				return refundResult(o, refundOutcome{outRefundNo: "R1", status: "SUCCESS", refundID: "5020", notifyID: "EV-R1"}, env)
			},
			store.StateRefunded, []string{event.NotifyDuplicate}, stockNone, callNone, StatusOK},
		{"a closed refund returns the order to PAID", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundResult(o, refundOutcome{outRefundNo: "R1", status: "CLOSED", notifyID: "EV-R1"}, env)
			},
			store.StatePaid, []string{event.OrderRefundFailed}, stockNone, callNone, StatusOK},
		{"a refund create refused by WeChat returns the order to PAID", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundResult(o, refundOutcome{outRefundNo: "R1", err: apiErr("NOT_ENOUGH")}, env)
			},
			store.StatePaid, []string{event.OrderRefundFailed}, stockNone, callNone, StatusOK},
		{"a refund notification for another mchid is a mismatch", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundNotified(o, &wxpay.RefundNotice{MchID: "1111111111", OutRefundNo: "R1", RefundStatus: "SUCCESS"}, "EV-R1", env)
			},
			store.StateRefunding, []string{event.NotifyMismatch}, stockNone, callNone, StatusMismatch},
		{"an APIv2 refund notification for another appid is a mismatch", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundNotified(o, &wxpay.RefundNotice{AppID: "wx0000000000000000", MchID: env.MchID, OutRefundNo: "R1", RefundStatus: "SUCCESS"}, "v2r:1", env)
			},
			store.StateRefunding, []string{event.NotifyMismatch}, stockNone, callNone, StatusMismatch},
		{"this merchant's refund notification applies", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundNotified(o, &wxpay.RefundNotice{AppID: env.AppID, MchID: env.MchID, OutRefundNo: "R1", RefundID: "50R1", RefundStatus: "SUCCESS"}, "v2r:1", env)
			},
			store.StateRefunded, []string{event.OrderRefunded}, stockNone, callNone, StatusOK},
		{"a notification for an unknown refund is a mismatch", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundResult(o, refundOutcome{outRefundNo: "R9", status: "SUCCESS", notifyID: "EV-R9"}, env)
			},
			store.StateRefunding, []string{event.NotifyMismatch}, stockNone, callNone, StatusMismatch},
		{"the timer queries a refund in flight", store.StateRefunding,
			func(o store.Order) Outcome { return tick(o, env) },
			store.StateRefunding, nil, stockNone, callRefundQuery, StatusOK},
		{"the timer sends again a refund WeChat never confirmed", store.StateRefunding,
			func(o store.Order) Outcome { o.Refunds[0].RefundID = ""; return tick(o, env) },
			store.StateRefunding, nil, stockNone, callRefund, StatusOK},
		{"the timer waits for the persisted schedule", store.StatePrepaid,
			func(o store.Order) Outcome { o.NextTickMs = env.Now.Add(time.Second).UnixMilli(); return tick(o, env) },
			store.StatePrepaid, nil, stockNone, callNone, StatusOK},
		{"a refund create answered 500 stays pending", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundResult(o, refundOutcome{outRefundNo: "R1", err: &wxpay.APIError{Status: 500, Code: wxpay.CodeSystemError}}, env)
			},
			store.StateRefunding, nil, stockNone, callNone, StatusOK},
		{"a refund create answered 429 stays pending", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundResult(o, refundOutcome{outRefundNo: "R1", err: &wxpay.APIError{Status: 429, Code: wxpay.CodeFrequencyLimited}}, env)
			},
			store.StateRefunding, nil, stockNone, callNone, StatusOK},
		{"a refund create that timed out stays pending", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundResult(o, refundOutcome{outRefundNo: "R1", err: fmt.Errorf("refund: %w", client.ErrTimeout)}, env)
			},
			store.StateRefunding, nil, stockNone, callNone, StatusOK},
		{"a refund answered by an unsigned 4xx stays pending", store.StateRefunding,
			func(o store.Order) Outcome {
				err := fmt.Errorf("%w: %w", client.ErrUnsignedResponse, apiErr("NOT_ENOUGH"))
				return refundResult(o, refundOutcome{outRefundNo: "R1", err: err}, env)
			},
			store.StateRefunding, nil, stockNone, callNone, StatusOK},
		{"a refund query WeChat does not know yet stays pending", store.StateRefunding,
			func(o store.Order) Outcome {
				err := &wxpay.APIError{Status: 404, Code: wxpay.CodeResourceNotExists}
				return refundResult(o, refundOutcome{outRefundNo: "R1", err: err, query: true}, env)
			},
			store.StateRefunding, nil, stockNone, callNone, StatusOK},
		{"a refund query refused for good raises an alert once", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundResult(o, refundOutcome{outRefundNo: "R1", err: apiErr(wxpay.CodeNoAuth), query: true}, env)
			},
			store.StateRefunding, []string{event.OrderAlert}, stockNone, callNone, StatusOK},
		{"an ABNORMAL refund is recorded with an alert", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundResult(o, refundOutcome{outRefundNo: "R1", status: wxpay.RefundStatusAbnormal}, env)
			},
			store.StateRefunding, []string{event.OrderRefundAbnormal}, stockNone, callNone, StatusOK},
		{"an ABNORMAL refund queried again writes nothing", store.StateRefunding,
			func(o store.Order) Outcome {
				o.Refunds[0].Status = wxpay.RefundStatusAbnormal
				return refundResult(o, refundOutcome{outRefundNo: "R1", status: wxpay.RefundStatusAbnormal}, env)
			},
			store.StateRefunding, nil, stockNone, callNone, StatusOK},
		{"a create's late PROCESSING answer does not undo an ABNORMAL notification", store.StateRefunding,
			func(o store.Order) Outcome {
				o.Refunds[0].Status, o.Refunds[0].RefundID = wxpay.RefundStatusAbnormal, ""
				out := refundResult(o, refundOutcome{outRefundNo: "R1", status: wxpay.RefundStatusProcessing, refundID: "5020"}, env)
				if out.Order.Refunds[0].Status != wxpay.RefundStatusAbnormal || out.Order.Refunds[0].RefundID != "5020" {
					out.Order.State = store.StatePaid // fail the row: the late answer won
				}
				return out
			},
			store.StateRefunding, nil, stockNone, callNone, StatusOK},
		{"an ABNORMAL refund that WeChat then pays completes", store.StateRefunding,
			func(o store.Order) Outcome {
				o.Refunds[0].Status = wxpay.RefundStatusAbnormal
				return refundResult(o, refundOutcome{outRefundNo: "R1", status: wxpay.RefundStatusSuccess}, env)
			},
			store.StateRefunded, []string{event.OrderRefunded}, stockNone, callNone, StatusOK},
		{"a refund notification with another amount is a mismatch", store.StateRefunding,
			func(o store.Order) Outcome {
				return refundResult(o, refundOutcome{outRefundNo: "R1", status: "SUCCESS", notifyID: "EV-R1", amount: 199}, env)
			},
			store.StateRefunding, []string{event.NotifyMismatch}, stockNone, callNone, StatusMismatch},
		{"a refund of the largest int64 is refused without overflow", store.StateRefunded,
			func(o store.Order) Outcome {
				return refundStart(o, &StartRefund{OutRefundNo: "R2", Amount: math.MaxInt64}, env)
			},
			store.StateRefunded, nil, stockNone, callNone, StatusBadRequest},
		{"a repeated refund request answers the refund made", store.StateRefunded,
			func(o store.Order) Outcome { return refundStart(o, &StartRefund{OutRefundNo: "R1", Amount: 200}, env) },
			store.StateRefunded, nil, stockNone, callNone, StatusOK},
		{"a refund number reused with another amount is refused", store.StateRefunded,
			func(o store.Order) Outcome { return refundStart(o, &StartRefund{OutRefundNo: "R1", Amount: 100}, env) },
			store.StateRefunded, nil, stockNone, callNone, StatusIdemReused},
		{"a refund without a number gets the order's next", store.StatePaid,
			func(o store.Order) Outcome { return refundStart(o, &StartRefund{Amount: 100}, env) },
			store.StateRefunding, []string{event.OrderRefundRequested}, stockNone, callRefund, StatusOK},
		{"a close answered 500 waits for the next attempt", store.StatePrepaid,
			func(o store.Order) Outcome {
				return closeDone(o, &CloseDone{Err: &wxpay.APIError{Status: 500, Code: wxpay.CodeSystemError}}, late)
			},
			store.StatePrepaid, nil, stockNone, callNone, StatusOK},
		{"a close refused for good raises an alert", store.StatePrepaid,
			func(o store.Order) Outcome { return closeDone(o, &CloseDone{Err: apiErr(wxpay.CodeNoAuth)}, late) },
			store.StatePrepaid, []string{event.OrderAlert}, stockNone, callNone, StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := orderIn(tc.from)
			out := tc.run(in)
			if out.Order.State != tc.to {
				t.Errorf("state %s, want %s", out.Order.State, tc.to)
			}
			if len(out.Events) != len(tc.events) {
				t.Fatalf("events %v, want %v", out.Events, tc.events)
			}
			for i, e := range out.Events {
				if e.Type != tc.events[i] {
					t.Errorf("event %d is %s, want %s", i, e.Type, tc.events[i])
				}
				if e.Seq != in.Seq+uint64(i)+1 || e.EventID != event.ID(in.OutTradeNo, e.Seq) {
					t.Errorf("event %d seq %d id %s: each transition must take the next seq", i, e.Seq, e.EventID)
				}
			}
			if out.Write != (len(tc.events) > 0) && !(out.Write && len(tc.events) == 0) {
				t.Errorf("write %v with %d events", out.Write, len(out.Events))
			}
			if out.Stock != tc.stock || out.Call != tc.call || out.Status != tc.status {
				t.Errorf("stock %d call %d status %d, want %d %d %d", out.Stock, out.Call, out.Status, tc.stock, tc.call, tc.status)
			}
			if tc.to == store.StatePaid && tc.from != store.StatePaid && out.Order.TransactionID != tx.TransactionID {
				t.Errorf("paid without transaction id")
			}
		})
	}
}

func TestCreatePricesFromTheCatalogue(t *testing.T) {
	t.Parallel()
	env := testEnv(t0)
	m := &Prepay{OutTradeNo: "S01ABCDEF0001", OpenID: "o", SKU: "sku-1", Quantity: 2}
	first := create(m, &store.SKU{SKU: "sku-1", Price: 500, Description: "d"}, 15*time.Minute, env)
	if first.Status != StatusCreated || first.Order.State != store.StateCreated || len(first.Events) != 1 ||
		first.Order.ExpiresMs != t0.Add(15*time.Minute).UnixMilli() || first.Order.Total != 1000 {
		t.Fatalf("create %+v", first)
	}
	if !sameRequest(&first.Order, m) {
		t.Fatal("the request that created the order is not the same request")
	}
	for _, other := range []*Prepay{
		{OutTradeNo: m.OutTradeNo, OpenID: "o", SKU: "sku-1", Quantity: 99},
		{OutTradeNo: m.OutTradeNo, OpenID: "o", SKU: "sku-2", Quantity: 2},
	} {
		if sameRequest(&first.Order, other) {
			t.Errorf("%+v counted as the same request", other)
		}
	}
}

func TestPaidAfterCloseCarriesAnAlert(t *testing.T) {
	t.Parallel()
	tx := successTx()
	out := paid(orderIn(store.StateClosed), &tx, "EV-1", testEnv(t0.Add(20*time.Minute)))
	if out.Events[0].Alert == "" || len(out.Order.Alerts) != 1 {
		t.Fatalf("no alert: %+v", out.Events[0])
	}
	if out.Events[0].PayMillis <= 0 {
		t.Fatalf("prepay-to-paid latency missing")
	}
}

func TestBackoffDoublesToACapWithJitter(t *testing.T) {
	t.Parallel()
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	spread := map[time.Duration]bool{}
	for i, w := range want {
		for _, otn := range []string{"S01A", "S01B", "S01C"} {
			got := backoff(i+1, time.Minute, otn)
			if got > w || got < w-w/5 {
				t.Errorf("attempt %d of %s: %s, want %s less at most a fifth", i+1, otn, got, w)
			}
			spread[got] = true
		}
	}
	if len(spread) < len(want)*2 {
		t.Errorf("no jitter: %d distinct spacings", len(spread))
	}
}

// TestScheduleIsPersistedAndBounded runs the timer of a PREPAID order
// whose WeChat never answers, as the actor would: every attempt writes
// the schedule first, the next tick before the due time does nothing, and
// the calls over two hours stay within the backoff (no storm), closes
// included.
func TestScheduleIsPersistedAndBounded(t *testing.T) {
	t.Parallel()
	o := orderIn(store.StatePrepaid)
	calls := map[callKind]int{}
	last := map[callKind]int64{}
	for now := t0; now.Before(t0.Add(2 * time.Hour)); now = now.Add(time.Second) {
		env := testEnv(now)
		out := tick(o, env)
		if out.Call == callNone {
			continue
		}
		if !out.Write || out.Order.NextTickMs <= now.UnixMilli() || out.Order.Queries < 1 {
			t.Fatalf("attempt at %s without a persisted schedule: %+v", now.Sub(t0), out.Order)
		}
		if l := last[out.Call]; l != 0 && now.UnixMilli()-l < (48*time.Second).Milliseconds() {
			t.Fatalf("two calls of a kind %d ms apart", now.UnixMilli()-l)
		}
		last[out.Call] = now.UnixMilli()
		calls[out.Call]++
		o = out.Order
		// WeChat answers 500 to every close: nothing changes.
		if out.Call == callClose {
			o = closeDone(o, &CloseDone{Err: &wxpay.APIError{Status: 500, Code: wxpay.CodeSystemError}}, env).Order
		}
	}
	// Queries from 1 min to the TTL at 15 min, spaced 1, 2, 4, 8 min less
	// jitter: 4 or 5; then closes every 1, 2, 4, 8, 10, 10 ... min up to
	// 2 h: about 15.
	if calls[callQuery] < 4 || calls[callQuery] > 5 || calls[callClose] < 10 || calls[callClose] > 20 {
		t.Fatalf("calls in 2 h: %v", calls)
	}
}
