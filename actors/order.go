package actors

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

// orderActor owns one order: it loads the record on start, runs the state
// machine for each message, commits the outcome durably, and only then
// answers, moves stock, starts WeChat calls and sets its timer.
type orderActor struct {
	sys       *System
	key       string
	manager   *actor.PID
	order     store.Order
	exists    bool
	loadErr   error
	processed uint64
	inflight  int                    // WeChat calls (prepay or background) not yet answered
	waiting   map[string]chan *Reply // out_refund_no → admin waiting for the refund call
	prepaying bool                   // a prepay call is out
	tokenHeld bool                   // tick took the refund budget's token for the call it starts
	// reconciling waits for the query a Reconcile started (reconcileWhy
	// is its reason, passed to the query's result).
	reconciling  chan *Reply
	reconcileWhy string
	// prepayWaiters wait for the prepay call: its requester and replays.
	prepayWaiters []prepayWaiter
	queries       int         // active queries made since load (backoff)
	reply         chan *Reply // System.Request's channel for the message being handled (nil: a plain send)
}

// answer delivers rep on ch (nil: nobody waits). It never blocks: the
// channel has room for its one answer; a second answer would be a bug, and
// dropping it beats a stuck actor.
func answer(ch chan *Reply, rep *Reply) {
	select {
	case ch <- rep:
	default:
	}
}

func newOrderActor(s *System, key string, manager *actor.PID) actor.Actor {
	return &orderActor{sys: s, key: key, manager: manager}
}

func (a *orderActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.order, a.exists, a.loadErr = a.sys.store.GetOrder(a.key)
	case *idleCheck:
		// The manager saw no message for a while. Stop only if nothing is
		// pending here; the manager double-checks its own count.
		if a.processed == msg.n && a.inflight == 0 && len(a.waiting) == 0 && len(a.prepayWaiters) == 0 && a.reconciling == nil {
			ctx.Send(a.manager, &passivate{key: a.key, pid: ctx.Self(), n: a.processed})
		}
	case OrderMessage:
		a.processed++
		if c, ok := msg.(*call); ok {
			msg, a.reply = c.msg, c.reply
		}
		a.handle(ctx, msg)
		a.reply = nil
	}
}

func (a *orderActor) env() Env {
	c := &a.sys.cfg
	return Env{Now: c.Now(), AppID: c.AppID, MchID: c.MchID, QueryAfter: c.QueryAfter, CloseGrace: c.CloseGrace}
}

// respond answers the message being handled, once.
func (a *orderActor) respond(r *Reply) {
	if a.reply != nil {
		answer(a.reply, r)
		a.reply = nil
	}
}

func (a *orderActor) handle(ctx actor.Context, msg OrderMessage) {
	if a.loadErr != nil {
		// Try again: a transient read error must not poison the order.
		a.order, a.exists, a.loadErr = a.sys.store.GetOrder(a.key)
		if a.loadErr != nil {
			a.sys.metrics.StoreErrors.Add(1)
			a.respond(&Reply{Err: fmt.Errorf("%w: load %s: %w", ErrStore, a.key, a.loadErr)})
			return
		}
	}
	env := a.env()
	if m, ok := msg.(*Prepay); ok {
		a.prepay(m, env)
		return
	}
	if m, ok := msg.(*Checkout); ok {
		a.checkout(m, env)
		return
	}
	if !a.exists {
		if _, isTick := msg.(*Tick); !isTick {
			a.respond(&Reply{Status: StatusNotFound})
		}
		return
	}
	var out Outcome
	switch m := msg.(type) {
	case *Get:
		a.respond(&Reply{Status: StatusOK, Order: a.order, Exists: true})
		return
	case *PrepayDone:
		if a.prepaying {
			a.inflight--
			a.prepaying = false
		}
		out = prepayDone(a.order, m, env)
	case *PaymentNotified:
		out = paid(a.order, &m.Tx, m.NotifyID, env)
	case *RefundNotified:
		out = refundNotified(a.order, &m.Notice, m.NotifyID, env)
	case *StartRefund:
		out = refundStart(a.order, m, env)
	case *ApplyAbnormalRefund:
		out = applyAbnormal(a.order, m, env)
	case *Tick:
		if a.inflight > 0 {
			return // a call is out; its answer reschedules
		}
		out = tick(a.order, env)
		if refundCall(out.Call) {
			// Take the refund budget's token before the schedule moves on:
			// a refusal must not cost the order a whole backoff step.
			if !a.sys.refundToken() {
				a.schedule(env.Now.Add(time.Second + time.Duration(a.processed%500)*time.Millisecond))
				return
			}
			a.tokenHeld = true
		}
	case *Reconcile:
		if a.inflight > 0 || a.reconciling != nil {
			a.respond(&Reply{Status: StatusConflict, Order: a.order, Exists: true}) // a call is out: ask again
			return
		}
		out = Outcome{Order: a.order, Status: StatusOK, Call: callQuery}
	case *QueryDone:
		a.inflight--
		out = queried(a.order, m, env)
	case *CloseDone:
		a.inflight--
		out = closeDone(a.order, m, env)
	case *RefundDone:
		a.inflight--
		if code, definitive := client.Outcome(m.Err); !definitive || code == wxpay.CodeFrequencyLimited {
			a.sys.refundFailed()
		}
		out = refundResult(a.order, refundOutcome{outRefundNo: m.OutRefundNo, status: m.Refund.Status,
			refundID: m.Refund.RefundID, err: m.Err, query: m.Query, apply: m.Apply}, env)
	default:
		return
	}
	resetSchedule(&a.order, &out)
	if a.order.SKU == "" {
		out.Stock = stockNone // a shop's checkout order holds no stock
	}
	if out.Write {
		if err := a.commit(msg, &out); err != nil {
			a.sys.metrics.StoreErrors.Add(1)
			a.respond(&Reply{Err: fmt.Errorf("%w: %s: %w", ErrStore, a.key, err)})
			// The timer retries whatever was due.
			a.schedule(env.Now.Add(5 * time.Second))
			return
		}
		a.order, a.exists = out.Order, true
	}
	// Durable: now answer and act.
	switch m := msg.(type) {
	case *PrepayDone:
		a.answerPrepay(m)
	case *Reconcile:
		a.reconciling, a.reconcileWhy, a.reply = a.reply, m.Reason, nil
	case *QueryDone:
		if a.reconciling != nil {
			answer(a.reconciling, &Reply{Status: out.Status, Order: a.order, Exists: true, Err: m.Err})
			a.reconciling = nil
		}
	case *StartRefund, *ApplyAbnormalRefund:
		if (out.Call == callRefund || out.Call == callApplyAbnormal) && a.reply != nil {
			if a.waiting == nil {
				a.waiting = map[string]chan *Reply{}
			}
			a.waiting[out.Refund.OutRefundNo] = a.reply
			a.reply = nil
		} else {
			a.respond(&Reply{Status: out.Status, Order: a.order, Exists: true})
		}
	case *RefundDone:
		if p, ok := a.waiting[m.OutRefundNo]; ok {
			delete(a.waiting, m.OutRefundNo)
			answer(p, a.refundReply(m))
		}
	case *PaymentNotified, *RefundNotified:
		// WeChat's acknowledgement needs the outcome only: no copy of
		// the order travels back (nor over the cluster wire).
		a.respond(&Reply{Status: out.Status, Exists: a.exists})
	default:
		a.respond(&Reply{Status: out.Status, Order: a.order, Exists: a.exists})
	}
	switch out.Stock {
	case stockRelease:
		a.sys.inventory.release(a.order.SKU, a.key)
	case stockCommit:
		a.sys.inventory.commit(a.order.SKU, a.key, a.order.OpenID, a.order.Quantity)
	}
	if out.Call != callNone {
		var apply *wxpay.AbnormalRefundRequest
		if m, ok := msg.(*ApplyAbnormalRefund); ok {
			apply = &m.Request
		}
		if a.startCall(out.Call, out.Refund, apply) {
			a.inflight++
		} else {
			// The call queue is full, or the refund budget spent: try again
			// soon rather than drop it (tick waits for the schedule).
			a.schedule(env.Now.Add(5 * time.Second))
			if _, ok := msg.(*Reconcile); ok && a.reconciling != nil {
				answer(a.reconciling, &Reply{Err: ErrOverloaded})
				a.reconciling = nil
			}
			if out.Refund != nil {
				if p, ok := a.waiting[out.Refund.OutRefundNo]; ok {
					delete(a.waiting, out.Refund.OutRefundNo)
					answer(p, &Reply{Status: StatusPending, Order: a.order, Exists: true})
				}
			}
			return
		}
	}
	if out.Stall {
		a.sys.timers.cancel(a.key) // an alert was written: an operator acts
		return
	}
	a.reschedule(env)
}

// refundReply answers the admin who started a refund (or applied for an
// abnormal one), once the call's outcome is committed: the refund as it
// stands (StatusOK), still unknown (StatusPending: retried and queried),
// or refused by WeChat (StatusConflict with WeChat's error).
func (a *orderActor) refundReply(m *RefundDone) *Reply {
	r := &Reply{Status: StatusOK, Order: a.order, Exists: true}
	i := slices.IndexFunc(a.order.Refunds, func(r store.Refund) bool { return r.OutRefundNo == m.OutRefundNo })
	switch {
	case i >= 0 && a.order.Refunds[i].Status == refundFailed, m.Apply && m.Err != nil:
		r.Status, r.Err = StatusConflict, m.Err
	case m.Err != nil:
		r.Status = StatusPending
	}
	return r
}

// commit writes the outcome and the reservation change in one durable write.
func (a *orderActor) commit(msg OrderMessage, out *Outcome) error {
	w := a.sys.store.NewWrite()
	w.PutOrder(&out.Order)
	for i := range out.Events {
		w.AddEvent(&out.Events[i])
		w.IndexDay(&out.Events[i]) // payments and refunds by day, for reconciliation
	}
	o := &out.Order
	if _, ok := msg.(*Prepay); ok && out.Status == StatusCreated {
		w.PutReservation(o.SKU, o.OutTradeNo, store.Reservation{OpenID: o.OpenID, Quantity: o.Quantity})
	}
	switch out.Stock {
	case stockRelease:
		w.DeleteReservation(o.SKU, o.OutTradeNo)
	case stockCommit:
		w.PutReservation(o.SKU, o.OutTradeNo, store.Reservation{OpenID: o.OpenID, Quantity: o.Quantity, Sold: true})
	}
	return w.Commit()
}

// reschedule sets the timer for the order's next background step.
func (a *orderActor) reschedule(env Env) {
	if !a.exists || a.inflight > 0 {
		return
	}
	due, ok := nextDue(&a.order, env)
	if !ok {
		a.sys.timers.cancel(a.key)
		return
	}
	if due.Before(env.Now) {
		due = env.Now
	}
	a.sys.timers.schedule(a.key, due)
}

func refundCall(k callKind) bool {
	return k == callRefund || k == callRefundQuery || k == callApplyAbnormal
}

// startCall runs a WeChat call on the executor; its result comes back
// through the manager like any other message.
func (a *orderActor) startCall(kind callKind, r *store.Refund, apply *wxpay.AbnormalRefundRequest) bool {
	s, otn, cfg := a.sys, a.key, a.sys.cfg
	var fn func(ctx context.Context) OrderMessage
	switch kind {
	case callQuery:
		why := a.reconcileWhy
		a.reconcileWhy = ""
		fn = func(ctx context.Context) OrderMessage {
			tx, err := s.wechat.QueryByOutTradeNo(ctx, otn)
			return &QueryDone{OutTradeNo: otn, Tx: tx, Err: err, Reconcile: why}
		}
	case callClose:
		fn = func(ctx context.Context) OrderMessage {
			return &CloseDone{OutTradeNo: otn, Err: s.wechat.CloseOrder(ctx, otn)}
		}
	case callRefund:
		req := &wxpay.RefundRequest{
			OutTradeNo: otn, OutRefundNo: r.OutRefundNo, Reason: r.Reason, NotifyURL: cfg.NotifyURL,
			Amount: wxpay.RefundAmount{Refund: r.Amount, Total: a.order.Total, Currency: "CNY"},
		}
		fn = func(ctx context.Context) OrderMessage {
			res, err := s.wechat.CreateRefund(ctx, req)
			return &RefundDone{OutTradeNo: otn, OutRefundNo: req.OutRefundNo, Refund: res, Err: err}
		}
	case callRefundQuery:
		no := r.OutRefundNo
		fn = func(ctx context.Context) OrderMessage {
			res, err := s.wechat.QueryRefund(ctx, no)
			return &RefundDone{OutTradeNo: otn, OutRefundNo: no, Refund: res, Err: err, Query: true}
		}
	case callApplyAbnormal:
		no, id, req := r.OutRefundNo, r.RefundID, *apply
		fn = func(ctx context.Context) OrderMessage {
			res, err := s.wechat.ApplyAbnormalRefund(ctx, id, &req)
			return &RefundDone{OutTradeNo: otn, OutRefundNo: no, Refund: res, Err: err, Apply: true}
		}
	default:
		return false
	}
	if refundCall(kind) && !a.tokenHeld && !s.refundToken() {
		return false // over WeChat's refund rate: the next attempt waits
	}
	a.tokenHeld = false
	return s.calls.submit(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.CallTimeout)
		msg := fn(ctx)
		cancel()
		s.deliver(msg)
	})
}

func (a *orderActor) schedule(t time.Time) { a.sys.timers.schedule(a.key, t) }
