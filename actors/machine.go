package actors

import (
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
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
	callApplyAbnormal
)

// Outcome is what a transition decided.
type Outcome struct {
	Order  store.Order   // the new record (unchanged when Write is false)
	Write  bool          // the record changed: commit Order and Events
	Events []event.Event // events to write (each took the next seq)
	Status Status        // the answer to whoever sent the message
	Stock  stockEffect
	Call   callKind
	Refund *store.Refund // the refund a callRefund/callRefundQuery/callApplyAbnormal is about
	// Stall: WeChat refused a background call in a way a retry cannot
	// change (an alert was written); no timer is set until the next
	// message or restart.
	Stall bool
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
	StatusIdemReused                  // Prepay, StartRefund: the number's first request had other parameters
	StatusPending                     // StartRefund: sent, WeChat's answer unknown; it is retried and queried
)

// emit appends an event with the next seq and fills the common fields.
func (o *Outcome) emit(typ string, env Env, fill func(e *event.Event)) {
	o.Order.Seq++
	e := event.Event{
		EventID: event.ID(o.Order.OutTradeNo, o.Order.Seq), Type: typ, OutTradeNo: o.Order.OutTradeNo,
		Seq: o.Order.Seq, TimeMs: env.Now.UnixMilli(), State: string(o.Order.State), SKU: o.Order.SKU,
		Quantity: o.Order.Quantity, OpenID: o.Order.OpenID, Amount: o.Order.Total,
		TransactionID: o.Order.TransactionID, RefundedTotal: o.Order.RefundedFen,
		ShopOrderID: o.Order.ShopOrderID, Attach: o.Order.Attach,
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
		IdemKey: m.IdemKey, PayerClientIP: m.ClientIP, CreatedMs: env.Now.UnixMilli(), ExpiresMs: env.Now.Add(ttl).UnixMilli(),
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

// otherMerchant is the one check of "is this ours?" for what WeChat
// notifies, payments and refunds, APIv3 and APIv2 alike: it names the
// first of appid and mchid that is not this merchant's, or returns "".
// (Answers to wxpayd's own calls are checked by the client that made them.)
func otherMerchant(appID, mchID string, env Env) string {
	switch {
	case appID != env.AppID:
		return "appid"
	case mchID != env.MchID:
		return "mchid"
	}
	return ""
}

// matchTransaction checks a transaction against the order; it returns the
// reason of the first mismatch, or "".
func matchTransaction(cur *store.Order, tx *wxpay.Transaction, env Env) string {
	if why := otherMerchant(tx.AppID, tx.MchID, env); why != "" {
		return why
	}
	switch {
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

// Background calls (query, close, refund, refund query) run on a
// persisted schedule: the record's Queries counts the attempts of the
// current step and NextTickMs says when the next may run. tick writes both
// before the call goes out, so neither a crash nor passivation resets the
// backoff; a state change resets them (see resetSchedule).

// maxBackoff caps the spacing of background calls.
const maxBackoff = 10 * time.Minute

// backoff is the spacing after attempt n (1, 2, ...): base, 2·base, 4·base
// ... capped at maxBackoff, less up to a fifth, the jitter spread by order
// number so orders that failed together do not retry together.
func backoff(n int, base time.Duration, otn string) time.Duration {
	d := base
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	h := fnv.New32a()
	_, _ = h.Write([]byte(otn))
	_, _ = h.Write([]byte{byte(n)})
	return d - d/5*time.Duration(h.Sum32()%1000)/1000
}

// nextDue is when the order's timer should next fire; false when no
// background step is pending in its state.
func nextDue(o *store.Order, env Env) (time.Time, bool) {
	var due int64
	switch o.State {
	case store.StateCreated:
		due = o.CreatedMs + env.CloseGrace.Milliseconds()
	case store.StatePrepaid:
		due = min(o.PrepaidMs+env.QueryAfter.Milliseconds(), o.ExpiresMs)
	case store.StateRefunding:
		r := pendingRefund(o)
		if r == nil {
			return time.Time{}, false
		}
		due = r.CreatedMs + env.QueryAfter.Milliseconds()
	default:
		return time.Time{}, false
	}
	return time.UnixMilli(max(due, o.NextTickMs)), true
}

// tick is the order's timer: query an unpaid order, close it at its TTL,
// complete a refund; each attempt first moves the persisted schedule on.
func tick(cur store.Order, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	now := env.Now.UnixMilli()
	if due, ok := nextDue(&cur, env); !ok || now < due.UnixMilli() {
		return o
	}
	switch cur.State {
	case store.StateCreated:
		o.Call = callClose // the prepay never completed; nobody can pay it
	case store.StatePrepaid:
		if now >= cur.ExpiresMs {
			o.Call = callClose
			if cur.NextTickMs <= cur.ExpiresMs {
				o.Order.Queries = 0 // the first close: queries spaced the schedule so far
			}
		} else {
			o.Call = callQuery
		}
	case store.StateRefunding:
		rc := *pendingRefund(&cur)
		o.Refund = &rc
		o.Call = callRefundQuery
		if rc.RefundID == "" {
			// WeChat never confirmed the refund: send it again with the
			// same out_refund_no (WeChat refunds once per number).
			o.Call = callRefund
		}
	}
	o.Order.Queries++
	next := now + backoff(o.Order.Queries, env.QueryAfter, cur.OutTradeNo).Milliseconds()
	if o.Call == callQuery {
		next = min(next, cur.ExpiresMs) // the close at the TTL is not pushed back
	}
	o.Order.NextTickMs = next
	o.Write = true
	return o
}

// resetSchedule starts a new state's background steps from scratch.
func resetSchedule(cur *store.Order, out *Outcome) {
	if out.Write && out.Order.State != cur.State {
		out.Order.Queries, out.Order.NextTickMs = 0, 0
	}
}

// alert records a condition an operator must act on, once per reason.
func alert(o *Outcome, env Env, reason string) {
	msg := reason
	if slices.Contains(o.Order.Alerts, msg) {
		return
	}
	o.Order.Alerts = append(slices.Clone(o.Order.Alerts), msg)
	o.emit(event.OrderAlert, env, func(e *event.Event) { e.Alert = msg; e.Reason = reason })
}

// permanent tells whether a failed background call was refused in a way
// that repeating it cannot change: a signed 4xx answer other than 429
// (and other than the codes the caller handles itself).
func permanent(err error) (code string, ok bool) {
	code, definitive := client.Outcome(err)
	return code, definitive && code != wxpay.CodeFrequencyLimited && !errors.Is(err, client.ErrOverloaded) &&
		!errors.Is(err, client.ErrClosed)
}

// queried applies an active query's answer.
func queried(cur store.Order, m *QueryDone, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	if m.Err != nil {
		code, perm := permanent(m.Err)
		switch {
		case code == wxpay.CodeOrderNotExist && cur.State == store.StateCreated:
			return closed(cur, "not at wechat", env)
		case code == wxpay.CodeOrderNotExist:
		case perm:
			alert(&o, env, "query refused: "+code)
			o.Stall = true
		}
		return o // otherwise the schedule tick wrote retries it
	}
	switch m.Tx.TradeState {
	case wxpay.TradeStateSuccess, wxpay.TradeStateRefund:
		tx := m.Tx
		tx.TradeState = wxpay.TradeStateSuccess
		o := paid(cur, &tx, "", env)
		if m.Reconcile != "" && o.Order.State == store.StatePaid && cur.State != store.StatePaid {
			// WeChat's bill knew of a payment we had missed.
			msg := "paid found by reconciliation: " + m.Reconcile
			o.Order.Alerts = append(slices.Clone(o.Order.Alerts), msg)
			e := &o.Events[len(o.Events)-1]
			e.Alert = strings.TrimPrefix(e.Alert+"; "+msg, "; ")
			e.Reason = "reconcile"
		}
		return o
	case wxpay.TradeStateClosed, wxpay.TradeStateRevoked:
		if cur.State == store.StateCreated || cur.State == store.StatePrepaid {
			return closed(cur, "closed at wechat", env)
		}
	}
	return o
}

// closeDone applies the close call's answer. An unknown outcome (5xx,
// 429, timeout) waits for the next attempt of the schedule tick wrote; a
// refusal no retry can change stops the attempts with an alert.
func closeDone(cur store.Order, m *CloseDone, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	if cur.State != store.StateCreated && cur.State != store.StatePrepaid {
		return o
	}
	if m.Err == nil {
		return closed(cur, "ttl", env)
	}
	code, perm := permanent(m.Err)
	switch code {
	case wxpay.CodeOrderNotExist, wxpay.CodeOrderClosed:
		return closed(cur, "ttl", env)
	case wxpay.CodeOrderPaid, "ORDER_PAID", "TRADE_ERROR":
		// Paid while we were closing: find out by query.
		o.Call = callQuery
		return o
	}
	if perm {
		alert(&o, env, "close refused: "+code)
		o.Stall = true
	}
	return o
}

func closed(cur store.Order, reason string, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	o.Order.State = store.StateClosed
	o.Order.ClosedMs = env.Now.UnixMilli()
	o.Stock = stockRelease
	o.emit(event.OrderClosed, env, func(e *event.Event) { e.Reason = reason })
	return o
}

// pendingRefund is the refund whose outcome is not final: PROCESSING (or
// not yet confirmed by WeChat: no RefundID), or ABNORMAL, which WeChat ends
// once the merchant says where the money goes.
func pendingRefund(o *store.Order) *store.Refund {
	for i := range o.Refunds {
		switch o.Refunds[i].Status {
		case wxpay.RefundStatusProcessing, wxpay.RefundStatusAbnormal, "":
			return &o.Refunds[i]
		}
	}
	return nil
}

// refundStart moves a paid order to REFUNDING before WeChat is asked, so a
// crash after the call cannot lose the refund (the out_refund_no is
// recorded and reused). A StartRefund without an out_refund_no gets the
// order's next one; a repeat of a refund already made (same number, same
// amount) answers it as it stands, with another amount StatusIdemReused.
func refundStart(cur store.Order, m *StartRefund, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	no := m.OutRefundNo
	if no == "" {
		no = cur.OutTradeNo + "-R" + strconv.Itoa(len(cur.Refunds)+1)
	}
	for _, r := range cur.Refunds {
		if r.OutRefundNo == no {
			if r.Amount != m.Amount {
				o.Status = StatusIdemReused
			}
			return o
		}
	}
	if m.Amount <= 0 {
		o.Status = StatusBadRequest
		return o
	}
	if cur.State != store.StatePaid && cur.State != store.StateRefunded {
		o.Status = StatusConflict
		return o
	}
	if m.Amount > cur.Total-cur.RefundedFen { // by subtraction: no overflow
		o.Status = StatusBadRequest
		return o
	}
	r := store.Refund{
		OutRefundNo: no, Amount: m.Amount, Reason: m.Reason,
		Status: wxpay.RefundStatusProcessing, CreatedMs: env.Now.UnixMilli(),
	}
	o.Order.Refunds = append(slices.Clone(cur.Refunds), r)
	o.Order.State = store.StateRefunding
	o.Call = callRefund
	o.Refund = &r
	o.emit(event.OrderRefundRequested, env, func(e *event.Event) {
		e.RefundAmount = m.Amount
		e.OutRefundNo = no
		e.Reason = m.Reason
	})
	return o
}

// refundNotified applies a REFUND.* notification: another merchant's is a
// mismatch, recorded and refused like a payment's.
func refundNotified(cur store.Order, n *wxpay.RefundNotice, notifyID string, env Env) Outcome {
	appID := n.AppID
	if appID == "" {
		appID = env.AppID // APIv3 refund notifications name no appid
	}
	if why := otherMerchant(appID, n.MchID, env); why != "" {
		o := Outcome{Order: cur, Status: StatusMismatch}
		o.emit(event.NotifyMismatch, env, func(e *event.Event) {
			e.NotificationID = notifyID
			e.OutRefundNo = n.OutRefundNo
			e.Reason = why
			e.Alert = "refund notification for another merchant: " + why
		})
		return o
	}
	return refundResult(cur, refundOutcome{outRefundNo: n.OutRefundNo, status: n.RefundStatus,
		refundID: n.RefundID, notifyID: notifyID, amount: n.Amount.Refund}, env)
}

// refundOutcome is a refund's news: from the create or query call, or a
// REFUND.* notification.
type refundOutcome struct {
	outRefundNo, status, refundID, notifyID string
	amount                                  int64 // the notification's refund amount (0: not stated)
	err                                     error
	query                                   bool // err came from a refund query
	apply                                   bool // from apply-abnormal: an error changes nothing
}

// refundResult applies a refund's outcome. Only WeChat's definite answers
// end a refund: SUCCESS, CLOSED, or a create refused in a way that made no
// refund (a signed 4xx other than 429). Anything else leaves it pending:
// tick sends it again with the same out_refund_no, or queries it, on the
// backoff schedule.
func refundResult(cur store.Order, n refundOutcome, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	idx := slices.IndexFunc(cur.Refunds, func(r store.Refund) bool { return r.OutRefundNo == n.outRefundNo })
	if idx < 0 || n.notifyID != "" && n.amount != 0 && n.amount != cur.Refunds[idx].Amount {
		o.Status = StatusNotFound
		if n.notifyID != "" {
			why, msg := "out_refund_no", "refund notification for an unknown refund"
			if idx >= 0 {
				why, msg = "amount.refund", "refund notification does not match the refund's amount"
			}
			o.Status = StatusMismatch
			o.emit(event.NotifyMismatch, env, func(e *event.Event) {
				e.NotificationID = n.notifyID
				e.OutRefundNo = n.outRefundNo
				e.Reason = why
				e.Alert = msg
			})
		}
		return o
	}
	r := cur.Refunds[idx]
	if r.Status == wxpay.RefundStatusSuccess || r.Status == wxpay.RefundStatusClosed || r.Status == refundFailed {
		if n.notifyID != "" {
			o.emit(event.NotifyDuplicate, env, func(e *event.Event) { e.NotificationID = n.notifyID; e.OutRefundNo = n.outRefundNo })
		}
		return o
	}
	status := n.status
	if n.err != nil && n.apply {
		return o // the admin hears WeChat's answer; the refund stays ABNORMAL
	}
	if n.err != nil {
		code, perm := permanent(n.err)
		switch {
		case !perm || n.query && code == wxpay.CodeResourceNotExists:
			// Unknown, or not (yet) at WeChat: the schedule retries.
			return o
		case n.query:
			alert(&o, env, "refund query refused: "+code)
			o.Stall = true
			return o
		}
		status = refundFailed // WeChat refused the create: no refund exists
	}
	refunds := slices.Clone(cur.Refunds)
	if n.refundID != "" {
		refunds[idx].RefundID = n.refundID
	}
	switch status {
	case wxpay.RefundStatusSuccess:
		refunds[idx].Status = status
		refunds[idx].DoneMs = env.Now.UnixMilli()
		o.Order.Refunds = refunds
		o.Order.RefundedFen += r.Amount
		o.Order.State = store.StateRefunded
		o.emit(event.OrderRefunded, env, func(e *event.Event) {
			e.NotificationID = n.notifyID
			e.OutRefundNo = n.outRefundNo
			e.RefundAmount = r.Amount
		})
	case wxpay.RefundStatusClosed, refundFailed:
		refunds[idx].Status = status
		refunds[idx].DoneMs = env.Now.UnixMilli()
		o.Order.Refunds = refunds
		o.Order.State = store.StatePaid
		if o.Order.RefundedFen > 0 {
			o.Order.State = store.StateRefunded
		}
		o.emit(event.OrderRefundFailed, env, func(e *event.Event) {
			e.NotificationID = n.notifyID
			e.OutRefundNo = n.outRefundNo
			e.RefundAmount = r.Amount
			e.Reason = status
			if n.err != nil {
				e.Reason, _ = wxpay.APIErrorCode(n.err)
			}
		})
	case wxpay.RefundStatusAbnormal:
		if r.Status == wxpay.RefundStatusAbnormal {
			if n.refundID != "" && r.RefundID != n.refundID {
				o.Order.Refunds = refunds
				o.Write = true
			}
			return o // recorded once; kept until WeChat's status changes
		}
		refunds[idx].Status = status
		o.Order.Refunds = refunds
		o.Order.Alerts = append(slices.Clone(cur.Alerts), "refund "+n.outRefundNo+" ABNORMAL")
		o.emit(event.OrderRefundAbnormal, env, func(e *event.Event) {
			e.NotificationID = n.notifyID
			e.OutRefundNo = n.outRefundNo
			e.RefundAmount = r.Amount
			e.Reason = status
			e.Alert = "refund abnormal: apply for it through the admin API or the merchant portal"
		})
	default: // PROCESSING: WeChat has it; remember its refund id
		if r.Status == wxpay.RefundStatusAbnormal && !n.apply && !n.query && n.notifyID == "" {
			// The create's answer arriving after WeChat already reported
			// ABNORMAL is older news: keep ABNORMAL, take the refund id.
			refunds[idx].Status = wxpay.RefundStatusAbnormal
		} else {
			refunds[idx].Status = wxpay.RefundStatusProcessing
		}
		if refunds[idx].Status != r.Status || n.refundID != "" && r.RefundID != n.refundID {
			o.Order.Refunds = refunds
			o.Write = true
		}
	}
	return o
}

// applyAbnormal starts WeChat's apply-abnormal-refund for an ABNORMAL
// refund; the answer comes back as a RefundDone with Apply set.
func applyAbnormal(cur store.Order, m *ApplyAbnormalRefund, env Env) Outcome {
	o := Outcome{Order: cur, Status: StatusOK}
	i := slices.IndexFunc(cur.Refunds, func(r store.Refund) bool { return r.OutRefundNo == m.Request.OutRefundNo })
	switch {
	case i < 0:
		o.Status = StatusNotFound
	case cur.Refunds[i].Status != wxpay.RefundStatusAbnormal || cur.Refunds[i].RefundID == "":
		o.Status = StatusConflict
	default:
		r := cur.Refunds[i]
		o.Refund = &r
		o.Call = callApplyAbnormal
	}
	return o
}

// refundFailed is a refund WeChat refused to create (wxpayd's own status).
const refundFailed = "FAILED"
