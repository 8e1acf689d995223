package store

import (
	"encoding/json"

	"github.com/wxpayd/wxpayd/actors/jsonw"
)

// Records kept in the store. They are JSON-encoded (a few hundred bytes for
// an order record), which keeps them readable with any tool.

// State is an order state. The names are a contract (API, events, analysts).
type State string

// Order states of the design's state machine.
const (
	StateCreated   State = "CREATED"   // stock reserved, prepay in flight
	StatePrepaid   State = "PREPAID"   // prepay_id held (valid 2 h)
	StatePaid      State = "PAID"      // money received
	StateClosed    State = "CLOSED"    // unpaid past the TTL, closed at WeChat, stock released
	StateFailed    State = "FAILED"    // prepay refused, stock released
	StateRefunding State = "REFUNDING" // a refund is in flight
	StateRefunded  State = "REFUNDED"  // at least one refund completed; RefundedFen keeps the total
)

// Final reports whether no timer or WeChat call is pending in this state.
func (s State) Final() bool {
	switch s {
	case StatePaid, StateClosed, StateFailed, StateRefunded:
		return true
	}
	return false
}

// Refund is one refund of an order.
type Refund struct {
	OutRefundNo string `json:"out_refund_no"`
	Amount      int64  `json:"amount"`
	Reason      string `json:"reason,omitempty"`
	Status      string `json:"status"` // PROCESSING, SUCCESS, CLOSED, ABNORMAL, FAILED
	RefundID    string `json:"refund_id,omitempty"`
	CreatedMs   int64  `json:"created_ms"`
	DoneMs      int64  `json:"done_ms,omitempty"`
}

// Order is the durable record of one order, owned by its order actor.
type Order struct {
	OutTradeNo  string `json:"out_trade_no"`
	Seq         uint64 `json:"seq"` // seq of the last event
	State       State  `json:"state"`
	OpenID      string `json:"openid"`
	SKU         string `json:"sku"`
	Description string `json:"description"`
	Quantity    int64  `json:"quantity"`
	Total       int64  `json:"total"` // fen
	Currency    string `json:"currency"`
	IdemKey     string `json:"idempotency_key,omitempty"`
	// PayerClientIP is the buyer's IP as the order's creator saw it, sent
	// to WeChat with every prepay of the order (APIv3
	// scene_info.payer_client_ip, APIv2 spbill_create_ip); empty: not
	// known (APIv2 then sends the client's configured address, APIv3 no
	// scene_info).
	PayerClientIP string `json:"payer_client_ip,omitempty"`

	// An order a shop created through the checkout API (actors.Checkout)
	// has no SKU and holds no stock: the shop's own order id, its attach
	// (sent to WeChat, echoed in notifications), its line items (sent as
	// the prepay's goods_detail) and the fingerprint of the request that
	// created it, which a replay must match.
	ShopOrderID string     `json:"shop_order_id,omitempty"`
	Attach      string     `json:"attach,omitempty"`
	LineItems   []LineItem `json:"line_items,omitempty"`
	RequestHash string     `json:"request_hash,omitempty"`

	PrepayID      string `json:"prepay_id,omitempty"`
	PrepayMicros  int64  `json:"prepay_latency_us,omitempty"`
	FailCode      string `json:"fail_code,omitempty"`
	TransactionID string `json:"transaction_id,omitempty"`

	CreatedMs  int64 `json:"created_ms"`
	PrepaidMs  int64 `json:"prepaid_ms,omitempty"`
	PaidMs     int64 `json:"paid_ms,omitempty"`
	ClosedMs   int64 `json:"closed_ms,omitempty"`
	ExpiresMs  int64 `json:"expires_ms"`             // order TTL: close at WeChat after this
	NextTickMs int64 `json:"next_tick_ms,omitempty"` // the next background WeChat call waits until then (0: none made in this state)
	Queries    int   `json:"queries,omitempty"`      // background calls made for the current step (backoff); reset when the state changes

	RefundedFen int64    `json:"refunded,omitempty"`
	Refunds     []Refund `json:"refunds,omitempty"`

	// NotifyIDs keeps the last notification ids applied (bounded), a record
	// for operators; duplicates are recognised by the order's state.
	NotifyIDs []string `json:"notify_ids,omitempty"`
	Alerts    []string `json:"alerts,omitempty"`
}

// LineItem is one line of a shop's order: what the buyer pays for, as the
// shop priced it. Quantity × UnitPrice over the lines is the order total.
type LineItem struct {
	SKU       string `json:"sku"`
	Name      string `json:"name,omitempty"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unit_price"` // fen
}

// SKU is a catalogue entry: what an admin set. Counts are derived from
// reservations, so they cannot drift from the orders.
type SKU struct {
	SKU           string `json:"sku"`
	Description   string `json:"description"`
	Price         int64  `json:"price"` // fen per unit
	Stock         int64  `json:"stock"`
	PerBuyerLimit int64  `json:"per_buyer_limit"` // 0: no limit
	UpdatedMs     int64  `json:"updated_ms"`
}

// Reservation is one order's hold on a SKU's stock, written in the same
// durable write as the order's transition: created with CREATED, marked sold
// with PAID, deleted with CLOSED or FAILED. On start an inventory actor
// rebuilds its counts from these.
type Reservation struct {
	OpenID   string `json:"openid"`
	Quantity int64  `json:"quantity"`
	Sold     bool   `json:"sold,omitempty"`
	// HeldMs is set when the SKU's owner made the reservation durable
	// itself for an order on another node (cluster mode); such holds are
	// settled by release/commit messages or reconciled with the order's
	// node. Zero for reservations written with the order.
	HeldMs int64 `json:"held_ms,omitempty"`
}

// The records written on every transition are encoded without reflection;
// each appender writes exactly what encoding/json's Marshal writes for the
// struct (records_test.go compares them), so reading with encoding/json
// stays correct.

func appendOrder(dst []byte, r *Order) []byte {
	o := jsonw.Open(dst)
	o.Str("out_trade_no", r.OutTradeNo)
	o.Uint("seq", r.Seq)
	o.Str("state", string(r.State))
	o.Str("openid", r.OpenID)
	o.Str("sku", r.SKU)
	o.Str("description", r.Description)
	o.Int("quantity", r.Quantity)
	o.Int("total", r.Total)
	o.Str("currency", r.Currency)
	o.StrOmit("idempotency_key", r.IdemKey)
	o.StrOmit("payer_client_ip", r.PayerClientIP)
	o.StrOmit("shop_order_id", r.ShopOrderID)
	o.StrOmit("attach", r.Attach)
	if len(r.LineItems) > 0 {
		o.Raw("line_items", func(b []byte) []byte {
			b = append(b, '[')
			for i := range r.LineItems {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendLineItem(b, &r.LineItems[i])
			}
			return append(b, ']')
		})
	}
	o.StrOmit("request_hash", r.RequestHash)
	o.StrOmit("prepay_id", r.PrepayID)
	o.IntOmit("prepay_latency_us", r.PrepayMicros)
	o.StrOmit("fail_code", r.FailCode)
	o.StrOmit("transaction_id", r.TransactionID)
	o.Int("created_ms", r.CreatedMs)
	o.IntOmit("prepaid_ms", r.PrepaidMs)
	o.IntOmit("paid_ms", r.PaidMs)
	o.IntOmit("closed_ms", r.ClosedMs)
	o.Int("expires_ms", r.ExpiresMs)
	o.IntOmit("next_tick_ms", r.NextTickMs)
	o.IntOmit("queries", int64(r.Queries))
	o.IntOmit("refunded", r.RefundedFen)
	if len(r.Refunds) > 0 {
		o.Raw("refunds", func(b []byte) []byte {
			b = append(b, '[')
			for i := range r.Refunds {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendRefund(b, &r.Refunds[i])
			}
			return append(b, ']')
		})
	}
	o.StrsOmit("notify_ids", r.NotifyIDs)
	o.StrsOmit("alerts", r.Alerts)
	return o.Close()
}

func appendRefund(dst []byte, r *Refund) []byte {
	o := jsonw.Open(dst)
	o.Str("out_refund_no", r.OutRefundNo)
	o.Int("amount", r.Amount)
	o.StrOmit("reason", r.Reason)
	o.Str("status", r.Status)
	o.StrOmit("refund_id", r.RefundID)
	o.Int("created_ms", r.CreatedMs)
	o.IntOmit("done_ms", r.DoneMs)
	return o.Close()
}

func appendLineItem(dst []byte, l *LineItem) []byte {
	o := jsonw.Open(dst)
	o.Str("sku", l.SKU)
	o.StrOmit("name", l.Name)
	o.Int("quantity", l.Quantity)
	o.Int("unit_price", l.UnitPrice)
	return o.Close()
}

func appendReservation(dst []byte, r *Reservation) []byte {
	o := jsonw.Open(dst)
	o.Str("openid", r.OpenID)
	o.Int("quantity", r.Quantity)
	o.BoolOmit("sold", r.Sold)
	o.IntOmit("held_ms", r.HeldMs)
	return o.Close()
}

func appendSKU(dst []byte, k *SKU) []byte {
	o := jsonw.Open(dst)
	o.Str("sku", k.SKU)
	o.Str("description", k.Description)
	o.Int("price", k.Price)
	o.Int("stock", k.Stock)
	o.Int("per_buyer_limit", k.PerBuyerLimit)
	o.Int("updated_ms", k.UpdatedMs)
	return o.Close()
}

// decodeOrder reads an order record. Records as appendOrder writes them
// (without refunds, line items and escaped characters: nearly all) take a fast path
// that skips encoding/json's reflection, a twentieth of a passivated
// order's wake-up; anything else goes to encoding/json, so every input
// decodes exactly as json.Unmarshal would (records_test.go holds the fast
// path to that).
func decodeOrder(b []byte, o *Order) error {
	var fast Order
	if jsonw.ScanFlat(b, func(key []byte, v jsonw.Value) bool { return fast.setField(key, v) }) {
		*o = fast
		return nil
	}
	return json.Unmarshal(b, o)
}

// setField sets the field named key from v; false for a name or a kind the
// fast path does not take.
func (o *Order) setField(key []byte, v jsonw.Value) bool {
	str := func(dst *string) bool {
		if v.Kind != jsonw.KindString {
			return false
		}
		*dst = v.Str()
		return true
	}
	i64 := func(dst *int64) bool {
		if v.Kind != jsonw.KindInt {
			return false
		}
		n, ok := v.Int64()
		*dst = n
		return ok
	}
	strs := func(dst *[]string) bool {
		if v.Kind != jsonw.KindStrings {
			return false
		}
		*dst = v.Strings()
		return true
	}
	switch string(key) {
	case "out_trade_no":
		return str(&o.OutTradeNo)
	case "seq":
		if v.Kind != jsonw.KindInt {
			return false
		}
		n, ok := v.Uint64()
		o.Seq = n
		return ok
	case "state":
		var s string
		ok := str(&s)
		o.State = State(s)
		return ok
	case "openid":
		return str(&o.OpenID)
	case "sku":
		return str(&o.SKU)
	case "description":
		return str(&o.Description)
	case "quantity":
		return i64(&o.Quantity)
	case "total":
		return i64(&o.Total)
	case "currency":
		return str(&o.Currency)
	case "idempotency_key":
		return str(&o.IdemKey)
	case "payer_client_ip":
		return str(&o.PayerClientIP)
	case "shop_order_id":
		return str(&o.ShopOrderID)
	case "attach":
		return str(&o.Attach)
	case "request_hash":
		return str(&o.RequestHash)
	case "prepay_id":
		return str(&o.PrepayID)
	case "prepay_latency_us":
		return i64(&o.PrepayMicros)
	case "fail_code":
		return str(&o.FailCode)
	case "transaction_id":
		return str(&o.TransactionID)
	case "created_ms":
		return i64(&o.CreatedMs)
	case "prepaid_ms":
		return i64(&o.PrepaidMs)
	case "paid_ms":
		return i64(&o.PaidMs)
	case "closed_ms":
		return i64(&o.ClosedMs)
	case "expires_ms":
		return i64(&o.ExpiresMs)
	case "next_tick_ms":
		return i64(&o.NextTickMs)
	case "queries":
		var n int64
		ok := i64(&n)
		o.Queries = int(n)
		return ok && int64(int(n)) == n
	case "refunded":
		return i64(&o.RefundedFen)
	case "notify_ids":
		return strs(&o.NotifyIDs)
	case "alerts":
		return strs(&o.Alerts)
	}
	return false
}
