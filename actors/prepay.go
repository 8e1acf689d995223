package actors

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

// A buyer's order, start to finish, in its order actor: reserve the stock,
// take a token of the merchant's prepay budget, commit CREATED with the
// reservation, call WeChat on the prepay executor, commit the outcome
// (PREPAID, FAILED, or nothing when it is unknown) and answer. Every
// request for the same out_trade_no waits in this actor's mailbox until
// the one before it is done, so a replayed Idempotency-Key can neither
// reserve twice nor create an order other than the one it reserved for.

// prepayWaiter is a requester waiting for the prepay call in flight.
type prepayWaiter struct {
	ch     chan *Reply
	status Status // StatusCreated for the request that created the order
}

// prepay handles a Prepay message.
func (a *orderActor) prepay(m *Prepay, env Env) {
	if a.exists {
		a.replay(m, env)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.sys.cfg.RequestTimeout)
	res, err := a.sys.inventory.reserve(ctx, &reserveMsg{otn: m.OutTradeNo, openid: m.OpenID, qty: m.Quantity}, m.SKU, m.Fast)
	cancel()
	if err != nil {
		a.respond(&Reply{Err: err})
		return
	}
	switch res.Status {
	case SoldOut:
		a.respond(&Reply{Status: StatusSoldOut})
		return
	case LimitExceeded:
		a.respond(&Reply{Status: StatusLimitExceeded})
		return
	case UnknownSKU:
		a.respond(&Reply{Status: StatusUnknownSKU})
		return
	}
	// From here on the units are held for this order number: every way
	// out that writes no order gives them back.
	wait, ok := a.admit()
	if !ok {
		a.sys.inventory.release(m.SKU, m.OutTradeNo)
		a.respond(&Reply{Status: StatusBudget, RetryAfter: wait})
		return
	}
	out := create(m, &res.SKU, a.sys.cfg.OrderTTL, env)
	if err := a.commit(m, &out); err != nil {
		a.sys.inventory.release(m.SKU, m.OutTradeNo)
		a.sys.metrics.StoreErrors.Add(1)
		a.respond(&Reply{Err: fmt.Errorf("%w: %s: %w", ErrStore, a.key, err)})
		return
	}
	a.order, a.exists = out.Order, true
	a.startPrepay(wait, StatusCreated, env)
}

// replay answers a Prepay for an order that exists.
func (a *orderActor) replay(m *Prepay, env Env) {
	o := &a.order
	switch {
	case o.OpenID != m.OpenID:
		// Another buyer's order number: say nothing about it.
		a.respond(&Reply{Status: StatusConflict})
		return
	case !sameRequest(o, m):
		a.respond(&Reply{Status: StatusIdemReused})
		return
	}
	a.resume(env)
}

// resume answers a replayed request (a Prepay or a Checkout) that asks for
// what the order holds: the order as it stands, the answer of the prepay
// call in flight, or a new prepay call when the last one's outcome is
// unknown.
func (a *orderActor) resume(env Env) {
	o := &a.order
	switch {
	case o.State != store.StateCreated:
		a.respond(&Reply{Status: StatusOK, Order: *o, Exists: true})
		return
	case a.prepaying:
		// The same request is being served: share its answer.
		a.prepayWaiters = append(a.prepayWaiters, prepayWaiter{ch: a.reply, status: StatusOK})
		a.reply = nil
		return
	case a.inflight > 0:
		// Its timer is closing it at WeChat: the answer says CREATED.
		a.respond(&Reply{Status: StatusOK, Order: *o, Exists: true})
		return
	}
	// An earlier prepay's outcome is unknown (or the process restarted
	// since): ask again with the same out_trade_no and parameters; WeChat
	// answers the prepay_id it already made, if any.
	wait, ok := a.admit()
	if !ok {
		a.respond(&Reply{Status: StatusBudget, RetryAfter: wait})
		return
	}
	a.startPrepay(wait, StatusOK, env)
}

// admit takes a prepay budget token and checks that the prepay executor
// has room, before anything is written.
func (a *orderActor) admit() (time.Duration, bool) {
	if a.sys.prepays.full() {
		return time.Second, false
	}
	return a.sys.budget.reserve()
}

// startPrepay sends the order's prepay to WeChat after wait (the budget's
// pacing) and parks the requester until PrepayDone. If the executor is
// full after all, the requester gets ErrOverloaded and the order waits
// for a replay or its close.
func (a *orderActor) startPrepay(wait time.Duration, status Status, env Env) {
	s, cfg, o := a.sys, &a.sys.cfg, &a.order
	req := &wxpay.PrepayRequest{
		AppID: cfg.AppID, MchID: cfg.MchID, Description: truncateUTF8(o.Description, 127),
		OutTradeNo: o.OutTradeNo, TimeExpire: rfc3339(o.ExpiresMs), Attach: o.Attach, NotifyURL: cfg.NotifyURL,
		Amount: wxpay.Amount{Total: o.Total, Currency: "CNY"}, Payer: wxpay.Payer{OpenID: o.OpenID},
		Detail: goodsDetail(o.LineItems),
	}
	if o.PayerClientIP != "" {
		// The creator's IP, on every call of this order: a retried prepay
		// asks for exactly what the first one did.
		req.SceneInfo = &wxpay.SceneInfo{PayerClientIP: o.PayerClientIP}
	}
	timeout := cfg.PrepayTimeout
	ok := s.prepays.submit(func() {
		if wait > 0 {
			time.Sleep(wait)
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		start := time.Now()
		resp, err := s.wechat.Prepay(ctx, req)
		cancel()
		done := &PrepayDone{OutTradeNo: req.OutTradeNo, Micros: time.Since(start).Microseconds(), Err: err}
		if err == nil {
			done.PrepayID = resp.PrepayID
		} else {
			done.Code, done.Definitive = prepayRefused(err)
		}
		s.deliver(done)
	})
	if !ok {
		a.respond(&Reply{Err: ErrOverloaded})
		a.reschedule(env)
		return
	}
	a.inflight++
	a.prepaying = true
	a.prepayWaiters = append(a.prepayWaiters, prepayWaiter{ch: a.reply, status: status})
	a.reply = nil
}

// answerPrepay answers everyone waiting for the prepay call.
func (a *orderActor) answerPrepay(m *PrepayDone) {
	for _, w := range a.prepayWaiters {
		r := &Reply{Status: w.status, Order: a.order, Exists: true, Err: m.Err}
		if a.order.State == store.StateCreated && m.Err == nil {
			r.Status = StatusConflict // cannot happen: a prepay_id moves CREATED on
		}
		answer(w.ch, r)
	}
	a.prepayWaiters = a.prepayWaiters[:0]
}

// prepayRefused tells whether a failed prepay created nothing at WeChat
// and never will with these parameters (the order fails), or its outcome
// is unknown. FREQUENCY_LIMITED created nothing, but the same request may
// succeed later: it keeps the order for a replay, like an unknown outcome.
func prepayRefused(err error) (code string, definitive bool) {
	code, definitive = client.Outcome(err)
	if code == wxpay.CodeFrequencyLimited || errors.Is(err, client.ErrOverloaded) || errors.Is(err, client.ErrClosed) {
		return code, false
	}
	return code, definitive
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// beijing is WeChat's time zone (UTC+8, no daylight saving).
var beijing = time.FixedZone("CST", 8*3600)

func rfc3339(ms int64) string {
	return time.UnixMilli(ms).In(beijing).Format(time.RFC3339)
}
