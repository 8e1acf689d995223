package sim

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

func TestLedger(t *testing.T) {
	t.Parallel()
	const delay = 10 * time.Second
	ts := startSim(t, func(c *Config) { c.RefundDelay = delay })
	c := ts.c
	id := ts.Identity()
	m := newMerchant(t, ts.Server, nil)
	// Created out of order: the ledger sorts by out_trade_no.
	txn := ts.paidOrder(t, m, "LEDGER0003", 100)
	withAttach := prepayReq(testID, "LEDGER0001", "oBuyer", m.url)
	withAttach["attach"] = "cart-7"
	c.do("POST", "/v3/pay/transactions/jsapi", withAttach).wantOK(t, 200)
	c.prepay("LEDGER0002", "oBuyer", m.url)
	c.do("POST", pathQueryPrefix+"LEDGER0002/close", map[string]string{"mchid": id.MchID}).wantOK(t, 204)
	decodeRefund(t, c.do("POST", "/v3/refund/domestic/refunds", refundReq("LEDGER0003", "LR1", 30, 100)))
	ts.endRefunds(t, m, delay, 1)
	decodeRefund(t, c.do("POST", "/v3/refund/domestic/refunds", refundReq("LEDGER0003", "LR2", 20, 100))) // stays PROCESSING
	c.do("GET", pathRefundPrefix+"LR2", nil).wantOK(t, 200)
	c.query("LEDGER0003")
	c.do("GET", pathQueryByIDPrefix+txn+"?mchid="+id.MchID, nil).wantOK(t, 200)

	l := c.ledger("")
	otns := []string{}
	for _, o := range l.Orders {
		otns = append(otns, o.OutTradeNo)
	}
	if !slices.Equal(otns, []string{"LEDGER0001", "LEDGER0002", "LEDGER0003"}) {
		t.Fatalf("orders %v", otns)
	}
	for _, tc := range []struct {
		name string
		got  LedgerOrder
		want LedgerOrder
	}{
		{"an unpaid order has no paid_total; the prepay's payer, description and attach are kept", l.Orders[0],
			LedgerOrder{OutTradeNo: "LEDGER0001", TradeState: wxpay.TradeStateNotPay, Total: 100, OpenID: "oBuyer",
				Description: withAttach["description"].(string), Attach: "cart-7", Calls: LedgerCalls{Prepay: 1}}},
		{"a closed order counts its close", l.Orders[1], LedgerOrder{OutTradeNo: "LEDGER0002",
			TradeState: wxpay.TradeStateClosed, Total: 100, Calls: LedgerCalls{Prepay: 1, Close: 1}}},
		{"a refunded order counts only SUCCESS refunds as refunded", l.Orders[2], LedgerOrder{OutTradeNo: "LEDGER0003",
			TradeState: wxpay.TradeStateRefund, Total: 100, PaidTotal: 100, TransactionID: txn, Refunded: 30,
			Calls: LedgerCalls{Prepay: 1, Query: 2, Refund: 2, RefundQuery: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.got
			if g.OutTradeNo != tc.want.OutTradeNo || g.TradeState != tc.want.TradeState || g.Total != tc.want.Total ||
				g.PaidTotal != tc.want.PaidTotal || g.TransactionID != tc.want.TransactionID || g.Refunded != tc.want.Refunded ||
				g.Calls != tc.want.Calls || tc.want.OpenID != "" && (g.OpenID != tc.want.OpenID ||
				g.Description != tc.want.Description || g.Attach != tc.want.Attach) {
				t.Fatalf("got %+v\nwant %+v", g, tc.want)
			}
		})
	}
	t.Run("refunds are listed with their status", func(t *testing.T) {
		rs := l.Orders[2].Refunds
		if len(rs) != 2 || rs[0].OutRefundNo != "LR1" || rs[0].Status != wxpay.RefundStatusSuccess || rs[0].Amount != 30 ||
			rs[1].Status != wxpay.RefundStatusProcessing || rs[1].RefundID == "" || rs[1].CreateTime == "" {
			t.Fatalf("refunds %+v", rs)
		}
	})
	t.Run("call times are Unix ms of the simulator clock", func(t *testing.T) {
		ct := l.Orders[2].CallTimes
		now := ts.clock.Now().UnixMilli()
		if len(ct.Query) != 2 || ct.Query[1] != now || len(ct.RefundQuery) != 1 || len(ct.Close) != 0 {
			t.Fatalf("call times %+v (now %d)", ct, now)
		}
	})
	t.Run("?out_trade_no= returns that order only; a malformed one is 400", func(t *testing.T) {
		if one := c.ledger("LEDGER0002"); len(one.Orders) != 1 || one.Orders[0].TradeState != wxpay.TradeStateClosed {
			t.Fatalf("%+v", one)
		}
		if none := c.ledger("LEDGER9999"); len(none.Orders) != 0 {
			t.Fatalf("%+v", none)
		}
		if st := c.simGet("/sim/v1/ledger?out_trade_no=a%23b", nil); st != 400 {
			t.Fatalf("%d", st)
		}
	})
	t.Run("calls for an unknown out_trade_no are listed apart as NOT_EXIST and move to the order once created", func(t *testing.T) {
		c.do("GET", pathQueryPrefix+"LEDGER0004?mchid="+id.MchID, nil).wantErr(t, 404, wxpay.CodeOrderNotExist)
		bad := prepayReq(id, "LEDGER0004", "oBuyer", m.url)
		bad["amount"] = map[string]any{"total": 0}
		c.do("POST", "/v3/pay/transactions/jsapi", bad).wantErr(t, 400, wxpay.CodeParamError)
		all := c.ledger("")
		if len(all.Orders) != 3 || len(all.Unknown) != 1 {
			t.Fatalf("an unknown out_trade_no must not be listed among WeChat's orders: %+v", all)
		}
		if g := all.Unknown[0]; g.OutTradeNo != "LEDGER0004" || g.TradeState != TradeStateNotExist ||
			g.Calls != (LedgerCalls{Prepay: 1, Query: 1}) {
			t.Fatalf("before %+v", g)
		}
		if ts.Stats().Live.UnknownOrders != 1 {
			t.Fatalf("live %+v", ts.Stats().Live)
		}
		c.prepay("LEDGER0004", "oBuyer", m.url)
		one := c.ledger("LEDGER0004")
		if len(one.Orders) != 1 || len(one.Unknown) != 0 {
			t.Fatalf("after %+v", one)
		}
		if g := one.Orders[0]; g.TradeState != wxpay.TradeStateNotPay || g.Calls != (LedgerCalls{Prepay: 2, Query: 1}) ||
			len(g.CallTimes.Query) != 1 {
			t.Fatalf("after %+v", g)
		}
		if ts.Stats().Live.UnknownOrders != 0 {
			t.Fatalf("live %+v", ts.Stats().Live)
		}
	})
	t.Run("call times keep the last 64", func(t *testing.T) {
		var want []int64
		for range MaxCallTimes + 6 {
			ts.clock.Advance(time.Second)
			want = append(want, ts.clock.Now().UnixMilli())
			c.query("LEDGER0001")
		}
		g := c.ledgerOrder("LEDGER0001")
		if !slices.Equal(g.CallTimes.Query, want[6:]) || g.Calls.Query != MaxCallTimes+6 {
			t.Fatalf("query times %v (%d calls), want %v", g.CallTimes.Query, g.Calls.Query, want[6:])
		}
	})
}

func TestGhostBound(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.MaxOrders = 3 })
	for i := range 5 {
		ts.c.do("GET", pathQueryPrefix+fmt.Sprintf("GHOST%05d", i)+"?mchid="+testID.MchID, nil).
			wantErr(t, 404, wxpay.CodeOrderNotExist)
	}
	if l := ts.c.ledger(""); len(l.Unknown) != 3 || len(l.Orders) != 0 || ts.Stats().Live.UnknownOrders != 3 {
		t.Fatalf("unknown out_trade_nos kept: %d, want MaxOrders (3)", len(l.Unknown))
	}
}
