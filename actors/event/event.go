// Package event defines the order event: the record every transition and
// every notable refusal produces, written to the durable outbox with the
// state change, published to Kafka keyed by out_trade_no and stored in
// ClickHouse. The encoding is JSON with a schema version "v"; the schema is
// documented in docs/events.md and checked in as event.schema.json.
//
// Decode accepts only versions it knows: a consumer that meets a newer
// version sends it to its dead-letter topic rather than guessing.
package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/wxpayd/wxpayd/actors/jsonw"
)

// Version is the schema version this package writes.
const Version = 1

// Event types. The names are a contract with analysts and other tools.
const (
	OrderCreated         = "order.created"
	OrderPrepaid         = "order.prepaid"
	OrderPrepayFailed    = "order.prepay_failed"
	OrderPaid            = "order.paid"
	OrderClosed          = "order.closed"
	OrderRefundRequested = "order.refund_requested"
	OrderRefundFailed    = "order.refund_failed"
	OrderRefunded        = "order.refunded"
	// OrderRefundAbnormal: WeChat could not pay a refund back (the
	// buyer's card was closed, ...); it stays pending until the merchant
	// applies for it, and carries an alert.
	OrderRefundAbnormal = "order.refund_abnormal"
	// OrderAlert: something an operator must act on (a WeChat call that
	// no retry can fix, ...): alert says what.
	OrderAlert      = "order.alert"
	NotifyDuplicate = "notify.duplicate"
	NotifyRejected  = "notify.rejected"
	NotifyMismatch  = "notify.mismatch"
	// SKUUpdated records a catalogue change: Quantity is the new stock and
	// Amount the unit price; it has no out_trade_no.
	SKUUpdated = "sku.updated"
	// ReconcileDiscrepancy: the reconciliation of BillDate found wxpayd
	// and WeChat's bill disagreeing about an order or a refund (Reason is
	// the class); once per date, order, refund and class, whatever the
	// reruns. Its seq is 0: it is no transition of the order.
	ReconcileDiscrepancy = "reconcile.discrepancy"
	// ReconcileCompleted: the reconciliation of BillDate finished (one per
	// run of the date).
	ReconcileCompleted = "reconcile.completed"
	// ReconcileResolved: an admin resolved a discrepancy of BillDate by
	// hand (Reason is the admin's note); once per discrepancy, with the
	// fields of its reconcile.discrepancy. Its seq is 0.
	ReconcileResolved = "reconcile.resolved"
)

// Event is one order event. Amounts are in fen. Fields that do not apply to
// a type are zero and omitted.
type Event struct {
	V              int    `json:"v"`
	EventID        string `json:"event_id"`
	Type           string `json:"type"`
	OutTradeNo     string `json:"out_trade_no"`
	Seq            uint64 `json:"seq"`
	TimeMs         int64  `json:"ts_ms"`
	State          string `json:"state,omitempty"`
	SKU            string `json:"sku,omitempty"`
	Quantity       int64  `json:"quantity,omitempty"`
	OpenID         string `json:"openid,omitempty"`
	Amount         int64  `json:"amount,omitempty"`
	RefundAmount   int64  `json:"refund_amount,omitempty"`
	RefundedTotal  int64  `json:"refunded_total,omitempty"`
	TransactionID  string `json:"transaction_id,omitempty"`
	OutRefundNo    string `json:"out_refund_no,omitempty"`
	NotificationID string `json:"notification_id,omitempty"`
	PrepayMicros   int64  `json:"prepay_latency_us,omitempty"`
	PayMillis      int64  `json:"prepay_to_paid_ms,omitempty"`
	Reason         string `json:"reason,omitempty"`
	Alert          string `json:"alert,omitempty"`
	// ShopOrderID and Attach belong to orders a shop created through the
	// checkout API: its own order id and the attach it sent to WeChat.
	ShopOrderID string `json:"shop_order_id,omitempty"`
	Attach      string `json:"attach,omitempty"`
	// BillDate, WeChatAmount, WeChatState and Discrepancies belong to the
	// reconcile.* events: the bill's date (YYYY-MM-DD, Beijing time), the
	// bill's amount and state (交易状态 or 退款状态) beside wxpayd's Amount,
	// and how many discrepancies a run found.
	BillDate      string `json:"bill_date,omitempty"`
	WeChatAmount  int64  `json:"wechat_amount,omitempty"`
	WeChatState   string `json:"wechat_state,omitempty"`
	Discrepancies int64  `json:"discrepancies,omitempty"`
}

// ID returns the stable event id of an order's event: out_trade_no and seq.
// Redelivery carries the same id, which is what makes ClickHouse's
// deduplication exact.
func ID(outTradeNo string, seq uint64) string {
	return outTradeNo + ":" + strconv.FormatUint(seq, 10)
}

// ErrUnknownVersion: the event was written by a newer schema.
var ErrUnknownVersion = errors.New("event: unknown schema version")

// ErrInvalid: the bytes are not a valid event.
var ErrInvalid = errors.New("event: invalid")

// Encode returns the JSON encoding of e with the current version.
func Encode(e *Event) []byte { return Append(nil, e) }

// Append appends the JSON encoding of e, with the current version, to dst.
// It writes exactly what encoding/json's Marshal writes for an Event (the
// tests compare them), without reflection: it runs on every transition.
func Append(dst []byte, e *Event) []byte {
	e.V = Version
	o := jsonw.Open(dst)
	o.Int("v", int64(e.V))
	o.Str("event_id", e.EventID)
	o.Str("type", e.Type)
	o.Str("out_trade_no", e.OutTradeNo)
	o.Uint("seq", e.Seq)
	o.Int("ts_ms", e.TimeMs)
	o.StrOmit("state", e.State)
	o.StrOmit("sku", e.SKU)
	o.IntOmit("quantity", e.Quantity)
	o.StrOmit("openid", e.OpenID)
	o.IntOmit("amount", e.Amount)
	o.IntOmit("refund_amount", e.RefundAmount)
	o.IntOmit("refunded_total", e.RefundedTotal)
	o.StrOmit("transaction_id", e.TransactionID)
	o.StrOmit("out_refund_no", e.OutRefundNo)
	o.StrOmit("notification_id", e.NotificationID)
	o.IntOmit("prepay_latency_us", e.PrepayMicros)
	o.IntOmit("prepay_to_paid_ms", e.PayMillis)
	o.StrOmit("reason", e.Reason)
	o.StrOmit("alert", e.Alert)
	o.StrOmit("shop_order_id", e.ShopOrderID)
	o.StrOmit("attach", e.Attach)
	o.StrOmit("bill_date", e.BillDate)
	o.IntOmit("wechat_amount", e.WeChatAmount)
	o.StrOmit("wechat_state", e.WeChatState)
	o.IntOmit("discrepancies", e.Discrepancies)
	return o.Close()
}

// Decode parses an event and checks its version and required fields.
func Decode(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if e.V != Version {
		return e, fmt.Errorf("%w: v=%d", ErrUnknownVersion, e.V)
	}
	if e.EventID == "" || e.Type == "" || e.TimeMs <= 0 {
		return e, fmt.Errorf("%w: event_id, type and ts_ms are required", ErrInvalid)
	}
	return e, nil
}
