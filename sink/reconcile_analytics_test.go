package sink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink/clickhouse"
	"github.com/wxpayd/wxpayd/sink/itest"
	"github.com/wxpayd/wxpayd/wxpay"
)

// The reconciliation queries of docs/analytics.md run against the real
// ClickHouse on a known day: wxpayd paid 01A and 01B and refunded part of
// 01B; WeChat's bill has those and 01C, an order wxpayd does not have, and
// WeChat knows a refund R9 of 01B booked elsewhere, which an admin resolved
// by hand. The bill and the discrepancies are loaded twice (a reload), the
// events written twice (a redelivery), and every answer stays exact.
func TestReconcileQueriesInTheDoc(t *testing.T) {
	chAddr := itest.ClickHouse(t)
	db := itest.Name("wxpayd_test")
	ctx := context.Background()
	t.Cleanup(func() { (&env{chAddr: chAddr, database: db}).dropDatabase() })
	w, err := clickhouse.Open(ctx, clickhouse.Config{Addr: chAddr, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	l := clickhouse.NewBillLoader(w)

	const date = "2024-03-05"
	day, _ := wxpay.ParseBillDate(date)
	at := day.Add(time.Hour) // 01:00 Beijing
	ms := at.UnixMilli()
	evs := []event.Event{
		{EventID: "01A:1", Type: event.OrderPaid, OutTradeNo: "01A", Seq: 1, TimeMs: ms, State: "PAID", Amount: 1999, TransactionID: "T1"},
		{EventID: "01B:1", Type: event.OrderPaid, OutTradeNo: "01B", Seq: 1, TimeMs: ms, State: "PAID", Amount: 1000, TransactionID: "T2"},
		{EventID: "01B:2", Type: event.OrderRefundRequested, OutTradeNo: "01B", Seq: 2, TimeMs: ms + 1000, State: "REFUNDING",
			Amount: 1000, RefundAmount: 500, OutRefundNo: "R1"},
		{EventID: "01B:3", Type: event.OrderRefunded, OutTradeNo: "01B", Seq: 3, TimeMs: ms + 2000, State: "REFUNDED",
			Amount: 1000, RefundAmount: 500, RefundedTotal: 500, OutRefundNo: "R1"},
		{EventID: "reconcile:" + date + ":unknown_order:01C", Type: event.ReconcileDiscrepancy, OutTradeNo: "01C",
			TimeMs: ms + 86400_000, Reason: "unknown_order", BillDate: date, WeChatAmount: 300, Alert: "x"},
		{EventID: "reconcile:" + date + ":refund_missing_here:01B:R9", Type: event.ReconcileDiscrepancy, OutTradeNo: "01B",
			OutRefundNo: "R9", TimeMs: ms + 86400_000, Reason: "refund_missing_here", BillDate: date, WeChatAmount: 200, Alert: "x"},
		{EventID: "reconcile:" + date + ":completed:1", Type: event.ReconcileCompleted, TimeMs: ms + 86400_000,
			BillDate: date, Reason: "run 1", Amount: 2999, WeChatAmount: 3299, Discrepancies: 2},
		{EventID: "reconcile:" + date + ":resolved:refund_missing_here:01B:R9", Type: event.ReconcileResolved, OutTradeNo: "01B",
			OutRefundNo: "R9", TimeMs: ms + 2*86400_000, Reason: "WeChat ticket 7", BillDate: date, WeChatAmount: 200},
	}
	for i := range evs {
		evs[i].V = event.Version
	}
	pay := func(otn, txn string, total int64) wxpay.TradeBillRow {
		return wxpay.TradeBillRow{TradeTime: at, AppID: "wxa", MchID: "1900", OutTradeNo: otn, TransactionID: txn,
			TradeState: wxpay.TradeStateSuccess, Total: total, SettlementTotal: total, FeeMilliFen: (total*6000 + 500_000) / 1_000_000 * 1000,
			RatePPM: 6000, Currency: "CNY", TradeType: "JSAPI"}
	}
	bill := []wxpay.TradeBillRow{pay("01A", "T1", 1999), pay("01B", "T2", 1000), pay("01C", "T3", 300),
		{TradeTime: at, OutTradeNo: "01B", TransactionID: "T2", TradeState: wxpay.TradeStateRefund, OutRefundNo: "R1",
			RefundID: "503", Refund: 500, RefundRequested: 500, RefundStatus: "SUCCESS", FeeMilliFen: -3000}}
	ds := []clickhouse.Discrepancy{
		{Key: "unknown_order:01C", Class: "unknown_order", Status: "open", OutTradeNo: "01C", WeChatState: "SUCCESS",
			WeChatAmount: 300, Detail: "not ours", FoundMs: ms, UpdatedMs: ms},
		{Key: "payment_missing_here:01A", Class: "payment_missing_here", Status: "open", OutTradeNo: "01A",
			OurState: "PREPAID", OurAmount: 1999, WeChatState: "SUCCESS", WeChatAmount: 1999, FoundMs: ms, UpdatedMs: ms},
		{Key: "refund_missing_here:01B:R9", Class: "refund_missing_here", Status: "open", OutTradeNo: "01B", OutRefundNo: "R9",
			OurState: "REFUNDED", WeChatState: "SUCCESS", WeChatAmount: 200, Detail: "booked elsewhere", FoundMs: ms, UpdatedMs: ms},
	}
	for range 2 {
		if err := w.Write(ctx, evs); err != nil {
			t.Fatal(err)
		}
		if err := l.LoadTrades(ctx, date, bill); err != nil {
			t.Fatal(err)
		}
		if err := l.LoadDiscrepancies(ctx, date, ds); err != nil {
			t.Fatal(err)
		}
	}
	// The repair and the resolution by hand, loaded later: the latest load
	// of a key wins.
	ds[1].Status, ds[1].UpdatedMs = "repaired", ms+1
	ds[2].Status, ds[2].UpdatedMs = "resolved", ms+2
	if err := l.LoadDiscrepancies(ctx, date, ds[1:]); err != nil {
		t.Fatal(err)
	}

	want := map[string]func(t *testing.T, got [][]string){
		"daily_settlement":       exact([][]string{{date, "2", "3", "2999", "3299", "1", "1", "500", "500", "17000", "2799"}}),
		"settlement_differences": exact([][]string{{date, "-1", "-300", "0"}}),
		"open_discrepancies":     exact([][]string{{date, "unknown_order", "01C", "", "", "0", "SUCCESS", "300", "not ours"}}),
		"discrepancies_per_day": exact([][]string{
			{date, "payment_missing_here", "1", "0", "1", "0"},
			{date, "refund_missing_here", "1", "0", "0", "1"},
			{date, "unknown_order", "1", "1", "0", "0"},
		}),
		"resolved_by_hand":            exact([][]string{{date, "refund_missing_here", "01B", "R9", "WeChat ticket 7", fmt.Sprint(ms + 2*86400_000)}}),
		"bill_payments_not_paid_here": exact([][]string{{date, "01C", "T3", "300", "", "0"}}),
		"reconcile_events": exact([][]string{
			{"reconcile.completed", "run 1", "1"},
			{"reconcile.discrepancy", "refund_missing_here", "1"},
			{"reconcile.discrepancy", "unknown_order", "1"},
			{"reconcile.resolved", "WeChat ticket 7", "1"},
		}),
		"fees_per_order": func(t *testing.T, got [][]string) {
			exact([][]string{
				{date, "01A", "T1", "1999", "12000", "1999", "PAID", "1999"},
				{date, "01B", "T2", "1000", "6000", "1000", "REFUNDED", "1000"},
				{date, "01C", "T3", "300", "2000", "300", "", "0"},
			})(t, got)
		},
	}
	ran := 0
	for _, q := range analyticsQueries(t) {
		check := want[q.name]
		if check == nil {
			continue
		}
		ran++
		t.Run(q.name, func(t *testing.T) {
			got := rows(t, w, q.sql)
			for _, r := range got {
				if len(r) > 0 && len(r[0]) > 10 && r[0][4] == '-' && r[0][10] == ' ' { // a Date scans as a time.Time
					r[0] = r[0][:10]
				}
			}
			check(t, got)
		})
	}
	if ran != len(want) {
		t.Fatalf("%d of the %d reconciliation queries found in docs/analytics.md", ran, len(want))
	}
}
