package sim

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

func refundReq(otn, orn string, refund, total int64) map[string]any {
	return map[string]any{
		"out_trade_no": otn, "out_refund_no": orn, "reason": "商品已售完",
		"amount": map[string]any{"refund": refund, "total": total, "currency": "CNY"},
	}
}

func decodeRefund(t *testing.T, a answer) wxpay.Refund {
	t.Helper()
	a.wantOK(t, 200)
	var r wxpay.Refund
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRefunds(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.RefundDelay = 10 * time.Second })
	c := ts.c
	m := newMerchant(t, ts.Server, nil)
	pid := c.prepay("REFUND0001", "oBuyer", m.url)
	c.prepay("REFUND0002", "oBuyer", m.url) // stays unpaid
	_, txn := c.pay(pid, "oBuyer")
	m.next(t)

	t.Run("a refund of an unpaid order is 400 INVALID_REQUEST", func(t *testing.T) {
		c.do("POST", "/v3/refund/domestic/refunds", refundReq("REFUND0002", "RU1", 10, 100)).wantErr(t, 400, wxpay.CodeInvalidRequest)
	})
	t.Run("a refund of an unknown order is 404 RESOURCE_NOT_EXISTS", func(t *testing.T) {
		c.do("POST", "/v3/refund/domestic/refunds", refundReq("NOSUCH0001", "RU2", 10, 100)).wantErr(t, 404, wxpay.CodeResourceNotExists)
		b := refundReq("", "RU3", 10, 100)
		delete(b, "out_trade_no")
		b["transaction_id"] = "4200000000000000000000000000"
		c.do("POST", "/v3/refund/domestic/refunds", b).wantErr(t, 404, wxpay.CodeResourceNotExists)
	})
	t.Run("amount.total other than the order's is 400 INVALID_REQUEST", func(t *testing.T) {
		c.do("POST", "/v3/refund/domestic/refunds", refundReq("REFUND0001", "RU4", 10, 99)).wantErr(t, 400, wxpay.CodeInvalidRequest)
	})
	t.Run("field errors are 400 PARAM_ERROR with detail", func(t *testing.T) {
		for _, tc := range []struct {
			field string
			mod   func(b map[string]any)
		}{
			{"/out_refund_no", func(b map[string]any) { delete(b, "out_refund_no") }},
			{"/out_refund_no", func(b map[string]any) { b["out_refund_no"] = "R#1" }},
			{"/out_trade_no", func(b map[string]any) { delete(b, "out_trade_no") }},
			{"/amount/refund", func(b map[string]any) { b["amount"] = map[string]any{"refund": 0, "total": 100, "currency": "CNY"} }},
			{"/amount/total", func(b map[string]any) { b["amount"] = map[string]any{"refund": 1, "total": 0, "currency": "CNY"} }},
			{"/amount/currency", func(b map[string]any) { b["amount"] = map[string]any{"refund": 1, "total": 100} }},
			{"/reason", func(b map[string]any) { b["reason"] = string(make([]byte, 81)) }},
			{"/notify_url", func(b map[string]any) { b["notify_url"] = "https://m.example/r?x=1" }},
			{"/funds_account", func(b map[string]any) { b["funds_account"] = "UNSETTLED" }},
		} {
			b := refundReq("REFUND0001", "RP1", 10, 100)
			tc.mod(b)
			e := c.do("POST", "/v3/refund/domestic/refunds", b).wantErr(t, 400, wxpay.CodeParamError)
			if e.Detail == nil || e.Detail.Field != tc.field {
				t.Fatalf("detail %+v, want %s", e.Detail, tc.field)
			}
		}
	})
	var first wxpay.Refund
	t.Run("a refund is accepted PROCESSING and the order reads REFUND", func(t *testing.T) {
		first = decodeRefund(t, c.do("POST", "/v3/refund/domestic/refunds", refundReq("REFUND0001", "R1", 30, 100)))
		if first.Status != wxpay.RefundStatusProcessing || first.OutRefundNo != "R1" || first.TransactionID != txn ||
			first.Amount.Refund != 30 || first.Amount.Total != 100 || first.Channel != "ORIGINAL" || first.RefundID == "" ||
			first.SuccessTime != "" {
			t.Fatalf("refund %+v", first)
		}
		if tx := c.query("REFUND0001"); tx.TradeState != wxpay.TradeStateRefund {
			t.Fatalf("trade_state %s", tx.TradeState)
		}
	})
	t.Run("the same out_refund_no with the same amount is the same refund", func(t *testing.T) {
		again := decodeRefund(t, c.do("POST", "/v3/refund/domestic/refunds", refundReq("REFUND0001", "R1", 30, 100)))
		if again.RefundID != first.RefundID || again.Amount.Refund != 30 {
			t.Fatalf("retry %+v", again)
		}
	})
	t.Run("the same out_refund_no with another amount is 400 REFUND_FEE_MISMATCH", func(t *testing.T) {
		c.do("POST", "/v3/refund/domestic/refunds", refundReq("REFUND0001", "R1", 50, 100)).wantErr(t, 400, codeRefundFeeMismatch)
	})
	t.Run("the same out_refund_no for another order is 400 INVALID_REQUEST", func(t *testing.T) {
		p3 := c.prepay("REFUND0003", "oBuyer", m.url)
		c.pay(p3, "oBuyer")
		m.next(t)
		c.do("POST", "/v3/refund/domestic/refunds", refundReq("REFUND0003", "R1", 1, 100)).wantErr(t, 400, wxpay.CodeInvalidRequest)
	})
	t.Run("refunds beyond what is refundable are 403 NOT_ENOUGH", func(t *testing.T) {
		c.do("POST", "/v3/refund/domestic/refunds", refundReq("REFUND0001", "R2", 71, 100)).wantErr(t, 403, wxpay.CodeNotEnough)
	})
	t.Run("a refund by transaction_id works", func(t *testing.T) {
		b := refundReq("", "R3", 70, 100)
		delete(b, "out_trade_no")
		b["transaction_id"] = txn
		if r := decodeRefund(t, c.do("POST", "/v3/refund/domestic/refunds", b)); r.OutTradeNo != "REFUND0001" {
			t.Fatalf("refund %+v", r)
		}
	})
	t.Run("after the delay the refund succeeds and REFUND.SUCCESS is delivered", func(t *testing.T) {
		q := decodeRefund(t, c.do("GET", "/v3/refund/domestic/refunds/R1", nil))
		if q.Status != wxpay.RefundStatusProcessing {
			t.Fatalf("before the delay %+v", q)
		}
		eventually(t, "the refund timers", func() bool { return ts.clock.Waiters() > 0 })
		ts.clock.Advance(10 * time.Second)
		got := map[string]wxpay.RefundNotice{}
		for range 2 {
			a := m.next(t)
			if !a.valid || a.event != wxpay.EventRefundSuccess {
				t.Fatalf("arrival %+v", a)
			}
			got[a.refund.OutRefundNo] = a.refund
		}
		r1 := got["R1"]
		if r1.RefundStatus != wxpay.RefundStatusSuccess || r1.Amount.Refund != 30 || r1.Amount.Total != 100 ||
			r1.TransactionID != txn || r1.RefundID != first.RefundID || r1.SuccessTime == "" || got["R3"].Amount.Refund != 70 {
			t.Fatalf("notices %+v", got)
		}
		q = decodeRefund(t, c.do("GET", "/v3/refund/domestic/refunds/R1", nil))
		if q.Status != wxpay.RefundStatusSuccess || q.SuccessTime == "" {
			t.Fatalf("after the delay %+v", q)
		}
	})
	t.Run("refund query of an unknown or malformed out_refund_no", func(t *testing.T) {
		c.do("GET", "/v3/refund/domestic/refunds/NOPE", nil).wantErr(t, 404, wxpay.CodeResourceNotExists)
		c.do("GET", "/v3/refund/domestic/refunds/R%231", nil).wantErr(t, 400, wxpay.CodeParamError)
	})
	t.Run("a 51st refund of one order is 400 INVALID_REQUEST", func(t *testing.T) {
		b := prepayReq(testID, "REFUND0004", "oBuyer", m.url)
		b["amount"] = map[string]any{"total": 1000}
		var r wxpay.PrepayResponse
		json.Unmarshal(c.do("POST", "/v3/pay/transactions/jsapi", b).body, &r)
		c.pay(r.PrepayID, "oBuyer")
		m.next(t)
		for i := range maxRefunds {
			decodeRefund(t, c.do("POST", "/v3/refund/domestic/refunds", refundReq("REFUND0004", "M"+strconv.Itoa(i), 1, 1000)))
		}
		c.do("POST", "/v3/refund/domestic/refunds", refundReq("REFUND0004", "M50", 1, 1000)).wantErr(t, 400, wxpay.CodeInvalidRequest)
	})
	t.Run("a refund's notify_url overrides the order's", func(t *testing.T) {
		m2 := newMerchant(t, ts.Server, nil)
		b := refundReq("REFUND0003", "R9", 5, 100)
		b["notify_url"] = m2.url
		decodeRefund(t, c.do("POST", "/v3/refund/domestic/refunds", b))
		eventually(t, "the refund timer", func() bool { return ts.notifier.len() > 0 && ts.clock.Waiters() > 0 })
		ts.clock.Advance(10 * time.Second)
		if a := m2.next(t); a.refund.OutRefundNo != "R9" {
			t.Fatalf("arrival %+v", a)
		}
	})
	st := ts.Stats()
	if st.Refunds != 53 || st.Paid != 3 {
		t.Fatalf("stats refunds %d paid %d", st.Refunds, st.Paid)
	}
}
