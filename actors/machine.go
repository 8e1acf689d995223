package actors

import (
	"slices"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

// The order state machine, as a pure function of (record, message, env):
// it returns the new record, the events to write with it and the effects
// to carry out after the write is durable. The order actor owns the
// record and runs it; the table tests run it directly.

// Env is what a transition may depend on besides the record and message.
type Env struct {
	Now        time.Time
	AppID      string
	MchID      string
	QueryAfter time.Duration // first active query this long after prepay (default 1 min)
	CloseGrace time.Duration // a CREATED order older than this is abandoned (default 1 min)
}

// Stock effects on the order's SKU, sent to its inventory actor after commit.
type stockEffect uint8

const (
	stockNone    stockEffect = iota
	stockRelease             // CLOSED or FAILED: the units go back
	stockCommit              // PAID: the units are sold
)

// Calls to WeChat that a transition asks for; results come back as messages.
type callKind uint8

const (
	callNone callKind = iota
	callQuery
	callClose
	callRefund
	callRefundQuery
)

// Outcome is what a transition decided.
type Outcome struct {
	Order  store.Order   // the new record (unchanged when Write is false)
	Write  bool          // the record changed: commit Order and Events
	Events []event.Event // events to write (each took the next seq)
	Status Status        // the answer to whoever sent the message
	Stock  stockEffect
	Call   callKind
	Refund *store.Refund // the refund a callRefund/callRefundQuery is about
}

// Status is the result of a message, mapped to HTTP by the ingress.
type Status uint8

// Statuses.
const (
	StatusOK            Status = iota // done (or already done: idempotent)
	StatusCreated                     // a new order was created
	StatusNotFound                    // no such order
	StatusConflict                    // not allowed in this state
	StatusMismatch                    // a notification does not match the order
	StatusIgnored                     // accepted, nothing to do
	StatusBadRequest                  // invalid arguments
	StatusSoldOut                     // Prepay: not enough units left
	StatusLimitExceeded               // Prepay: the buyer's per-buyer limit would be passed
	StatusUnknownSKU                  // Prepay: no such SKU
	StatusBudget                      // Prepay: the merchant's WeChat budget is spent; retry after Reply.RetryAfter
	StatusIdemReused                  // Prepay: the order number's first request had other parameters
)

// emit appends an event with the next seq and fills the common fields.
func (o *Outcome) emit(typ string, env Env, fill func(e *event.Event)) {
	o.Order.Seq++
	e := event.Event{
		EventID: event.ID(o.Order.OutTradeNo, o.Order.Seq), Type: typ, OutTradeNo: o.Order.OutTradeNo,
		Seq: o.Order.Seq, TimeMs: env.Now.UnixMilli(), State: string(o.Order.State), SKU: o.Order.SKU,
		Quantity: o.Order.Quantity, OpenID: o.Order.OpenID, Amount: o.Order.Total,
		TransactionID: o.Order.TransactionID, RefundedTotal: o.Order.RefundedFen,
	}
	if fill != nil {
		fill(&e)
	}
	o.Events = append(o.Events, e)
	o.Write = true
}

// create applies a Prepay whose stock is reserved to a record that does
// not exist yet: the order, priced from the catalogue entry k, expiring
// after ttl.
func create(m *Prepay, k *store.SKU, ttl time.Duration, env Env) Outcome {
	o := Outcome{Order: store.Order{
		OutTradeNo: m.OutTradeNo, State: store.StateCreated, OpenID: m.OpenID, SKU: m.SKU,
		Description: k.Description, Quantity: m.Quantity, Total: m.Quantity * k.Price, Currency: "CNY",
		IdemKey: m.IdemKey, CreatedMs: env.Now.UnixMilli(), ExpiresMs: env.Now.Add(ttl).UnixMilli(),
	}}
	o.emit(event.OrderCreated, env, nil)
	o.Status = StatusCreated
	return o
}

// sameRequest tells whether a replayed Prepay asks for what the order holds.
func sameRequest(cur *store.Order, m *Prepay) bool {
	return cur.SKU == m.SKU && cur.Quantity == m.Quantity
}

// prepayDone applies the prepay call's result. An unknown outcome (an
// error that is not Definitive) changes nothing: the order stays CREATED,
// a replay of the request asks WeChat again with the same out_trade_no,
// and otherwise tick closes it after CloseGrace, which releases the stock.
func prepayDone(cur store.Order, m *PrepayDone, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	if cur.State != store.StateCreated {
		// A late or repeated result: the order moved on (closed by its
		// timer, or already prepaid). Nothing changes.
		if cur.State == store.StatePrepaid && cur.PrepayID == m.PrepayID {
			return o
		}
		o.Status = StatusConflict
		return o
	}
	if m.PrepayID != "" {
		o.Order.State = store.StatePrepaid
		o.Order.PrepayID = m.PrepayID
		o.Order.PrepayMicros = m.Micros
		o.Order.PrepaidMs = env.Now.UnixMilli()
		o.emit(event.OrderPrepaid, env, func(e *event.Event) { e.PrepayMicros = m.Micros })
		return o
	}
	if !m.Definitive {
		return o
	}
	o.Order.State = store.StateFailed
	o.Order.FailCode = m.Code
	o.Order.ClosedMs = env.Now.UnixMilli()
	o.Stock = stockRelease
	o.emit(event.OrderPrepayFailed, env, func(e *event.Event) { e.PrepayMicros = m.Micros; e.Reason = m.Code })
	return o
}

// matchTransaction checks a transaction against the order; it returns the
// reason of the first mismatch, or "".
func matchTransaction(cur *store.Order, tx *wxpay.Transaction, env Env) string {
	switch {
	case tx.AppID != env.AppID:
		return "appid"
	case tx.MchID != env.MchID:
		return "mchid"
	case tx.OutTradeNo != cur.OutTradeNo:
		return "out_trade_no"
	case tx.Amount.Total != cur.Total:
		return "amount.total"
	case tx.Amount.Currency != "" && tx.Amount.Currency != "CNY":
		return "amount.currency"
	}
	return ""
}

const maxNotifyIDs = 8

// paid applies a SUCCESS transaction, from a notification (notifyID set) or
// an active query.
func paid(cur store.Order, tx *wxpay.Transaction, notifyID string, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	if tx.TradeState != wxpay.TradeStateSuccess {
		// Only successful payments are notified; anything else carries no
		// money. Record the refusal, acknowledge.
		o.Status = StatusIgnored
		o.emit(event.NotifyRejected, env, func(e *event.Event) {
			e.NotificationID = notifyID
			e.Reason = "trade_state " + tx.TradeState
		})
		return o
	}
	if why := matchTransaction(&cur, tx, env); why != "" {
		o.Status = StatusMismatch
		o.emit(event.NotifyMismatch, env, func(e *event.Event) {
			e.NotificationID = notifyID
			e.Reason = why
			e.Alert = "notification does not match the order: " + why
			e.TransactionID = tx.TransactionID
		})
		return o
	}
	switch cur.State {
	case store.StatePaid, store.StateRefunding, store.StateRefunded:
		if tx.TransactionID != cur.TransactionID {
			o.Status = StatusMismatch
			o.emit(event.NotifyMismatch, env, func(e *event.Event) {
				e.NotificationID = notifyID
				e.Reason = "transaction_id"
				e.Alert = "a second transaction for a paid order"
				e.TransactionID = tx.TransactionID
			})
			return o
		}
		if notifyID == "" { // an active query confirming what we know
			return o
		}
		o.emit(event.NotifyDuplicate, env, func(e *event.Event) { e.NotificationID = notifyID })
		o.Order.NotifyIDs = appendBounded(o.Order.NotifyIDs, notifyID)
		return o
	}
	alert := ""
	if cur.State == store.StateClosed || cur.State == store.StateFailed {
		// Money received for an order we gave up on: it is a payment.
		alert = "paid after " + string(cur.State)
	}
	o.Order.State = store.StatePaid
	o.Order.TransactionID = tx.TransactionID
	o.Order.PaidMs = env.Now.UnixMilli()
	if notifyID != "" {
		o.Order.NotifyIDs = appendBounded(o.Order.NotifyIDs, notifyID)
	}
	if alert != "" {
		o.Order.Alerts = append(o.Order.Alerts, alert)
	}
	o.Stock = stockCommit
	o.emit(event.OrderPaid, env, func(e *event.Event) {
		e.NotificationID = notifyID
		e.Alert = alert
		if cur.PrepaidMs > 0 {
			e.PayMillis = o.Order.PaidMs - cur.PrepaidMs
		}
		if notifyID == "" {
			e.Reason = "query"
		}
	})
	return o
}

func appendBounded(ids []string, id string) []string {
	ids = append(slices.Clone(ids), id)
	if len(ids) > maxNotifyIDs {
		ids = ids[len(ids)-maxNotifyIDs:]
	}
	return ids
}

// tick is the order's timer: query an unpaid order, close it at its TTL.
func tick(cur store.Order, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	now := env.Now.UnixMilli()
	switch cur.State {
	case store.StateCreated:
		if now-cur.CreatedMs >= env.CloseGrace.Milliseconds() {
			o.Call = callClose // the prepay never completed; nobody can pay it
		}
	case store.StatePrepaid:
		switch {
		case now >= cur.ExpiresMs:
			o.Call = callClose
		case now-cur.PrepaidMs >= env.QueryAfter.Milliseconds():
			o.Call = callQuery
		}
	case store.StateRefunding:
		if r := pendingRefund(&cur); r != nil && now-r.CreatedMs >= env.QueryAfter.Milliseconds() {
			o.Call = callRefundQuery
			rc := *r
			o.Refund = &rc
		}
	}
	return o
}

// queried applies an active query's answer.
func queried(cur store.Order, m *QueryDone, env Env) Outcome {
	if m.Err != nil {
		if code, _ := wxpay.APIErrorCode(m.Err); code == wxpay.CodeOrderNotExist && cur.State == store.StateCreated {
			return closed(cur, "not at wechat", env)
		}
		return Outcome{Order: cur, Status: StatusOK}
	}
	switch m.Tx.TradeState {
	case wxpay.TradeStateSuccess, wxpay.TradeStateRefund:
		tx := m.Tx
		tx.TradeState = wxpay.TradeStateSuccess
		return paid(cur, &tx, "", env)
	case wxpay.TradeStateClosed, wxpay.TradeStateRevoked:
		if cur.State == store.StateCreated || cur.State == store.StatePrepaid {
			return closed(cur, "closed at wechat", env)
		}
	}
	return Outcome{Order: cur, Status: StatusOK}
}

// closeDone applies the close call's answer.
func closeDone(cur store.Order, m *CloseDone, env Env) Outcome {
	if cur.State != store.StateCreated && cur.State != store.StatePrepaid {
		return Outcome{Order: cur, Status: StatusOK}
	}
	if m.Err == nil {
		return closed(cur, "ttl", env)
	}
	switch code, _ := wxpay.APIErrorCode(m.Err); code {
	case wxpay.CodeOrderNotExist, wxpay.CodeOrderClosed:
		return closed(cur, "ttl", env)
	case wxpay.CodeOrderPaid, "ORDER_PAID", "TRADE_ERROR":
		// Paid while we were closing: find out by query.
		return Outcome{Order: cur, Status: StatusOK, Call: callQuery}
	}
	return Outcome{Order: cur, Status: StatusOK} // retried at the next tick
}

func closed(cur store.Order, reason string, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	o.Order.State = store.StateClosed
	o.Order.ClosedMs = env.Now.UnixMilli()
	o.Stock = stockRelease
	o.emit(event.OrderClosed, env, func(e *event.Event) { e.Reason = reason })
	return o
}

func pendingRefund(o *store.Order) *store.Refund {
	for i := range o.Refunds {
		if o.Refunds[i].Status == wxpay.RefundStatusProcessing || o.Refunds[i].Status == "" {
			return &o.Refunds[i]
		}
	}
	return nil
}

// refundStart moves a paid order to REFUNDING before WeChat is asked, so a
// crash after the call cannot lose the refund (the out_refund_no is
// recorded and reused).
func refundStart(cur store.Order, m *StartRefund, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	if m.Amount <= 0 {
		o.Status = StatusBadRequest
		return o
	}
	if cur.State != store.StatePaid && cur.State != store.StateRefunded {
		o.Status = StatusConflict
		return o
	}
	if cur.RefundedFen+m.Amount > cur.Total {
		o.Status = StatusBadRequest
		return o
	}
	r := store.Refund{
		OutRefundNo: m.OutRefundNo, Amount: m.Amount, Reason: m.Reason,
		Status: wxpay.RefundStatusProcessing, CreatedMs: env.Now.UnixMilli(),
	}
	o.Order.Refunds = append(slices.Clone(cur.Refunds), r)
	o.Order.State = store.StateRefunding
	o.Call = callRefund
	o.Refund = &r
	o.emit(event.OrderRefundRequested, env, func(e *event.Event) {
		e.RefundAmount = m.Amount
		e.OutRefundNo = m.OutRefundNo
		e.Reason = m.Reason
	})
	return o
}

// refundResult applies a refund's outcome: from the create/query call
// (notifyID empty) or a REFUND.* notification.
func refundResult(cur store.Order, outRefundNo, status, refundID, notifyID string, err error, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	idx := -1
	for i := range cur.Refunds {
		if cur.Refunds[i].OutRefundNo == outRefundNo {
			idx = i
		}
	}
	if idx < 0 {
		o.Status = StatusNotFound
		if notifyID != "" {
			o.Status = StatusMismatch
			o.emit(event.NotifyMismatch, env, func(e *event.Event) {
				e.NotificationID = notifyID
				e.OutRefundNo = outRefundNo
				e.Reason = "out_refund_no"
				e.Alert = "refund notification for an unknown refund"
			})
		}
		return o
	}
	r := cur.Refunds[idx]
	if r.Status == wxpay.RefundStatusSuccess || r.Status == wxpay.RefundStatusClosed || r.Status == "FAILED" {
		if notifyID != "" {
			o.emit(event.NotifyDuplicate, env, func(e *event.Event) { e.NotificationID = notifyID; e.OutRefundNo = outRefundNo })
		}
		return o
	}
	if err != nil {
		if _, isAPI := wxpay.APIErrorCode(err); !isAPI {
			return o // transport trouble: the timer queries again
		}
		status = "FAILED"
	}
	refunds := slices.Clone(cur.Refunds)
	if refundID != "" {
		refunds[idx].RefundID = refundID
	}
	switch status {
	case wxpay.RefundStatusSuccess:
		refunds[idx].Status = status
		refunds[idx].DoneMs = env.Now.UnixMilli()
		o.Order.Refunds = refunds
		o.Order.RefundedFen += r.Amount
		o.Order.State = store.StateRefunded
		o.emit(event.OrderRefunded, env, func(e *event.Event) {
			e.NotificationID = notifyID
			e.OutRefundNo = outRefundNo
			e.RefundAmount = r.Amount
		})
	case wxpay.RefundStatusClosed, "FAILED":
		refunds[idx].Status = status
		refunds[idx].DoneMs = env.Now.UnixMilli()
		o.Order.Refunds = refunds
		o.Order.State = store.StatePaid
		if o.Order.RefundedFen > 0 {
			o.Order.State = store.StateRefunded
		}
		o.emit(event.OrderRefundFailed, env, func(e *event.Event) {
			e.NotificationID = notifyID
			e.OutRefundNo = outRefundNo
			e.RefundAmount = r.Amount
			e.Reason = status
			if err != nil {
				e.Reason, _ = wxpay.APIErrorCode(err)
			}
		})
	case wxpay.RefundStatusAbnormal:
		if r.Status != wxpay.RefundStatusAbnormal {
			refunds[idx].Status = wxpay.RefundStatusProcessing
			o.Order.Refunds = refunds
			o.Order.Alerts = append(slices.Clone(cur.Alerts), "refund "+outRefundNo+" ABNORMAL")
			o.emit(event.OrderRefundFailed, env, func(e *event.Event) {
				e.NotificationID = notifyID
				e.OutRefundNo = outRefundNo
				e.Reason = status
				e.Alert = "refund abnormal: needs action in the merchant portal"
			})
		}
	default: // PROCESSING: remember WeChat's refund id
		if refundID != "" && r.RefundID != refundID {
			o.Order.Refunds = refunds
			o.Write = true
		}
	}
	return o
}
