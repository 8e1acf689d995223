package actors

import (
	"time"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

// Messages to order actors. They are immutable values: whoever builds one
// does not change it after sending. Every message names its order so the
// manager can route it.

// OrderMessage is implemented by every message an order actor handles.
type OrderMessage interface{ orderKey() string }

// Prepay is a buyer's order request: reserve the SKU's stock, create the
// order durably, call WeChat's prepay and answer with the PREPAID order.
// The order actor runs the whole request, so requests for the same
// out_trade_no (an Idempotency-Key) are served one after the other: a
// replay with the same parameters answers the same order, one with other
// parameters StatusIdemReused.
type Prepay struct {
	OutTradeNo string
	OpenID     string
	SKU        string
	Quantity   int64
	IdemKey    string
	// ClientIP is the buyer's IP (empty: unknown); it is the order's
	// store.Order.PayerClientIP when this Prepay creates it, and no part
	// of what a replay must match.
	ClientIP string
	// Fast lets the SKU answer SoldOut from its published count without
	// a message to its actor (requests without an Idempotency-Key).
	Fast bool
}

// PrepayDone carries the prepay call's result to the order actor that
// started it: PrepayID on success, else Err with Code.
type PrepayDone struct {
	OutTradeNo string
	PrepayID   string
	Code       string // WeChat's code or a transport reason
	Micros     int64  // how long WeChat took
	// Definitive: WeChat refused and created nothing (the order fails).
	// Otherwise an error is an unknown outcome and the order stays CREATED.
	Definitive bool
	Err        error
}

// Get asks for the order's current record.
type Get struct{ OutTradeNo string }

// PaymentNotified carries a verified, decrypted TRANSACTION.* notification.
type PaymentNotified struct {
	Tx       wxpay.Transaction
	NotifyID string
}

// RefundNotified carries a verified, decrypted REFUND.* notification.
type RefundNotified struct {
	Notice   wxpay.RefundNotice
	NotifyID string
}

// StartRefund asks for a refund of a paid order. OutRefundNo names it
// (derived from the admin's Idempotency-Key); empty, the order numbers it.
type StartRefund struct {
	OutTradeNo  string
	OutRefundNo string
	Amount      int64
	Reason      string
}

// ApplyAbnormalRefund asks WeChat to pay an ABNORMAL refund another way
// (the buyer's card was closed): Request says where. The bank fields are
// secrets: never log the message.
type ApplyAbnormalRefund struct {
	OutTradeNo string
	Request    wxpay.AbnormalRefundRequest
}

// Reconcile asks the order to find out now what WeChat knows of it (a
// query, outside its schedule), because a reconciliation found WeChat's
// bill disagreeing: Reason says how. A payment found this way is applied
// like a query's, with an alert naming Reason. The reply comes once the
// query's outcome is committed.
type Reconcile struct {
	OutTradeNo string
	Reason     string
}

// Tick is the order's timer firing.
type Tick struct{ OutTradeNo string }

// QueryDone, CloseDone and RefundDone carry the results of WeChat calls an
// order actor started.
type QueryDone struct {
	OutTradeNo string
	Tx         wxpay.Transaction
	Err        error
	Reconcile  string // the query a Reconcile asked for: its reason
}

// CloseDone is the result of closing an order at WeChat.
type CloseDone struct {
	OutTradeNo string
	Err        error
}

// RefundDone is the result of a refund create, query (Query) or
// apply-abnormal (Apply) call.
type RefundDone struct {
	OutTradeNo  string
	OutRefundNo string
	Refund      wxpay.Refund
	Err         error
	Query       bool
	Apply       bool
}

// call is System.Request's envelope: the message and the channel its one
// reply goes to. A channel instead of a protoactor future saves each request
// a process-registry entry, a timer and their garbage.
type call struct {
	msg   OrderMessage
	reply chan *Reply // buffered (1): the actor never blocks answering
}

func (m *call) orderKey() string                { return m.msg.orderKey() }
func (m *Prepay) orderKey() string              { return m.OutTradeNo }
func (m *PrepayDone) orderKey() string          { return m.OutTradeNo }
func (m *Get) orderKey() string                 { return m.OutTradeNo }
func (m *PaymentNotified) orderKey() string     { return m.Tx.OutTradeNo }
func (m *RefundNotified) orderKey() string      { return m.Notice.OutTradeNo }
func (m *StartRefund) orderKey() string         { return m.OutTradeNo }
func (m *ApplyAbnormalRefund) orderKey() string { return m.OutTradeNo }
func (m *Tick) orderKey() string                { return m.OutTradeNo }
func (m *Reconcile) orderKey() string           { return m.OutTradeNo }
func (m *QueryDone) orderKey() string           { return m.OutTradeNo }
func (m *CloseDone) orderKey() string           { return m.OutTradeNo }
func (m *RefundDone) orderKey() string          { return m.OutTradeNo }

// Reply is an order actor's answer to a request.
type Reply struct {
	Status Status
	// Order is the record after the message (zero if none, and for
	// PaymentNotified and RefundNotified, whose replies carry the outcome
	// only).
	Order  store.Order
	Exists bool
	// RetryAfter is how long to wait before retrying (StatusBudget).
	RetryAfter time.Duration
	// Err is a store failure (nothing was acknowledged) or, for Prepay,
	// the WeChat call's error.
	Err error
}
