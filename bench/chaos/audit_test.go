package chaos

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
)

// The audit runs after the faults stopped, the timers settled and wxpayd
// was killed and started once more. It compares wxpayd with wxpaysim's
// ledger (WeChat's truth) and with what the workload was told. Each
// invariant is stated with the reason it must hold even though calls were
// retried and outcomes were unknown for a while:
//
//   - every order wxpayd acknowledged (2xx) exists, and every order WeChat
//     has exists at wxpayd (the CREATED record is written before prepay);
//   - nothing is left open: no order CREATED or PREPAID, no refund pending
//     at wxpayd or at WeChat, an ABNORMAL refund ABNORMAL on both sides, no
//     notification pending at WeChat, wxpayd's outbox empty, no stock held
//     by no known order (the timers had time to settle);
//   - paid at wxpayd (PAID, REFUNDING, REFUNDED) exactly when paid at
//     WeChat, with WeChat's transaction_id and amount; a CLOSED or FAILED
//     order is unpaid at WeChat;
//   - wxpayd's refunded amount is the sum of WeChat's SUCCESS refunds, each
//     WeChat refund is known to wxpayd with the same amount and outcome,
//     and a refund wxpayd calls SUCCESS is SUCCESS at WeChat;
//   - no refund exists at WeChat that the admin did not ask for: per order
//     and amount, WeChat's refunds are at most the admin's refund intents
//     not refused outright (a keyed request and its retries are one
//     intent); no out_refund_no twice; refunds never exceed the payment;
//   - the order's state agrees with its refunds (PAID has none refunded,
//     REFUNDED has some, neither has one pending or ABNORMAL, REFUNDING has);
//   - Idempotency-Key: every 2xx for one key names one order, whose body is
//     the request's (so a request with another body never gets a 2xx); a
//     request sent with another body after the key's order was acknowledged
//     is answered 422 IDEMPOTENCY_KEY_REUSED (racing ones may also hear
//     SOLD_OUT or ORDER_IN_PROGRESS); a request with the order's own body is
//     never answered 422;
//   - stock: per SKU, sold = units of paid orders, reserved = units of open
//     orders (none by now), sold + reserved + left = stock, and more sold
//     than stock only by orders paid after wxpayd had closed them;
//   - per-buyer limit: a buyer's paid units of a SKU (orders paid after a
//     close excepted) do not exceed the limit;
//   - every notification WeChat saw acknowledged is reflected at wxpayd (a
//     payment as that transaction, a refund as a SUCCESS refund), and no
//     tampered or stale copy was ever acknowledged;
//   - history: seqs 1..n with no gap or repeat, event_id = out_trade_no:seq,
//     the record's seq is the last event's, one order.paid per paid order
//     and none otherwise, one order.refunded per SUCCESS refund;
//   - Kafka (the embedded broker): every event of the history is there,
//     copies of one event_id are identical (at-least-once delivery repeats
//     an event, never changes it), and nothing else is there for the order;
//   - WeChat calls are spaced: no two background attempts of one kind for
//     one order closer than CHAOS_MIN_GAP (default: half of wxpayd's first
//     query delay, the base of its backoff) unless wxpayd started in between
//     (a start resumes every timer) or a call of another kind came between
//     (the order moved a step); a query and its one immediate transport
//     retry (wxpayd's client resends a GET once on a broken connection) are
//     one attempt; and no more prepay calls for an order than create
//     requests were sent for its key (checkouts for its shop order id);
//   - memory = disk: SKU counts and every order's money fields read the
//     same before and after the final kill, and history only grew;
//
// and for the shop's checkouts (POST /api/v1/checkouts, idempotent on
// shop_order_id; their orders are also covered by everything above):
//
//   - a shop order id is one order, ever: its 2xx answers, the admin list by
//     it (read during the run, across kills, and before and after the final
//     kill) and the records that carry it all name the same out_trade_no
//     (wxpayd derives the number from the id, and writes the id's index
//     with the order's first record);
//   - every 2xx answer for a shop order id named that order and showed the
//     request's own fields, which are the order's (so a request with other
//     fields never gets a 2xx); every 422 IDEMPOTENCY_KEY_REUSED was for
//     fields that differ from the order's; a request sent after the order
//     was acknowledged is answered 2xx with the order's fields and 422 with
//     others; the order's fields are those of one of the requests;
//   - WeChat was asked to collect what the shop asked for: the ledger's
//     amount, payer, description and attach are the checkout's (a retried
//     prepay is built from the record, never from a later request);
//   - a checkout holds no stock: its record and events name no SKU, and
//     each SKU's sold and reserved units are its catalogue orders' alone,
//     though checkouts carry line items of the catalogue's SKUs;
//   - every event of a checkout order, in the history and in Kafka, carries
//     its shop_order_id and attach, and one paid at WeChat is paid at wxpayd
//     with an order.paid event carrying them.

// violation is one broken invariant.
type violation struct {
	invariant string
	otn       string // the order it is about ("" for none)
	detail    string
}

func (v violation) String() string {
	if v.otn == "" {
		return v.invariant + ": " + v.detail
	}
	return v.invariant + ": order " + v.otn + ": " + v.detail
}

// auditor holds everything the audit compares.
type auditor struct {
	p        *plan
	rec      *recorder
	minGap   time.Duration
	starts   []time.Time
	led      map[string]*ledgerOrder
	views    map[string]*adminView // wxpayd, after the final restart
	missing  map[string]bool       // 404 at wxpayd
	errs     map[string]error      // unreadable at wxpayd
	simView  map[string]*simOrderView
	skus     map[string]skuView
	stats    *simStats
	before   *snapshot           // before the final restart
	shops    map[string][]string // the admin list by shop order id, after the final restart
	shopErrs map[string]error    // unreadable lists, after the final restart
	kafka    map[string][]event.Event
	kafkaOK  bool
	pending  []pendingItem // what had not settled at the wait's deadline

	checked []string // invariant names, in order
	v       []violation
}

func (a *auditor) fail(inv, otn, format string, args ...any) {
	a.v = append(a.v, violation{inv, otn, fmt.Sprintf(format, args...)})
}

// known is every order the audit covers: WeChat's, the acknowledged, and
// those the admin list by a shop order id named.
func (a *auditor) known() []string {
	set := map[string]bool{}
	for otn := range a.led {
		set[otn] = true
	}
	for otn := range a.rec.orders {
		set[otn] = true
	}
	lists := []map[string][]string{a.shops}
	if a.before != nil {
		lists = append(lists, a.before.shops)
	}
	for _, m := range lists {
		for _, l := range m {
			for _, otn := range l {
				set[otn] = true
			}
		}
	}
	return sortedKeys(set)
}

// run checks every invariant and returns the violations, first broken first.
func (a *auditor) run() []violation {
	for _, c := range []struct {
		name string
		fn   func(string)
	}{
		{"orders exist", a.exist},
		{"settled", a.settled},
		{"paid equals WeChat", a.paid},
		{"refunds equal WeChat", a.refunds},
		{"no refund unasked", a.unasked},
		{"out_refund_no unique", a.uniqueRefunds},
		{"refunds within payment", a.withinPayment},
		{"state agrees with refunds", a.stateRefunds},
		{"idempotency keys", a.idempotency},
		{"stock per SKU", a.stock},
		{"per-buyer limit", a.buyerLimit},
		{"acknowledged notifications durable", a.notifications},
		{"history", a.history},
		{"events in Kafka", a.events},
		{"WeChat calls spaced", a.spacing},
		{"memory equals disk", a.memoryDisk},
		{"buyer payments in the ledger", a.payments},
		{"one order per shop order id", a.shopOneOrder},
		{"checkout answers", a.shopAnswers},
		{"WeChat collects the checkout", a.shopWeChat},
		{"checkouts hold no stock", a.shopStock},
		{"checkout events carry the shop's fields", a.shopEvents},
	} {
		a.checked = append(a.checked, c.name)
		c.fn(c.name)
	}
	return a.v
}

func (a *auditor) exist(inv string) {
	for _, otn := range sortedKeys(a.rec.orders) {
		if a.missing[otn] {
			a.fail(inv, otn, "wxpayd acknowledged it (a 2xx to a create or a checkout) but does not know it (404)")
		}
	}
	for _, otn := range sortedKeys(a.led) {
		if a.missing[otn] {
			a.fail(inv, otn, "WeChat has it (%s) but wxpayd does not know it (404)", a.led[otn].TradeState)
		}
	}
	for _, otn := range sortedKeys(a.errs) {
		a.fail(inv, otn, "unreadable at wxpayd: %v", a.errs[otn])
	}
}

func (a *auditor) settled(inv string) {
	for _, otn := range sortedKeys(a.views) {
		o := &a.views[otn].Order
		if openState(o.State) {
			a.fail(inv, otn, "still %s after the timers had time to settle (TTL %s, next attempt due %s)", o.State,
				time.UnixMilli(o.ExpiresMs).Format(time.TimeOnly), time.UnixMilli(o.NextTickMs).Format(time.TimeOnly))
		}
		l := a.led[otn]
		for _, r := range o.Refunds {
			if !refundSettled(&r, l) {
				a.fail(inv, otn, "refund %s is %q at wxpayd, %s at WeChat", r.OutRefundNo, r.Status, l.refundStatus(r.OutRefundNo))
			}
		}
	}
	for _, otn := range sortedKeys(a.led) {
		for _, r := range a.led[otn].Refunds {
			if r.Status == "PROCESSING" {
				a.fail(inv, otn, "refund %s still PROCESSING at WeChat", r.OutRefundNo)
			}
		}
	}
	// What is about no order (orders are judged above on what they read
	// now): notifications WeChat still retries, events not published,
	// stock held by no known order.
	for _, p := range a.pending {
		if p.otn == "" {
			a.fail(inv, "", "at the end of the wait: %s", p.what)
		}
	}
}

func (l *ledgerOrder) refund(no string) *ledgerRefund {
	if l == nil {
		return nil
	}
	for i := range l.Refunds {
		if l.Refunds[i].OutRefundNo == no {
			return &l.Refunds[i]
		}
	}
	return nil
}

func (l *ledgerOrder) refundStatus(no string) string {
	if r := l.refund(no); r != nil {
		return r.Status
	}
	return "no such refund"
}

func (a *auditor) paid(inv string) {
	for _, otn := range sortedKeys(a.views) {
		o := &a.views[otn].Order
		l := a.led[otn]
		if l == nil {
			// Never reached WeChat (prepay refused before sending, or not
			// sent): it must have ended unpaid.
			if paidState(o.State) {
				a.fail(inv, otn, "wxpayd says %s but WeChat has no such order", o.State)
			}
			continue
		}
		if l.Total != 0 && l.Total != o.Total {
			a.fail(inv, otn, "total %d at wxpayd, %d at WeChat", o.Total, l.Total)
		}
		switch {
		case l.paid() && !paidState(o.State):
			a.fail(inv, otn, "paid at WeChat (%s, %s) but %s at wxpayd", l.TradeState, l.TransactionID, o.State)
		case !l.paid() && paidState(o.State):
			a.fail(inv, otn, "%s at wxpayd (transaction %q) but %s at WeChat", o.State, o.TransactionID, l.TradeState)
		case l.paid():
			if o.TransactionID != l.TransactionID {
				a.fail(inv, otn, "transaction_id %q at wxpayd, %q at WeChat", o.TransactionID, l.TransactionID)
			}
			if paidAmt := cmpOr(l.PaidTotal, l.Total); paidAmt != o.Total {
				a.fail(inv, otn, "WeChat took %d fen, wxpayd's order is %d", paidAmt, o.Total)
			}
		}
	}
}

func cmpOr(v ...int64) int64 {
	for _, x := range v {
		if x != 0 {
			return x
		}
	}
	return 0
}

func (a *auditor) refunds(inv string) {
	for _, otn := range sortedKeys(a.views) {
		o := &a.views[otn].Order
		l := a.led[otn]
		var lOK int64
		if l != nil {
			lOK = l.refundedOK()
		}
		if o.RefundedFen != lOK {
			a.fail(inv, otn, "wxpayd refunded %d fen, WeChat's SUCCESS refunds sum to %d", o.RefundedFen, lOK)
		}
		for _, r := range o.Refunds {
			lr := l.refund(r.OutRefundNo)
			switch {
			case lr == nil:
				if r.Status == "SUCCESS" || r.Status == "ABNORMAL" {
					a.fail(inv, otn, "refund %s is %s at wxpayd but unknown at WeChat", r.OutRefundNo, r.Status)
				}
			case lr.Amount != r.Amount:
				a.fail(inv, otn, "refund %s: %d fen at wxpayd, %d at WeChat", r.OutRefundNo, r.Amount, lr.Amount)
			case (r.Status == "SUCCESS") != (lr.Status == "SUCCESS") || (r.Status == "ABNORMAL") != (lr.Status == "ABNORMAL"):
				a.fail(inv, otn, "refund %s: %s at wxpayd, %s at WeChat", r.OutRefundNo, r.Status, lr.Status)
			case lr.Status == "CLOSED" && r.Status != "CLOSED" && r.Status != "FAILED":
				a.fail(inv, otn, "refund %s: %s at wxpayd, CLOSED at WeChat", r.OutRefundNo, r.Status)
			}
		}
		if l == nil {
			continue
		}
		for _, lr := range l.Refunds {
			found := false
			for _, r := range o.Refunds {
				found = found || r.OutRefundNo == lr.OutRefundNo
			}
			if !found {
				a.fail(inv, otn, "WeChat has refund %s (%d fen, %s) that wxpayd does not know", lr.OutRefundNo, lr.Amount, lr.Status)
			}
		}
	}
}

func (a *auditor) unasked(inv string) {
	intents := map[string][]*refundIntent{}
	for _, in := range a.rec.intents {
		intents[in.otn] = append(intents[in.otn], in)
	}
	for _, otn := range sortedKeys(a.led) {
		l := a.led[otn]
		if len(l.Refunds) == 0 {
			continue
		}
		asked := map[int64]int{}   // amount → intents that may have refunded
		refused := map[int64]int{} // amount → intents refused outright
		for _, in := range intents[otn] {
			if in.refused() {
				refused[in.amount]++
			} else {
				asked[in.amount]++
			}
		}
		got := map[int64]int{}
		for _, r := range l.Refunds {
			got[r.Amount]++
		}
		for amt, n := range got {
			if n > asked[amt] {
				var list []string
				for _, in := range intents[otn] {
					list = append(list, in.String())
				}
				a.fail(inv, otn, "WeChat has %d refund(s) of %d fen; the admin asked %d time(s) for that amount (%d more refused outright). Requests: %s",
					n, amt, asked[amt], refused[amt], strings.Join(list, "; "))
			}
		}
	}
}

func (a *auditor) uniqueRefunds(inv string) {
	seen := map[string]string{}
	for _, otn := range sortedKeys(a.led) {
		for _, r := range a.led[otn].Refunds {
			if prev, dup := seen[r.OutRefundNo]; dup {
				a.fail(inv, otn, "WeChat has out_refund_no %s twice (also on %s)", r.OutRefundNo, prev)
			}
			seen[r.OutRefundNo] = otn
		}
	}
	for _, otn := range sortedKeys(a.views) {
		mine := map[string]bool{}
		for _, r := range a.views[otn].Order.Refunds {
			if mine[r.OutRefundNo] {
				a.fail(inv, otn, "wxpayd's record lists out_refund_no %s twice", r.OutRefundNo)
			}
			mine[r.OutRefundNo] = true
		}
	}
}

func (a *auditor) withinPayment(inv string) {
	for _, otn := range sortedKeys(a.led) {
		l := a.led[otn]
		if ok := l.refundedOK(); ok > cmpOr(l.PaidTotal, l.Total) || ok > 0 && !l.paid() {
			a.fail(inv, otn, "WeChat refunded %d fen of a payment of %d (%s)", ok, cmpOr(l.PaidTotal, l.Total), l.TradeState)
		}
	}
	for _, otn := range sortedKeys(a.views) {
		o := &a.views[otn].Order
		var sum int64
		for _, r := range o.Refunds {
			if r.Status == "SUCCESS" {
				sum += r.Amount
			}
		}
		if o.RefundedFen > o.Total || sum != o.RefundedFen {
			a.fail(inv, otn, "wxpayd refunded %d fen (SUCCESS refunds sum to %d) of an order of %d", o.RefundedFen, sum, o.Total)
		}
	}
}

func (a *auditor) stateRefunds(inv string) {
	for _, otn := range sortedKeys(a.views) {
		o := &a.views[otn].Order
		open := false
		for _, r := range o.Refunds {
			open = open || unfinished(&r)
		}
		switch {
		case o.State == store.StatePaid && (o.RefundedFen > 0 || open):
			a.fail(inv, otn, "PAID with %d fen refunded, refunds %v", o.RefundedFen, o.Refunds)
		case o.State == store.StateRefunded && (o.RefundedFen == 0 || open):
			a.fail(inv, otn, "REFUNDED with %d fen refunded, refunds %v", o.RefundedFen, o.Refunds)
		case o.State == store.StateRefunding && !open:
			a.fail(inv, otn, "REFUNDING with no refund pending or ABNORMAL: %v", o.Refunds)
		case !paidState(o.State) && (o.RefundedFen > 0 || len(o.Refunds) > 0):
			a.fail(inv, otn, "%s with refunds %v", o.State, o.Refunds)
		}
	}
}

func (a *auditor) idempotency(inv string) {
	for _, g := range a.rec.groups {
		var otn string
		for _, req := range g.reqs {
			for _, ans := range req.answers {
				if ans.view == nil {
					continue
				}
				if otn != "" && ans.view.OutTradeNo != otn {
					a.fail(inv, otn, "buyer %s key %s: 2xx answers name two orders, %s and %s", g.buyer, g.key, otn, ans.view.OutTradeNo)
				}
				otn = ans.view.OutTradeNo
				if got := (params{ans.view.SKU, ans.view.Quantity}); got != req.p {
					a.fail(inv, otn, "buyer %s key %s: asked for %s, answered %s with an order of %s", g.buyer, g.key, req.p, ans.answer, got)
				}
			}
		}
		if otn == "" {
			continue // no order known for the key: nothing to compare with
		}
		v := a.views[otn]
		if v == nil {
			continue // reported by "orders exist"
		}
		own := params{v.Order.SKU, v.Order.Quantity}
		for _, req := range g.reqs {
			f := req.final()
			if f == nil {
				continue
			}
			reused := f.status == 422 && f.code == "IDEMPOTENCY_KEY_REUSED"
			switch {
			case reused && req.p == own:
				a.fail(inv, otn, "buyer %s key %s: a request with the order's own body %s was answered 422 IDEMPOTENCY_KEY_REUSED", g.buyer, g.key, req.p)
			case req.sequential && !reused && !f.transient:
				a.fail(inv, otn, "buyer %s key %s: the key's order (%s) existed; the same key with %s was answered %s, want 422 IDEMPOTENCY_KEY_REUSED",
					g.buyer, g.key, own, req.p, f.answer)
			}
		}
	}
}

// skuUnits are the units orders of one SKU hold: paid (pac of them paid
// after wxpayd had closed the order) and open.
type skuUnits struct{ paid, open, pac int64 }

// unitsOf sums, by SKU, the units of the orders keep accepts; a SKU without
// such orders reads zero.
func (a *auditor) unitsOf(keep func(*store.Order) bool) func(sku string) skuUnits {
	per := map[string]*skuUnits{}
	for _, otn := range sortedKeys(a.views) {
		o := &a.views[otn].Order
		if !keep(o) {
			continue
		}
		u := per[o.SKU]
		if u == nil {
			u = &skuUnits{}
			per[o.SKU] = u
		}
		switch {
		case paidState(o.State):
			u.paid += o.Quantity
			if paidAfterClose(a.views[otn]) {
				u.pac += o.Quantity
			}
		case openState(o.State):
			u.open += o.Quantity
		}
	}
	return func(sku string) skuUnits {
		if u := per[sku]; u != nil {
			return *u
		}
		return skuUnits{}
	}
}

func (a *auditor) stock(inv string) {
	units := a.unitsOf(func(*store.Order) bool { return true })
	for _, sp := range a.p.skus {
		v, ok := a.skus[sp.name]
		if !ok {
			a.fail(inv, "", "SKU %s unreadable", sp.name)
			continue
		}
		u := units(sp.name)
		switch {
		case v.Stock != sp.stock:
			a.fail(inv, "", "SKU %s: stock %d, the admin set %d", sp.name, v.Stock, sp.stock)
		case v.Sold != u.paid:
			a.fail(inv, "", "SKU %s: %s, but its paid orders hold %d units (%d of them paid after close)", sp.name, v, u.paid, u.pac)
		case v.Reserved != u.open:
			a.fail(inv, "", "SKU %s: %s, but its open orders hold %d units", sp.name, v, u.open)
		case v.Sold+v.Reserved <= v.Stock && v.Left != v.Stock-v.Sold-v.Reserved:
			a.fail(inv, "", "SKU %s: %s: sold + reserved + left != stock", sp.name, v)
		case v.Sold+v.Reserved > v.Stock && (v.Left != 0 || v.Sold+v.Reserved-v.Stock > u.pac):
			a.fail(inv, "", "SKU %s: %s: oversold by %d units, only %d units were paid after close", sp.name, v, v.Sold+v.Reserved-v.Stock, u.pac)
		}
	}
}

func (a *auditor) buyerLimit(inv string) {
	limit := map[string]int64{}
	for _, sp := range a.p.skus {
		limit[sp.name] = sp.limit
	}
	held := map[[2]string]int64{}
	var list = map[[2]string][]string{}
	for _, otn := range sortedKeys(a.views) {
		v := a.views[otn]
		if !paidState(v.Order.State) || paidAfterClose(v) {
			continue
		}
		k := [2]string{v.Order.OpenID, v.Order.SKU}
		held[k] += v.Order.Quantity
		list[k] = append(list[k], otn)
	}
	for k, n := range held {
		if lim := limit[k[1]]; lim > 0 && n > lim {
			a.fail(inv, list[k][0], "buyer %s holds %d paid units of %s (limit %d): orders %v", k[0], n, k[1], lim, list[k])
		}
	}
}

func (a *auditor) notifications(inv string) {
	if a.stats != nil {
		for _, kind := range []string{"tampered", "stale"} {
			if f := a.stats.NotifyFaults[kind]; f.Accepted > 0 {
				a.fail(inv, "", "%d %s notification copies were acknowledged (2xx); wxpayd must reject them", f.Accepted, kind)
			}
		}
	}
	for _, otn := range sortedKeys(a.simView) {
		sv, v := a.simView[otn], a.views[otn]
		if v == nil {
			continue
		}
		o := &v.Order
		refundAcks := map[string]bool{}
		for _, n := range sv.Notifications {
			if !n.Acknowledged {
				continue
			}
			if n.Kind == "tampered" || n.Kind == "stale" {
				a.fail(inv, otn, "a %s copy of notification %s (%s) was acknowledged", n.Kind, n.ID, n.EventType)
				continue
			}
			switch n.EventType {
			case "TRANSACTION.SUCCESS":
				if !paidState(o.State) || o.TransactionID != sv.TransactionID {
					a.fail(inv, otn, "WeChat's payment notification %s was acknowledged, but wxpayd reads %s with transaction %q (WeChat: %q)",
						n.ID, o.State, o.TransactionID, sv.TransactionID)
				}
			case "REFUND.SUCCESS":
				refundAcks[n.ID] = true
			}
		}
		ok := 0
		for _, r := range o.Refunds {
			if r.Status == "SUCCESS" {
				ok++
			}
		}
		if len(refundAcks) > ok {
			a.fail(inv, otn, "%d REFUND.SUCCESS notifications were acknowledged, wxpayd has %d SUCCESS refunds", len(refundAcks), ok)
		}
	}
}

func (a *auditor) history(inv string) {
	for _, otn := range sortedKeys(a.views) {
		v := a.views[otn]
		o := &v.Order
		paid, refunded := 0, map[string]int{}
		for i, e := range v.Events {
			if e.Seq != uint64(i+1) {
				a.fail(inv, otn, "event %d has seq %d (want %d: no gap, no repeat)", i, e.Seq, i+1)
				break
			}
			if e.EventID != event.ID(otn, e.Seq) || e.OutTradeNo != otn {
				a.fail(inv, otn, "event seq %d has event_id %q, out_trade_no %q", e.Seq, e.EventID, e.OutTradeNo)
			}
			switch e.Type {
			case event.OrderPaid:
				paid++
			case event.OrderRefunded:
				refunded[e.OutRefundNo]++
			}
		}
		if n := len(v.Events); n > 0 && o.Seq != v.Events[n-1].Seq {
			a.fail(inv, otn, "the record's seq is %d, the last event's %d", o.Seq, v.Events[n-1].Seq)
		}
		if paidState(o.State) && paid != 1 || !paidState(o.State) && paid != 0 {
			a.fail(inv, otn, "%s with %d order.paid events", o.State, paid)
		}
		ok := 0
		for _, r := range o.Refunds {
			if r.Status == "SUCCESS" {
				ok++
				if refunded[r.OutRefundNo] != 1 {
					a.fail(inv, otn, "SUCCESS refund %s has %d order.refunded events", r.OutRefundNo, refunded[r.OutRefundNo])
				}
			}
		}
		total := 0
		for _, n := range refunded {
			total += n
		}
		if total != ok {
			a.fail(inv, otn, "%d order.refunded events for %d SUCCESS refunds", total, ok)
		}
	}
}

func (a *auditor) events(inv string) {
	if !a.kafkaOK {
		return // reported where the topic was read
	}
	for _, otn := range sortedKeys(a.views) {
		hist := a.views[otn].Events
		byID := map[string]event.Event{}
		for _, e := range a.kafka[otn] {
			if prev, ok := byID[e.EventID]; ok && !reflect.DeepEqual(prev, e) {
				a.fail(inv, otn, "event_id %s twice in Kafka with different contents: %+v and %+v", e.EventID, prev, e)
			}
			byID[e.EventID] = e
		}
		for _, e := range hist {
			k, ok := byID[e.EventID]
			switch {
			case !ok:
				a.fail(inv, otn, "event %s (%s) is in the history but not in Kafka", e.EventID, e.Type)
			case k.Type != e.Type || k.Seq != e.Seq:
				a.fail(inv, otn, "event %s is %s in the history, %s in Kafka", e.EventID, e.Type, k.Type)
			}
			delete(byID, e.EventID)
		}
		for _, id := range sortedKeys(byID) {
			a.fail(inv, otn, "event %s (%s) is in Kafka but not in the history", id, byID[id].Type)
		}
	}
}

func (a *auditor) spacing(inv string) {
	startedBetween := func(t1, t2 int64) bool {
		for _, s := range a.starts {
			if ms := s.UnixMilli(); ms > t1 && ms <= t2 {
				return true
			}
		}
		return false
	}
	attempts := map[string]int{} // otn → create requests sent for its key, or checkouts for its shop order id
	for _, g := range a.rec.groups {
		if otn, n := answered(g.answers()...); otn != "" {
			attempts[otn] += n
		}
	}
	for _, g := range a.rec.shops {
		if otn, n := answered(g.answers()...); otn != "" {
			attempts[otn] += n
		}
	}
	for _, otn := range sortedKeys(a.led) {
		l := a.led[otn]
		if n, ok := attempts[otn]; ok && l.Calls["prepay"] > n {
			a.fail(inv, otn, "%d prepay calls for %d create requests", l.Calls["prepay"], n)
		}
		// otherBetween: a call of another kind came between, i.e. the order
		// moved on a step (a close answered ORDER_PAID is followed by a
		// query at once, whenever the last query was).
		otherBetween := func(kind string, t1, t2 int64) bool {
			for k, ts := range l.CallTimes {
				for _, t := range ts {
					if k != kind && t >= t1 && t <= t2 {
						return true
					}
				}
			}
			return false
		}
		for _, kind := range sortedKeys(l.CallTimes) {
			if kind == "prepay" {
				continue
			}
			ts := callAttempts(kind, l.CallTimes[kind])
			k := 1 // attempts allowed within minGap
			if kind == "refund" || kind == "refund_query" {
				k = max(1, len(l.Refunds)) // one per refund of the order
			}
			for i := 0; i+k < len(ts); i++ {
				j := i + k
				gap := time.Duration(ts[j]-ts[i]) * time.Millisecond
				if gap < a.minGap && !startedBetween(ts[i], ts[j]) && !otherBetween(kind, ts[i], ts[j]) {
					a.fail(inv, otn, "%d %s attempts within %v (%s … %s; CHAOS_MIN_GAP %v); all %d calls: %s", k+1, kind, gap,
						msTime(ts[i]), msTime(ts[j]), a.minGap, len(l.CallTimes[kind]), msTimes(l.CallTimes[kind]))
					break
				}
			}
		}
	}
}

// transportRetry is how soon after a GET (query, refund query) wxpayd's
// WeChat client may send it once more: it retries an idempotent request
// once when the connection broke, as it does when WeChat cut it after
// answering nothing. That second call is part of the same attempt.
const transportRetry = time.Second

// callAttempts returns the start times of the attempts behind a kind's calls,
// sorted: a GET and its one transport retry count once.
func callAttempts(kind string, calls []int64) []int64 {
	ts := append([]int64(nil), calls...)
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	if kind != "query" && kind != "refund_query" {
		return ts
	}
	var out []int64
	retried := false // the last attempt already had its retry
	for i, t := range ts {
		if i > 0 && !retried && time.Duration(t-out[len(out)-1])*time.Millisecond <= transportRetry {
			retried = true
			continue
		}
		out, retried = append(out, t), false
	}
	return out
}

func msTime(ms int64) string { return time.UnixMilli(ms).Format("15:04:05.000") }

func msTimes(ts []int64) string {
	var out []string
	for i, t := range ts {
		if i == 12 {
			out = append(out, fmt.Sprintf("… %d more", len(ts)-i))
			break
		}
		out = append(out, msTime(t))
	}
	return strings.Join(out, " ")
}

func (a *auditor) memoryDisk(inv string) {
	b := a.before
	if b == nil {
		return
	}
	for _, sp := range a.p.skus {
		x, y := b.skus[sp.name], a.skus[sp.name]
		if x != y {
			a.fail(inv, "", "SKU %s before the final kill: %s; after it: %s", sp.name, x, y)
		}
	}
	for _, otn := range sortedKeys(b.views) {
		x, y := b.views[otn], a.views[otn]
		if y == nil {
			continue // reported by "orders exist"
		}
		ox, oy := &x.Order, &y.Order
		if ox.State != oy.State || ox.RefundedFen != oy.RefundedFen || ox.TransactionID != oy.TransactionID ||
			ox.Total != oy.Total || ox.Quantity != oy.Quantity || !sameRefunds(ox.Refunds, oy.Refunds) {
			a.fail(inv, otn, "before the final kill: %s, refunded %d, refunds %v; after: %s, refunded %d, refunds %v",
				ox.State, ox.RefundedFen, ox.Refunds, oy.State, oy.RefundedFen, oy.Refunds)
			continue
		}
		if len(y.Events) < len(x.Events) {
			a.fail(inv, otn, "history shrank from %d to %d events across the final kill", len(x.Events), len(y.Events))
			continue
		}
		for i := range x.Events {
			if x.Events[i].EventID != y.Events[i].EventID || x.Events[i].Type != y.Events[i].Type {
				a.fail(inv, otn, "history changed across the final kill at event %d: %s %s → %s %s", i,
					x.Events[i].EventID, x.Events[i].Type, y.Events[i].EventID, y.Events[i].Type)
				break
			}
		}
	}
}

func sameRefunds(x, y []store.Refund) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if x[i].OutRefundNo != y[i].OutRefundNo || x[i].Amount != y[i].Amount || x[i].Status != y[i].Status {
			return false
		}
	}
	return true
}

func (a *auditor) payments(inv string) {
	for _, p := range a.rec.pays {
		if p.txn == "" {
			continue
		}
		l := a.led[p.otn]
		if l == nil || !l.paid() || l.TransactionID != p.txn {
			state := "no such order"
			if l != nil {
				state = l.TradeState + " " + l.TransactionID
			}
			a.fail(inv, p.otn, "wxpaysim answered /sim/v1/pay with transaction %s; its ledger says %s", p.txn, state)
		}
	}
}

// The shop's checkouts.

// shopOrder is the order of a shop order id: the one a 2xx answer named,
// else the one the admin list by the id named after the final restart (or
// before it); "" when none is known.
func (a *auditor) shopOrder(g *shopGroup) string {
	if otn, _ := answered(g.answers()...); otn != "" {
		return otn
	}
	before, _ := a.before.shopList(g.id)
	for _, l := range [][]string{a.shops[g.id], before} {
		if len(l) > 0 {
			return l[0]
		}
	}
	return ""
}

// recordFields are what a checkout order is, as wxpayd keeps it.
func recordFields(o *store.Order) checkoutFields {
	return checkoutFields{openid: o.OpenID, description: o.Description, attach: o.Attach, lines: lineKey(o.LineItems),
		amount: o.Total, life: time.Duration(o.ExpiresMs-o.CreatedMs) * time.Millisecond}
}

// shows reports whether a checkout's answer shows f: the shop's view has
// no openid and its times are to the second, so those are the record's to
// show.
func (f checkoutFields) shows(v *orderView) bool {
	return v.Amount.Total == f.amount && v.Description == f.description && v.Attach == f.attach && lineKey(v.LineItems) == f.lines
}

// askedFor is what the shop asked for with the order of g: the fields of
// the first request answered 2xx, else (no request was) the record's at
// wxpayd; whose says which. ok is false when neither is known.
func (a *auditor) askedFor(g *shopGroup, otn string) (f checkoutFields, whose string, ok bool) {
	for i, q := range g.reqs {
		for _, ans := range q.answers {
			if ans.view != nil {
				return q.f, fmt.Sprintf("request %d (answered %s)", i, ans.answer), true
			}
		}
	}
	if v := a.views[otn]; v != nil {
		return recordFields(&v.Order), "wxpayd's record", true
	}
	return checkoutFields{}, "", false
}

func (a *auditor) shopOneOrder(inv string) {
	carried := map[string][]string{} // shop order id → the orders at wxpayd whose record carries it
	for _, otn := range sortedKeys(a.views) {
		if id := a.views[otn].Order.ShopOrderID; id != "" {
			carried[id] = append(carried[id], otn)
		}
	}
	sent := map[string]bool{}
	for _, g := range a.rec.shops {
		sent[g.id] = true
		named := map[string][]string{} // out_trade_no → where it was named for g.id
		for i, q := range g.reqs {
			for _, ans := range q.answers {
				if ans.view != nil {
					named[ans.view.OutTradeNo] = append(named[ans.view.OutTradeNo], fmt.Sprintf("the %s to request %d", ans.answer, i))
				}
			}
		}
		acked, _ := answered(g.answers()...)
		type list struct {
			when string
			otns []string
		}
		var lists []list
		for _, l := range g.listed {
			lists = append(lists, list{"during the run", l})
		}
		if l, ok := a.before.shopList(g.id); ok {
			lists = append(lists, list{"before the final kill", l})
		}
		if l, ok := a.shops[g.id]; ok {
			lists = append(lists, list{"after the final kill", l})
		}
		for _, l := range lists {
			if acked != "" && len(l.otns) == 0 {
				a.fail(inv, acked, "shop order id %s: its order was acknowledged, but the admin list by it named none %s", g.id, l.when)
			}
			for _, otn := range l.otns {
				named[otn] = append(named[otn], "the admin list "+l.when)
			}
		}
		for _, otn := range carried[g.id] {
			named[otn] = append(named[otn], "wxpayd's record")
		}
		if err := a.shopErrs[g.id]; err != nil {
			a.fail(inv, acked, "shop order id %s: %v", g.id, err)
		}
		if otns := sortedKeys(named); len(otns) > 1 {
			var parts []string
			for _, otn := range otns {
				parts = append(parts, otn+" ("+strings.Join(named[otn], ", ")+")")
			}
			a.fail(inv, otns[0], "shop order id %s names %d orders: %s", g.id, len(otns), strings.Join(parts, "; "))
		}
	}
	for _, id := range sortedKeys(carried) {
		if !sent[id] {
			a.fail(inv, carried[id][0], "wxpayd's record carries shop order id %s, which the shop never sent", id)
		}
	}
}

// shopList is the admin list by shop order id id in the snapshot (ok
// false when it was not read).
func (s *snapshot) shopList(id string) ([]string, bool) {
	if s == nil {
		return nil, false
	}
	l, ok := s.shops[id]
	return l, ok
}

func (a *auditor) shopAnswers(inv string) {
	const reused = "IDEMPOTENCY_KEY_REUSED"
	for _, g := range a.rec.shops {
		otn := a.shopOrder(g)
		v := a.views[otn]
		if v == nil {
			continue // no order known, or reported by "orders exist"
		}
		own := recordFields(&v.Order)
		created := false
		for i, q := range g.reqs {
			created = created || q.f == own
			for _, ans := range q.answers {
				switch {
				case ans.view != nil && q.f != own:
					a.fail(inv, otn, "shop order id %s: request %d asked for %s and was answered %s with the order, which is %s",
						g.id, i, q.f, ans.answer, own)
				case ans.view != nil && (!q.f.shows(ans.view) || ans.view.ShopOrderID != g.id):
					a.fail(inv, otn, "shop order id %s: request %d asked for %s; its %s showed shop order id %s, %d fen, attach %q, description %q, lines %s",
						g.id, i, q.f, ans.answer, ans.view.ShopOrderID, ans.view.Amount.Total, ans.view.Attach, ans.view.Description, lineKey(ans.view.LineItems))
				case ans.status == 422 && ans.code == reused && q.f == own:
					a.fail(inv, otn, "shop order id %s: request %d with the order's own fields %s was answered %s", g.id, i, q.f, ans.answer)
				}
			}
			f := q.final()
			if !q.sequential || f == nil || f.transient {
				continue
			}
			switch {
			case q.f == own && f.view == nil:
				a.fail(inv, otn, "shop order id %s: sent again with the order's fields %s after it was acknowledged, answered %s; want 2xx",
					g.id, q.f, f.answer)
			case q.f != own && !(f.status == 422 && f.code == reused):
				a.fail(inv, otn, "shop order id %s: sent again with other fields %s after the order (%s) was acknowledged, answered %s; want 422 %s",
					g.id, q.f, own, f.answer, reused)
			}
		}
		if !created {
			a.fail(inv, otn, "shop order id %s: the order is %s, which none of the shop's %d requests asked for", g.id, own, len(g.reqs))
		}
	}
}

// eachCheckout calls fn for each shop order id whose order is known, with
// what the shop asked for (see askedFor).
func (a *auditor) eachCheckout(fn func(g *shopGroup, otn string, f checkoutFields, whose string)) {
	for _, g := range a.rec.shops {
		otn := a.shopOrder(g)
		if f, whose, ok := a.askedFor(g, otn); ok {
			fn(g, otn, f, whose)
		}
	}
}

func (a *auditor) shopWeChat(inv string) {
	a.eachCheckout(func(g *shopGroup, otn string, f checkoutFields, whose string) {
		l := a.led[otn]
		if l == nil {
			return // never reached WeChat
		}
		if l.Total != f.amount || l.Attach != f.attach || l.OpenID != f.openid || l.Description != f.description {
			a.fail(inv, otn, "shop order id %s: %s asked for %s; WeChat was asked to collect %d fen from %s, attach %q, description %q",
				g.id, whose, f, l.Total, l.OpenID, l.Attach, l.Description)
		}
		if l.paid() && cmpOr(l.PaidTotal, l.Total) != f.amount {
			a.fail(inv, otn, "shop order id %s: %s asked for %d fen; WeChat took %d", g.id, whose, f.amount, cmpOr(l.PaidTotal, l.Total))
		}
	})
}

func (a *auditor) shopStock(inv string) {
	lined := map[string][]string{} // SKU → checkout orders with a line of it
	for _, otn := range sortedKeys(a.views) {
		v := a.views[otn]
		o := &v.Order
		if o.ShopOrderID == "" {
			continue
		}
		if o.SKU != "" || o.Quantity != 0 {
			a.fail(inv, otn, "checkout order (shop order id %s) holds %d units of SKU %q", o.ShopOrderID, o.Quantity, o.SKU)
		}
		for _, e := range v.Events {
			if e.SKU != "" || e.Quantity != 0 {
				a.fail(inv, otn, "event %s (%s) of a checkout order names %d units of SKU %q", e.EventID, e.Type, e.Quantity, e.SKU)
				break
			}
		}
		for _, l := range o.LineItems {
			if n := len(lined[l.SKU]); n == 0 || lined[l.SKU][n-1] != otn {
				lined[l.SKU] = append(lined[l.SKU], otn)
			}
		}
	}
	catalogue := a.unitsOf(func(o *store.Order) bool { return o.ShopOrderID == "" })
	for _, sp := range a.p.skus {
		v, ok := a.skus[sp.name]
		if !ok {
			continue // reported by "stock per SKU"
		}
		if u := catalogue(sp.name); v.Sold != u.paid || v.Reserved != u.open {
			otn := ""
			if l := lined[sp.name]; len(l) > 0 {
				otn = l[0]
			}
			a.fail(inv, otn, "SKU %s: %s, but its catalogue orders hold %d paid and %d open units; checkout orders with lines of it: %v",
				sp.name, v, u.paid, u.open, lined[sp.name])
		}
	}
}

func (a *auditor) shopEvents(inv string) {
	a.eachCheckout(func(g *shopGroup, otn string, f checkoutFields, whose string) {
		v := a.views[otn]
		if v == nil {
			return // reported by "orders exist"
		}
		// carry checks every event of one source and reports whether an
		// order.paid carrying the fields is among them.
		carry := func(where string, evs []event.Event) (paid bool) {
			wrong := 0
			for _, e := range evs {
				if e.ShopOrderID != g.id || e.Attach != f.attach {
					if wrong == 0 {
						a.fail(inv, otn, "event %s (%s) in %s carries shop order id %q, attach %q; %s asked for %s, attach %q",
							e.EventID, e.Type, where, e.ShopOrderID, e.Attach, whose, g.id, f.attach)
					}
					wrong++
					continue
				}
				paid = paid || e.Type == event.OrderPaid
			}
			return paid
		}
		paidHist := carry("the history", v.Events)
		paidKafka := a.kafkaOK && carry("Kafka", a.kafka[otn])
		l := a.led[otn]
		if l == nil || !l.paid() {
			return
		}
		switch {
		case !paidState(v.Order.State):
			a.fail(inv, otn, "shop order id %s: paid at WeChat (%s), %s at wxpayd", g.id, l.TransactionID, v.Order.State)
		case !paidHist:
			a.fail(inv, otn, "shop order id %s: paid at WeChat; the history has no order.paid carrying the shop order id and attach", g.id)
		case a.kafkaOK && !paidKafka:
			a.fail(inv, otn, "shop order id %s: paid at WeChat; Kafka has no order.paid carrying the shop order id and attach", g.id)
		}
	})
}
