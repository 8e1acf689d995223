package reconcile

import (
	"fmt"
	"strconv"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

// The matcher: one order against its rows of one day's bill, as a pure
// function. The run walks every out_trade_no that has bill rows or is in
// the day's index and calls it once per order, so memory holds one order
// and its rows at a time.

// day is the date reconciled and its bounds (Beijing time), Unix ms.
type day struct {
	date         string
	startMs, end int64 // [startMs, end)
}

func newDay(date string) (day, error) {
	t, err := wxpay.ParseBillDate(date)
	if err != nil {
		return day{}, err
	}
	return day{date: date, startMs: t.UnixMilli(), end: t.AddDate(0, 0, 1).UnixMilli()}, nil
}

func (d day) has(ms int64) bool { return ms >= d.startMs && ms < d.end }

// matched is what matching one order found.
type matched struct {
	ds   []Discrepancy // confirm set: the bill lacks it, WeChat is asked first
	ours Side          // the order's payment and refunds of the day, wxpayd's side
	ok   bool          // the order agrees with the bill
}

// paidHere reports a state in which the order has been paid.
func paidHere(s store.State) bool {
	return s == store.StatePaid || s == store.StateRefunding || s == store.StateRefunded
}

// billRefundStatus maps a bill's 退款状态 to the refund API's status
// (UNCONFIRMED beyond the sim's mapping: REFUNDCLOSE and CHANGE are APIv2's
// names of CLOSED and ABNORMAL).
func billRefundStatus(s string) string {
	switch s {
	case "REFUNDCLOSE":
		return wxpay.RefundStatusClosed
	case "CHANGE":
		return wxpay.RefundStatusAbnormal
	}
	return s
}

// refundsDisagree tells whether a refund's status here and in the bill
// are two different outcomes. The bill is a snapshot taken the next
// morning, so a refund still PROCESSING (or ABNORMAL) there may have ended
// here since: only two different ends, or a refund the bill shows ended
// while it is still pending here, or one wxpayd holds failed (refused)
// while WeChat has it, disagree.
func refundsDisagree(ours, bill string) bool {
	final := func(s string) bool {
		return s == wxpay.RefundStatusSuccess || s == wxpay.RefundStatusClosed || s == refundFailed
	}
	switch {
	case ours == bill:
		return false
	case ours == refundFailed:
		return true // refused here, yet WeChat lists it
	case final(bill):
		return true // ended at WeChat one way, here another or not yet
	}
	return false
}

// refundFailed is the order actor's status of a refund WeChat refused.
const refundFailed = "FAILED"

// matchOrder compares order o (nil: not in this store) with its rows of
// d's bill (payments, refunds, revocations, in key order).
func matchOrder(d day, otn string, rows []wxpay.TradeBillRow, o *store.Order) matched {
	var m matched
	add := func(class, orn string, fill func(*Discrepancy)) {
		x := Discrepancy{Key: discrepancyKey(class, otn, orn), Date: d.date, Class: class, OutTradeNo: otn, OutRefundNo: orn}
		fill(&x)
		m.ds = append(m.ds, x)
	}
	if o == nil {
		for i := range rows {
			r := &rows[i]
			add(ClassUnknownOrder, r.OutRefundNo, func(x *Discrepancy) {
				x.TransactionID, x.WeChatState, x.WeChatAmount = r.TransactionID, r.TradeState, rowAmount(r)
				x.Detail = "the bill has a " + r.TradeState + " row for an order wxpayd does not have (another system's?)"
			})
		}
		return m
	}
	if o.PaidMs > 0 && d.has(o.PaidMs) && paidHere(o.State) {
		m.ours.Payments++
		m.ours.PaymentFen += o.Total
	}
	for i := range o.Refunds {
		if rf := &o.Refunds[i]; d.has(rf.CreatedMs) && rf.Status != refundFailed {
			m.ours.Refunds++
			m.ours.RefundFen += rf.Amount
		}
	}
	state := string(o.State)
	var pay *wxpay.TradeBillRow
	seen := map[string]bool{}
	for i := range rows {
		r := &rows[i]
		switch r.TradeState {
		case wxpay.TradeStateSuccess:
			pay = r
		case wxpay.TradeStateRefund:
			seen[r.OutRefundNo] = true
			matchRefund(o, r, add)
		}
	}
	switch {
	case pay != nil && !paidHere(o.State):
		add(ClassPaymentMissingHere, "", func(x *Discrepancy) {
			x.TransactionID, x.OurState, x.OurAmount = pay.TransactionID, state, o.Total
			x.WeChatState, x.WeChatAmount = pay.TradeState, pay.Total
			x.Detail = "paid at WeChat (transaction " + pay.TransactionID + "), " + state + " here"
		})
	case pay != nil && pay.Total != o.Total:
		add(ClassAmountMismatch, "", func(x *Discrepancy) {
			x.TransactionID, x.OurState, x.OurAmount = pay.TransactionID, state, o.Total
			x.WeChatState, x.WeChatAmount = pay.TradeState, pay.Total
			x.Detail = fmt.Sprintf("the bill's order amount is %d fen, the order's %d", pay.Total, o.Total)
		})
	case pay != nil && o.TransactionID != "" && pay.TransactionID != o.TransactionID:
		add(ClassTransactionMismatch, "", func(x *Discrepancy) {
			x.TransactionID, x.OurState, x.OurAmount = pay.TransactionID, state, o.Total
			x.WeChatState, x.WeChatAmount = pay.TradeState, pay.Total
			x.Detail = "the bill's transaction is " + pay.TransactionID + ", the order was paid by " + o.TransactionID
		})
	case pay == nil && paidHere(o.State) && d.has(o.PaidMs):
		add(ClassPaymentMissingAtWeChat, "", func(x *Discrepancy) {
			x.TransactionID, x.OurState, x.OurAmount = o.TransactionID, state, o.Total
			x.Detail = "paid here on " + d.date + ", not in WeChat's bill"
			x.confirm = true
		})
	}
	for i := range o.Refunds {
		rf := &o.Refunds[i]
		if seen[rf.OutRefundNo] || !d.has(rf.CreatedMs) || rf.Status == refundFailed {
			continue
		}
		add(ClassRefundMissingAtWeChat, rf.OutRefundNo, func(x *Discrepancy) {
			x.OurState, x.OurAmount = rf.Status, rf.Amount
			x.Detail = "refund requested here on " + d.date + ", not in WeChat's bill"
			x.confirm = true
		})
	}
	m.ok = len(m.ds) == 0 && (pay != nil || len(seen) > 0)
	return m
}

// matchRefund compares a refund row with the order's refund of that number.
func matchRefund(o *store.Order, r *wxpay.TradeBillRow, add func(class, orn string, fill func(*Discrepancy))) {
	var ours *store.Refund
	for i := range o.Refunds {
		if o.Refunds[i].OutRefundNo == r.OutRefundNo {
			ours = &o.Refunds[i]
		}
	}
	bill := billRefundStatus(r.RefundStatus)
	fill := func(x *Discrepancy) {
		x.TransactionID, x.WeChatState, x.WeChatAmount = r.TransactionID, r.RefundStatus, r.Refund
		if ours != nil {
			x.OurState, x.OurAmount = ours.Status, ours.Amount
		}
	}
	switch {
	case ours == nil:
		add(ClassRefundMissingHere, r.OutRefundNo, func(x *Discrepancy) {
			fill(x)
			x.OurState = string(o.State)
			x.Detail = "WeChat has refund " + r.OutRefundNo + " (" + r.RefundStatus + ", " +
				strconv.FormatInt(r.Refund, 10) + " fen) that the order does not know"
		})
	case ours.Amount != r.Refund:
		add(ClassRefundAmountMismatch, r.OutRefundNo, func(x *Discrepancy) {
			fill(x)
			x.Detail = fmt.Sprintf("the bill refunds %d fen, the order's refund is %d", r.Refund, ours.Amount)
		})
	case refundsDisagree(ours.Status, bill):
		add(ClassRefundStatusMismatch, r.OutRefundNo, func(x *Discrepancy) {
			fill(x)
			x.Detail = "the bill's refund status is " + r.RefundStatus + ", here " + ours.Status
		})
	}
}

// rowAmount is a row's amount: the order amount of a payment, the refund of
// a refund.
func rowAmount(r *wxpay.TradeBillRow) int64 {
	if r.TradeState == wxpay.TradeStateRefund {
		return r.Refund
	}
	return r.Total
}
