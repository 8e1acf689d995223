package reconcile

import (
	"reflect"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

func TestMatchOrder(t *testing.T) {
	t.Parallel()
	d, err := newDay("2024-03-05")
	if err != nil {
		t.Fatal(err)
	}
	in := d.startMs + 3600_000                      // 01:00 that day
	before := d.startMs - 60_000                    // 23:59 the day before
	at := time.UnixMilli(in).In(wxpay.BillLocation) // the bill's trade time
	pay := func(total int64, txn string) wxpay.TradeBillRow {
		return wxpay.TradeBillRow{TradeTime: at, OutTradeNo: "01A", TransactionID: txn, TradeState: wxpay.TradeStateSuccess,
			Total: total, SettlementTotal: total, FeeMilliFen: total * 6}
	}
	refund := func(orn string, amount int64, status string) wxpay.TradeBillRow {
		return wxpay.TradeBillRow{TradeTime: at, OutTradeNo: "01A", TransactionID: "T1", TradeState: wxpay.TradeStateRefund,
			OutRefundNo: orn, Refund: amount, RefundStatus: status}
	}
	order := func(state store.State, paidMs int64, refunds ...store.Refund) *store.Order {
		return &store.Order{OutTradeNo: "01A", State: state, Total: 1999, TransactionID: "T1", PaidMs: paidMs, Refunds: refunds}
	}
	ref := func(orn string, amount int64, status string, created int64) store.Refund {
		return store.Refund{OutRefundNo: orn, Amount: amount, Status: status, CreatedMs: created}
	}
	type want struct {
		classes []string
		confirm []bool
		ours    Side
		ok      bool
	}
	cases := []struct {
		name  string
		rows  []wxpay.TradeBillRow
		order *store.Order
		want  want
	}{
		{"a payment both sides agree on matches", []wxpay.TradeBillRow{pay(1999, "T1")}, order(store.StatePaid, in),
			want{ours: Side{Payments: 1, PaymentFen: 1999}, ok: true}},
		{"a payment WeChat has and the order lacks is payment_missing_here", []wxpay.TradeBillRow{pay(1999, "T1")},
			&store.Order{OutTradeNo: "01A", State: store.StatePrepaid, Total: 1999},
			want{classes: []string{ClassPaymentMissingHere}, confirm: []bool{false}}},
		{"a closed order WeChat has paid is payment_missing_here", []wxpay.TradeBillRow{pay(1999, "T1")},
			&store.Order{OutTradeNo: "01A", State: store.StateClosed, Total: 1999},
			want{classes: []string{ClassPaymentMissingHere}, confirm: []bool{false}}},
		{"another amount is amount_mismatch", []wxpay.TradeBillRow{pay(2000, "T1")}, order(store.StatePaid, in),
			want{classes: []string{ClassAmountMismatch}, confirm: []bool{false}, ours: Side{Payments: 1, PaymentFen: 1999}}},
		{"another transaction is transaction_mismatch", []wxpay.TradeBillRow{pay(1999, "T2")}, order(store.StatePaid, in),
			want{classes: []string{ClassTransactionMismatch}, confirm: []bool{false}, ours: Side{Payments: 1, PaymentFen: 1999}}},
		{"paid here that day and absent from the bill is a candidate to confirm", nil, order(store.StatePaid, in),
			want{classes: []string{ClassPaymentMissingAtWeChat}, confirm: []bool{true}, ours: Side{Payments: 1, PaymentFen: 1999}}},
		{"paid here the day before and absent from this bill is fine", nil, order(store.StatePaid, before), want{}},
		{"a payment paid here the day before but on this bill matches", []wxpay.TradeBillRow{pay(1999, "T1")},
			order(store.StatePaid, before), want{ok: true}},
		{"an order wxpayd does not have is unknown_order, one per row", []wxpay.TradeBillRow{pay(1999, "T1"), refund("R1", 5, "SUCCESS")}, nil,
			want{classes: []string{ClassUnknownOrder, ClassUnknownOrder}, confirm: []bool{false, false}}},
		{"a refund both sides agree on matches",
			[]wxpay.TradeBillRow{refund("R1", 500, "SUCCESS")},
			order(store.StateRefunded, before, ref("R1", 500, "SUCCESS", in)),
			want{ours: Side{Refunds: 1, RefundFen: 500}, ok: true}},
		{"a refund the order does not know is refund_missing_here",
			[]wxpay.TradeBillRow{refund("R9", 500, "SUCCESS")}, order(store.StatePaid, before),
			want{classes: []string{ClassRefundMissingHere}, confirm: []bool{false}}},
		{"a refund with another amount is refund_amount_mismatch",
			[]wxpay.TradeBillRow{refund("R1", 600, "SUCCESS")},
			order(store.StateRefunded, before, ref("R1", 500, "SUCCESS", in)),
			want{classes: []string{ClassRefundAmountMismatch}, confirm: []bool{false}, ours: Side{Refunds: 1, RefundFen: 500}}},
		{"a refund ended at WeChat and pending here is refund_status_mismatch",
			[]wxpay.TradeBillRow{refund("R1", 500, "SUCCESS")},
			order(store.StateRefunding, before, ref("R1", 500, "PROCESSING", in)),
			want{classes: []string{ClassRefundStatusMismatch}, confirm: []bool{false}, ours: Side{Refunds: 1, RefundFen: 500}}},
		{"a refund closed at WeChat and successful here is refund_status_mismatch",
			[]wxpay.TradeBillRow{refund("R1", 500, "REFUNDCLOSE")},
			order(store.StateRefunded, before, ref("R1", 500, "SUCCESS", in)),
			want{classes: []string{ClassRefundStatusMismatch}, confirm: []bool{false}, ours: Side{Refunds: 1, RefundFen: 500}}},
		{"a refund still processing in the bill and done here agrees",
			[]wxpay.TradeBillRow{refund("R1", 500, "PROCESSING")},
			order(store.StateRefunded, before, ref("R1", 500, "SUCCESS", in)),
			want{ours: Side{Refunds: 1, RefundFen: 500}, ok: true}},
		{"a refund abnormal at WeChat (CHANGE) and here agrees",
			[]wxpay.TradeBillRow{refund("R1", 500, "CHANGE")},
			order(store.StateRefunding, before, ref("R1", 500, "ABNORMAL", in)),
			want{ours: Side{Refunds: 1, RefundFen: 500}, ok: true}},
		{"a refund failed here that WeChat lists is refund_status_mismatch",
			[]wxpay.TradeBillRow{refund("R1", 500, "PROCESSING")},
			order(store.StatePaid, before, ref("R1", 500, "FAILED", in)),
			want{classes: []string{ClassRefundStatusMismatch}, confirm: []bool{false}}},
		{"a refund requested here that day and absent from the bill is a candidate to confirm", nil,
			order(store.StateRefunded, before, ref("R1", 500, "SUCCESS", in)),
			want{classes: []string{ClassRefundMissingAtWeChat}, confirm: []bool{true}, ours: Side{Refunds: 1, RefundFen: 500}}},
		{"a refund WeChat refused, absent from the bill, agrees", nil,
			order(store.StatePaid, before, ref("R1", 500, "FAILED", in)), want{}},
		{"a refund requested another day is not this bill's", nil,
			order(store.StateRefunded, before, ref("R1", 500, "SUCCESS", before)), want{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := matchOrder(d, "01A", c.rows, c.order)
			var classes []string
			var confirm []bool
			for _, x := range m.ds {
				classes = append(classes, x.Class)
				confirm = append(confirm, x.confirm)
				if x.Date != d.date || x.OutTradeNo != "01A" || x.Key != discrepancyKey(x.Class, "01A", x.OutRefundNo) || x.Detail == "" {
					t.Errorf("discrepancy %+v: date, key or detail wrong", x)
				}
			}
			got := want{classes: classes, confirm: confirm, ours: m.ours, ok: m.ok}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestSpilledRowsRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 3, 5, 12, 34, 56, 0, wxpay.BillLocation)
	r := wxpay.TradeBillRow{TradeTime: at, AppID: "wxa", MchID: "1900", TransactionID: "42000", OutTradeNo: "01A",
		OpenID: "oid", TradeType: "JSAPI", TradeState: wxpay.TradeStateRefund, BankType: "OTHERS", Currency: "CNY",
		Coupon: 3, RefundID: "503", OutRefundNo: "R1", Refund: 500, RechargeCouponRefund: 1, RefundType: "ORIGINAL",
		RefundStatus: "SUCCESS", FeeMilliFen: -3000, RatePPM: 6000, RefundRequested: 500}
	var back wxpay.TradeBillRow
	if err := decodeRow("01A", appendRow(nil, &r), &back); err != nil {
		t.Fatal(err)
	}
	if !back.TradeTime.Equal(r.TradeTime) {
		t.Fatalf("time %v, want %v", back.TradeTime, r.TradeTime)
	}
	back.TradeTime = r.TradeTime
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("got %+v\nwant %+v", back, r)
	}
	if err := decodeRow("01A", appendRow(nil, &r)[:20], &back); err == nil {
		t.Fatal("a cut row decoded")
	}
	if got := string(keyOTN(billKey(nil, &r))); got != "01A" {
		t.Fatalf("keyOTN %q", got)
	}
}
