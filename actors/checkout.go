package actors

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

// A shop's order, start to finish, in its order actor: the shop's backend
// owns the cart and the price and asks for an order to pay (Checkout). It
// runs as a buyer's Prepay does (prepay.go), without stock: take a token of
// the merchant's prepay budget, commit CREATED, call WeChat on the prepay
// executor, commit the outcome and answer. From then on the order is like
// any other: the same state machine, timers, notifications, refunds and
// events, which carry the shop's order id and attach.
//
// The order number is derived from the shop's order id (the ingress does
// it), so every request for one shop order lands in one actor, one after
// the other: the first creates the order, a replay with the same fields
// answers it, one with other fields gets StatusIdemReused.

// Checkout asks for an order a shop priced itself: no SKU, no stock. The
// ingress has checked every field (lengths, charset, amount bounds, line
// items summing to Amount); the actor refuses only what would make a
// broken order (StatusBadRequest).
type Checkout struct {
	OutTradeNo  string
	ShopOrderID string
	OpenID      string
	Amount      int64 // fen
	Description string
	Attach      string
	LineItems   []store.LineItem
	// ExpiresIn is the unpaid order's life (its time_expire at WeChat);
	// 0 takes Config.OrderTTL. At least MinCheckoutTTL.
	ExpiresIn time.Duration
	// ClientIP is the buyer's IP as the shop saw it (empty: unknown), kept
	// as the order's PayerClientIP; not part of what a replay must match.
	ClientIP string
}

func (m *Checkout) orderKey() string { return m.OutTradeNo }

// MinCheckoutTTL is the shortest ExpiresIn: WeChat's time_expire is at
// least a minute after the prepay.
const MinCheckoutTTL = time.Minute

// checkout handles a Checkout message.
func (a *orderActor) checkout(m *Checkout, env Env) {
	if a.exists {
		a.replayCheckout(m, env)
		return
	}
	if m.Amount <= 0 || m.OpenID == "" || m.ShopOrderID == "" || m.Description == "" ||
		m.ExpiresIn != 0 && m.ExpiresIn < MinCheckoutTTL {
		a.respond(&Reply{Status: StatusBadRequest})
		return
	}
	wait, ok := a.admit()
	if !ok {
		a.respond(&Reply{Status: StatusBudget, RetryAfter: wait})
		return
	}
	ttl := a.sys.cfg.OrderTTL
	if m.ExpiresIn > 0 {
		ttl = m.ExpiresIn
	}
	out := createCheckout(m, ttl, env)
	if err := a.commit(m, &out); err != nil {
		a.sys.metrics.StoreErrors.Add(1)
		a.respond(&Reply{Err: fmt.Errorf("%w: %s: %w", ErrStore, a.key, err)})
		return
	}
	a.order, a.exists = out.Order, true
	a.startPrepay(wait, StatusCreated, env)
}

// replayCheckout answers a Checkout for an order that exists.
func (a *orderActor) replayCheckout(m *Checkout, env Env) {
	o := &a.order
	switch {
	case o.ShopOrderID == "" || o.ShopOrderID != m.ShopOrderID:
		// Not this shop order's number (a buyer's order): say nothing.
		a.respond(&Reply{Status: StatusConflict})
		return
	case o.RequestHash != checkoutHash(m):
		a.respond(&Reply{Status: StatusIdemReused})
		return
	}
	a.resume(env)
}

// createCheckout applies a Checkout to a record that does not exist yet:
// the order as the shop priced it, expiring after ttl.
func createCheckout(m *Checkout, ttl time.Duration, env Env) Outcome {
	o := Outcome{Order: store.Order{
		OutTradeNo: m.OutTradeNo, State: store.StateCreated, OpenID: m.OpenID, Description: m.Description,
		Total: m.Amount, Currency: "CNY", ShopOrderID: m.ShopOrderID, Attach: m.Attach,
		LineItems: slices.Clone(m.LineItems), RequestHash: checkoutHash(m), PayerClientIP: m.ClientIP,
		CreatedMs: env.Now.UnixMilli(), ExpiresMs: env.Now.Add(ttl).UnixMilli(),
	}}
	o.emit(event.OrderCreated, env, nil)
	o.Status = StatusCreated
	return o
}

// checkoutHash is the fingerprint of what a Checkout asks for: every field
// but the order number and the buyer's IP (a retry may come by another
// route), each length-prefixed so no two requests share an
// encoding. A replay must match it exactly (ExpiresIn as sent, not the
// expiry it led to: a replay an hour later asks for the same thing).
func checkoutHash(m *Checkout) string {
	h := sha256.New()
	var b []byte
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	num := func(n int64) { b = binary.BigEndian.AppendUint64(b, uint64(n)) }
	b = append(b, 1) // version of this encoding
	str(m.ShopOrderID)
	str(m.OpenID)
	num(m.Amount)
	str(m.Description)
	str(m.Attach)
	num(int64(m.ExpiresIn / time.Second))
	num(int64(len(m.LineItems)))
	for _, l := range m.LineItems {
		str(l.SKU)
		str(l.Name)
		num(l.Quantity)
		num(l.UnitPrice)
	}
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// goodsDetail is the prepay's detail for a shop's line items: WeChat's
// goods_detail, or nil without line items.
func goodsDetail(items []store.LineItem) *wxpay.Detail {
	if len(items) == 0 {
		return nil
	}
	d := &wxpay.Detail{GoodsDetail: make([]wxpay.GoodsDetail, len(items))}
	for i, l := range items {
		d.GoodsDetail[i] = wxpay.GoodsDetail{MerchantGoodsID: l.SKU, GoodsName: l.Name, Quantity: l.Quantity, UnitPrice: l.UnitPrice}
	}
	return d
}
