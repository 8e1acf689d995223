package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

// Message types of the envelope.
const (
	tPrepay       = "prepay"
	tGet          = "get"
	tPaid         = "paid"
	tRefundNotify = "refund_notified"
	tStartRefund  = "start_refund"
	tApplyAbn     = "apply_abnormal_refund"
	tReconcile    = "reconcile"
	tReserve      = "reserve"
	tSettle       = "settle"
	tPutSKU       = "put_sku"
	tGetSKU       = "get_sku"
	tHistory      = "history"
)

// envelope is what travels inside a wrapperspb.BytesValue.
type envelope struct {
	Type    string          `json:"t"`
	Payload json.RawMessage `json:"p"`
}

// stockReq is the payload of reserve and settle.
type stockReq struct {
	SKU    string `json:"sku"`
	OTN    string `json:"otn"`
	OpenID string `json:"openid"`
	Qty    int64  `json:"qty"`
	Fast   bool   `json:"fast,omitempty"`
	Sold   bool   `json:"sold,omitempty"`
}

// answer is the reply envelope.
type answer struct {
	Err     string `json:"err,omitempty"` // an errCode, or "internal: ..."
	Status  actors.Status
	Order   *store.Order          `json:"order,omitempty"`
	Exists  bool                  `json:"exists,omitempty"`
	RetryMs int64                 `json:"retry_ms,omitempty"`
	Reserve *actors.ReserveResult `json:"reserve,omitempty"`
	SKU     *actors.SKUView       `json:"sku,omitempty"`
	History []event.Event         `json:"history,omitempty"`
}

// The sentinels that cross the wire by name.
var errCodes = []struct {
	code string
	err  error
}{
	{"overloaded", actors.ErrOverloaded},
	{"timeout", actors.ErrTimeout},
	{"stopped", actors.ErrStopped},
	{"store", actors.ErrStore},
	{"unknown_sku", actors.ErrUnknownSKU},
	{"unavailable", actors.ErrUnavailable},
}

func errCode(err error) string {
	if err == nil {
		return ""
	}
	for _, c := range errCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal: " + err.Error()
}

func codeErr(shard, code string) error {
	if code == "" {
		return nil
	}
	for _, c := range errCodes {
		if c.code == code {
			return fmt.Errorf("shard %s: %w", shard, c.err)
		}
	}
	return fmt.Errorf("shard %s: %s", shard, code)
}

// encodeOrder wraps an order message; only the messages the ingress sends
// cross nodes (timers and call results stay with their order).
func encodeOrder(msg actors.OrderMessage) (envelope, error) {
	var t string
	switch msg.(type) {
	case *actors.Prepay:
		t = tPrepay
	case *actors.Get:
		t = tGet
	case *actors.PaymentNotified:
		t = tPaid
	case *actors.RefundNotified:
		t = tRefundNotify
	case *actors.StartRefund:
		t = tStartRefund
	case *actors.ApplyAbnormalRefund:
		t = tApplyAbn
	case *actors.Reconcile:
		t = tReconcile
	default:
		return envelope{}, fmt.Errorf("cluster: %T is not routed between nodes", msg)
	}
	b, err := json.Marshal(msg)
	return envelope{Type: t, Payload: b}, err
}

func decodeOrder(e envelope) (actors.OrderMessage, error) {
	var m actors.OrderMessage
	switch e.Type {
	case tPrepay:
		m = &actors.Prepay{}
	case tGet:
		m = &actors.Get{}
	case tPaid:
		m = &actors.PaymentNotified{Tx: wxpay.Transaction{}}
	case tRefundNotify:
		m = &actors.RefundNotified{}
	case tStartRefund:
		m = &actors.StartRefund{}
	case tApplyAbn:
		m = &actors.ApplyAbnormalRefund{}
	case tReconcile:
		m = &actors.Reconcile{}
	default:
		return nil, nil
	}
	return m, json.Unmarshal(e.Payload, m)
}

func replyAnswer(r actors.Reply, err error) answer {
	a := answer{Err: errCode(err), Status: r.Status, Exists: r.Exists, RetryMs: r.RetryAfter.Milliseconds()}
	if r.Exists || r.Order.OutTradeNo != "" {
		o := r.Order
		a.Order = &o
	}
	return a
}

func (a *answer) reply(shard string) (actors.Reply, error) {
	r := actors.Reply{Status: a.Status, Exists: a.Exists, RetryAfter: time.Duration(a.RetryMs) * time.Millisecond}
	if a.Order != nil {
		r.Order = *a.Order
	}
	err := codeErr(shard, a.Err)
	r.Err = err
	return r, err
}
