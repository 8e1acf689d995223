package chaos

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
)

// Tests of the harness itself: they run in a plain go test (no binaries).

func TestPlanIsAFunctionOfTheSeed(t *testing.T) {
	t.Parallel()
	a, err := makePlan(42, 2*time.Minute, 3, 65*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := makePlan(42, 2*time.Minute, 3, 65*time.Second)
	c, _ := makePlan(43, 2*time.Minute, 3, 65*time.Second)
	if !reflect.DeepEqual(a, b) {
		t.Error("two plans of seed 42 differ")
	}
	if reflect.DeepEqual(a.scripts, c.scripts) {
		t.Error("seeds 42 and 43 made the same scripts")
	}
	if len(a.kills) != 3 || len(a.scripts) == 0 {
		t.Fatalf("plan: %d kills, %d scripts", len(a.kills), len(a.scripts))
	}
	for i, k := range a.kills {
		if k < 5*time.Second || k >= a.faultsOff-5*time.Second || i > 0 && k-a.kills[i-1] < 3*time.Second {
			t.Errorf("kill %d at %v (faults off at %v, kills %v)", i, k, a.faultsOff, a.kills)
		}
	}
	checkouts := 0
	for _, s := range a.scripts {
		if s.at < 0 || s.at >= a.load {
			t.Errorf("script %d starts at %v, outside [0, %v)", s.id, s.at, a.load)
		}
		if s.reuse != nil && *s.reuse == s.reqs[0] {
			t.Errorf("script %d reuses its key with the same body", s.id)
		}
		if s.kind != kindCheckout {
			continue
		}
		checkouts++
		if len(s.shop) < 2 || s.shop[0].other {
			t.Errorf("script %d: checkouts %+v: want the buyer's and at least one retry", s.id, s.shop)
		}
		if s.expiresIn != 0 && s.expiresIn != 60 { // 65 s to settle leave an order 60 s of life
			t.Errorf("script %d: expires_in %d, want 60 or none", s.id, s.expiresIn)
		}
		all := s.shop
		if s.shopLate != nil {
			all = append(all[:len(all):len(all)], *s.shopLate)
		}
		for _, c := range all {
			if c.session && c.other {
				t.Errorf("script %d: another buyer given as a session: %+v", s.id, c)
			}
		}
	}
	if checkouts == 0 || checkouts == len(a.scripts) {
		t.Errorf("%d of %d scripts are checkouts", checkouts, len(a.scripts))
	}
	if last := a.phases[len(a.phases)-1]; last.faults != "" || last.at != a.faultsOff {
		t.Errorf("the last fault phase is %+v; want faults off at %v", last, a.faultsOff)
	}
	if _, err := makePlan(1, 90*time.Second, 3, 65*time.Second); err == nil {
		t.Error("a run too short for the timers to settle was accepted")
	}
	if _, err := makePlan(1, 2*time.Minute, 40, 65*time.Second); err == nil {
		t.Error("40 kills in 2 minutes were accepted")
	}
}

func TestLineItemsSumToTheAmount(t *testing.T) {
	t.Parallel()
	for _, skus := range [][]string{{"a"}, {"a", "b"}, {"a", "b", "a"}} {
		for _, amount := range []int64{1, 2, 3, 100, 4999} {
			var sum int64
			for _, l := range lineItems(skus, amount) {
				if l.Quantity < 1 || l.UnitPrice < 0 {
					t.Errorf("%v, %d fen: line %+v", skus, amount, l)
				}
				sum += l.Quantity * l.UnitPrice
			}
			if sum != amount {
				t.Errorf("%v: lines of %d fen sum to %d", skus, amount, sum)
			}
		}
	}
}

// consistent builds the audit's inputs for a small run in which every
// invariant holds: order A paid and partly refunded, order B closed
// unpaid after a key reuse answered 422, order C a shop's checkout, paid,
// after one retry with another attach was answered 422, then retried
// once more with its own fields.
func consistent() *auditor {
	ev := func(otn string, seq uint64, typ string) event.Event {
		return event.Event{V: event.Version, EventID: event.ID(otn, seq), Type: typ, OutTradeNo: otn, Seq: seq}
	}
	a := &auditor{
		p:      &plan{skus: []skuPlan{{"s", 100, 10, 2}}},
		rec:    newRecorder(),
		minGap: 30 * time.Second,
		starts: []time.Time{time.UnixMilli(500)},
		skus:   map[string]skuView{"s": {SKU: "s", Stock: 10, Sold: 1, Reserved: 0, Left: 9}},
		stats:  &simStats{},
	}
	refunded := ev("A", 5, event.OrderRefunded)
	refunded.OutRefundNo = "A-R1"
	a.views = map[string]*adminView{
		"A": {Order: store.Order{OutTradeNo: "A", Seq: 5, State: store.StateRefunded, OpenID: "o1", SKU: "s", Quantity: 1,
			Total: 100, TransactionID: "T1", RefundedFen: 30,
			Refunds: []store.Refund{{OutRefundNo: "A-R1", Amount: 30, Status: "SUCCESS", RefundID: "R1"}}},
			Events: []event.Event{ev("A", 1, event.OrderCreated), ev("A", 2, event.OrderPrepaid), ev("A", 3, event.OrderPaid),
				ev("A", 4, event.OrderRefundRequested), refunded}},
		"B": {Order: store.Order{OutTradeNo: "B", Seq: 3, State: store.StateClosed, OpenID: "o2", SKU: "s", Quantity: 2, Total: 200},
			Events: []event.Event{ev("B", 1, event.OrderCreated), ev("B", 2, event.OrderPrepaid), ev("B", 3, event.OrderClosed)}},
	}
	a.led = map[string]*ledgerOrder{
		"A": {OutTradeNo: "A", TradeState: "REFUND", Total: 100, PaidTotal: 100, TransactionID: "T1", Refunded: 30,
			Refunds:   []ledgerRefund{{OutRefundNo: "A-R1", RefundID: "R1", Amount: 30, Status: "SUCCESS"}},
			Calls:     map[string]int{"prepay": 1, "refund": 1},
			CallTimes: map[string][]int64{"query": {}, "close": {}, "refund_query": {}}},
		"B": {OutTradeNo: "B", TradeState: "CLOSED", Total: 200, Calls: map[string]int{"prepay": 1, "close": 2},
			CallTimes: map[string][]int64{"query": {}, "close": {1000, 61000}, "refund_query": {}}},
	}
	a.missing, a.errs = map[string]bool{}, map[string]error{}
	view := func(otn, sku string, qty int64) *orderView {
		return &orderView{OutTradeNo: otn, State: "PREPAID", SKU: sku, Quantity: qty}
	}
	a.rec.orders = map[string]*knownOrder{"A": {otn: "A", sku: "s", qty: 1}, "B": {otn: "B", sku: "s", qty: 2}}
	a.rec.groups = []*keyGroup{
		{buyer: "b1", key: "kA", reqs: []*createReq{{p: params{"s", 1}, answers: []createAnswer{
			{answer: "502 WECHAT_UNAVAILABLE", status: 502, code: "WECHAT_UNAVAILABLE"},
			{answer: "200", status: 200, view: view("A", "s", 1)}}}}},
		{buyer: "b2", key: "kB", reqs: []*createReq{
			{p: params{"s", 2}, answers: []createAnswer{{answer: "201", status: 201, view: view("B", "s", 2)}}},
			{p: params{"s", 1}, sequential: true, answers: []createAnswer{
				{answer: "422 IDEMPOTENCY_KEY_REUSED", status: 422, code: "IDEMPOTENCY_KEY_REUSED"}}}}},
	}
	a.rec.intents = []*refundIntent{
		{otn: "A", amount: 30, answers: []answer{{status: 202}}},
		{otn: "A", amount: 500, kind: refundOver, answers: []answer{{status: 400}}},
	}
	a.rec.pays = []payAttempt{{otn: "A", txn: "T1"}, {otn: "A", answer: "409 ORDER_PAID"}, {otn: "C", txn: "T3"}}

	shopEv := func(seq uint64, typ string) event.Event {
		e := ev("C", seq, typ)
		e.ShopOrderID, e.Attach = "shop-1", "cart-1"
		return e
	}
	items := []store.LineItem{{SKU: "s", Name: "chaos s", Quantity: 1, UnitPrice: 300}}
	a.views["C"] = &adminView{Order: store.Order{OutTradeNo: "C", Seq: 3, State: store.StatePaid, OpenID: "o3", Description: "d",
		Total: 300, TransactionID: "T3", ShopOrderID: "shop-1", Attach: "cart-1", LineItems: items, CreatedMs: 1000, ExpiresMs: 61000},
		Events: []event.Event{shopEv(1, event.OrderCreated), shopEv(2, event.OrderPrepaid), shopEv(3, event.OrderPaid)}}
	a.led["C"] = &ledgerOrder{OutTradeNo: "C", TradeState: "SUCCESS", Total: 300, PaidTotal: 300, TransactionID: "T3",
		OpenID: "o3", Description: "d", Attach: "cart-1", Calls: map[string]int{"prepay": 1}}
	a.rec.orders["C"] = &knownOrder{otn: "C", total: 300}
	own := checkoutFields{openid: "o3", description: "d", attach: "cart-1", lines: lineKey(items), amount: 300, life: time.Minute}
	otherAttach := own
	otherAttach.attach = "cart-1-2"
	shopView := &orderView{OutTradeNo: "C", State: "PREPAID", Description: "d", ShopOrderID: "shop-1", Attach: "cart-1", LineItems: items}
	shopView.Amount.Total = 300
	a.rec.shops = []*shopGroup{{id: "shop-1", listed: [][]string{{"C"}}, reqs: []*checkoutReq{
		{f: own, items: items, answers: []createAnswer{{answer: "201", status: 201, view: shopView}}},
		{f: otherAttach, session: true, answers: []createAnswer{
			{answer: "409 ORDER_IN_PROGRESS", status: 409, code: "ORDER_IN_PROGRESS", transient: true},
			{answer: "422 IDEMPOTENCY_KEY_REUSED", status: 422, code: "IDEMPOTENCY_KEY_REUSED"}}},
		{f: own, sequential: true, answers: []createAnswer{{answer: "200", status: 200, view: shopView}}},
	}}}
	a.shops = map[string][]string{"shop-1": {"C"}}
	sv := &simOrderView{TradeState: "REFUND", TransactionID: "T1"}
	sv.Notifications = append(sv.Notifications,
		notification("n1", "TRANSACTION.SUCCESS", "genuine", true), notification("n1", "TRANSACTION.SUCCESS", "duplicate", true),
		notification("n1", "TRANSACTION.SUCCESS", "tampered", false), notification("n2", "REFUND.SUCCESS", "genuine", true))
	a.simView = map[string]*simOrderView{"A": sv}
	a.kafka, a.kafkaOK = map[string][]event.Event{}, true
	for otn, v := range a.views {
		a.kafka[otn] = append(a.kafka[otn], v.Events...)
	}
	a.kafka["A"] = append(a.kafka["A"], a.views["A"].Events[2]) // redelivered: allowed
	before := &snapshot{views: map[string]*adminView{}, skus: map[string]skuView{"s": a.skus["s"]}, shops: map[string][]string{"shop-1": {"C"}}}
	for otn, v := range a.views {
		c := *v
		before.views[otn] = &c
	}
	a.before = before
	return a
}

func notification(id, typ, kind string, acked bool) simNotification {
	return simNotification{ID: id, EventType: typ, Kind: kind, Acknowledged: acked}
}

func TestAuditPassesAConsistentRun(t *testing.T) {
	t.Parallel()
	if v := consistent().run(); len(v) != 0 {
		t.Fatalf("violations in a consistent run: %v", v)
	}
}

func TestAuditFindsEachBrokenInvariant(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		want   string // the invariant that must break
		breaks func(a *auditor)
	}{
		{"an acknowledged order is lost", "orders exist", func(a *auditor) {
			delete(a.views, "B")
			a.missing["B"] = true
		}},
		{"an order is left PREPAID", "settled", func(a *auditor) { a.views["B"].Order.State = store.StatePrepaid }},
		{"notifications still pending at the end", "settled", func(a *auditor) {
			a.pending = []pendingItem{{"", "wxpaysim has 2 notifications pending"}}
		}},
		{"WeChat was paid, wxpayd closed it", "paid equals WeChat", func(a *auditor) {
			a.led["B"].TradeState, a.led["B"].TransactionID, a.led["B"].PaidTotal = "SUCCESS", "T2", 200
		}},
		{"a lost refund answer booked FAILED", "refunds equal WeChat", func(a *auditor) {
			o := &a.views["A"].Order
			o.State, o.RefundedFen, o.Refunds[0].Status = store.StatePaid, 0, "FAILED"
		}},
		{"a refund nobody asked for", "no refund unasked", func(a *auditor) {
			a.led["A"].Refunds = append(a.led["A"].Refunds, ledgerRefund{OutRefundNo: "A-R2", Amount: 30, Status: "CLOSED"})
			o := &a.views["A"].Order
			o.Refunds = append(o.Refunds, store.Refund{OutRefundNo: "A-R2", Amount: 30, Status: "CLOSED"})
		}},
		{"a refused refund happened anyway", "no refund unasked", func(a *auditor) {
			a.rec.intents[0].answers = []answer{{status: 409}}
		}},
		{"one out_refund_no on two orders", "out_refund_no unique", func(a *auditor) {
			a.led["B"].Refunds = []ledgerRefund{{OutRefundNo: "A-R1", Amount: 1, Status: "CLOSED"}}
		}},
		{"two 2xx answers name two orders", "idempotency keys", func(a *auditor) {
			g := a.rec.groups[0]
			g.reqs = append(g.reqs, &createReq{p: params{"s", 1}, answers: []createAnswer{
				{answer: "200", status: 200, view: &orderView{OutTradeNo: "B", SKU: "s", Quantity: 2}}}})
		}},
		{"a key reused with another body answered 200", "idempotency keys", func(a *auditor) {
			a.rec.groups[1].reqs[1].answers = []createAnswer{{answer: "200", status: 200, view: &orderView{OutTradeNo: "B", SKU: "s", Quantity: 2}}}
		}},
		{"a key reused with another body answered SOLD_OUT", "idempotency keys", func(a *auditor) {
			a.rec.groups[1].reqs[1].answers = []createAnswer{{answer: "409 SOLD_OUT", status: 409, code: "SOLD_OUT"}}
		}},
		{"the order's own body answered 422", "idempotency keys", func(a *auditor) {
			a.rec.groups[1].reqs[1].p = params{"s", 2}
		}},
		{"sold drifts from the paid orders", "stock per SKU", func(a *auditor) { a.skus["s"] = skuView{Stock: 10, Sold: 2, Left: 8} }},
		{"a released reservation still counted", "stock per SKU", func(a *auditor) { a.skus["s"] = skuView{Stock: 10, Sold: 1, Reserved: 2, Left: 7} }},
		{"a buyer beyond the limit", "per-buyer limit", func(a *auditor) {
			a.views["B"].Order.OpenID = "o1"
			a.views["B"].Order.State, a.views["B"].Order.TransactionID = store.StatePaid, "T2"
			a.led["B"].TradeState, a.led["B"].TransactionID, a.led["B"].PaidTotal = "SUCCESS", "T2", 200
		}},
		{"a tampered notification acknowledged", "acknowledged notifications durable", func(a *auditor) {
			a.simView["A"].Notifications[2].Acknowledged = true
		}},
		{"a seq missing from the history", "history", func(a *auditor) {
			a.views["B"].Events = a.views["B"].Events[1:]
		}},
		{"an event missing from Kafka", "events in Kafka", func(a *auditor) { a.kafka["B"] = a.kafka["B"][:2] }},
		{"an event_id in Kafka with two contents", "events in Kafka", func(a *auditor) {
			e := a.kafka["A"][0]
			e.State = "PAID"
			a.kafka["A"] = append(a.kafka["A"], e)
		}},
		{"a close storm", "WeChat calls spaced", func(a *auditor) { a.led["B"].CallTimes["close"] = []int64{1000, 1001, 1003} }},
		{"a query storm beyond the transport retry", "WeChat calls spaced", func(a *auditor) {
			a.led["B"].CallTimes["query"] = []int64{100000, 100001, 100002}
		}},
		{"a query retried by the timer too soon", "WeChat calls spaced", func(a *auditor) {
			a.led["A"].CallTimes["query"] = []int64{1000, 5000}
		}},
		{"more prepay calls than create requests", "WeChat calls spaced", func(a *auditor) { a.led["A"].Calls["prepay"] = 3 }},
		{"the SKU reads otherwise after the restart", "memory equals disk", func(a *auditor) {
			a.before.skus["s"] = skuView{Stock: 10, Sold: 1, Reserved: 1, Left: 8}
		}},
		{"a payment the ledger does not have", "buyer payments in the ledger", func(a *auditor) {
			a.rec.pays = append(a.rec.pays, payAttempt{otn: "B", txn: "T9"})
		}},
		{"a shop's retry answered with another order", "one order per shop order id", func(a *auditor) {
			q := a.rec.shops[0].reqs[0]
			q.answers = append(q.answers, createAnswer{answer: "200", status: 200, view: &orderView{OutTradeNo: "B"}})
		}},
		{"the admin list names another order after the final kill", "one order per shop order id", func(a *auditor) {
			a.shops["shop-1"] = []string{"B"}
		}},
		{"the admin list named none during the run, after the order was acknowledged", "one order per shop order id", func(a *auditor) {
			a.rec.shops[0].listed = [][]string{{}}
		}},
		{"two records carry one shop order id", "one order per shop order id", func(a *auditor) {
			a.views["B"].Order.ShopOrderID = "shop-1"
		}},
		{"a retry with another attach answered 200", "checkout answers", func(a *auditor) {
			q := a.rec.shops[0].reqs[1]
			q.answers[1] = a.rec.shops[0].reqs[0].answers[0]
		}},
		{"a retry with the order's own fields answered 422", "checkout answers", func(a *auditor) {
			a.rec.shops[0].reqs[1].f = a.rec.shops[0].reqs[0].f
		}},
		{"a late retry with other fields answered 409 CONFLICT", "checkout answers", func(a *auditor) {
			q := a.rec.shops[0].reqs[2]
			q.f.amount++
			q.answers = []createAnswer{{answer: "409 CONFLICT", status: 409, code: "CONFLICT"}}
		}},
		{"an answer shows no line items", "checkout answers", func(a *auditor) {
			v := *a.rec.shops[0].reqs[0].answers[0].view
			v.LineItems = nil
			a.rec.shops[0].reqs[0].answers[0].view = &v
		}},
		{"the order lives longer than asked", "checkout answers", func(a *auditor) { a.views["C"].Order.ExpiresMs += 1000 }},
		{"the order is for a buyer no request named", "checkout answers", func(a *auditor) { a.views["C"].Order.OpenID = "o9" }},
		{"WeChat was asked for another amount", "WeChat collects the checkout", func(a *auditor) {
			a.led["C"].Total, a.led["C"].PaidTotal = 301, 301
		}},
		{"WeChat was asked without the attach", "WeChat collects the checkout", func(a *auditor) { a.led["C"].Attach = "" }},
		{"WeChat was asked to collect from another buyer", "WeChat collects the checkout", func(a *auditor) { a.led["C"].OpenID = "o1" }},
		{"a checkout's line reserved its SKU", "checkouts hold no stock", func(a *auditor) {
			a.skus["s"] = skuView{SKU: "s", Stock: 10, Sold: 1, Reserved: 1, Left: 8}
		}},
		{"a checkout record holds a SKU", "checkouts hold no stock", func(a *auditor) {
			a.views["C"].Order.SKU, a.views["C"].Order.Quantity = "s", 1
		}},
		{"an event in Kafka without the attach", "checkout events carry the shop's fields", func(a *auditor) {
			a.kafka["C"][2].Attach = ""
		}},
		{"paid at WeChat, no order.paid carrying the shop order id", "checkout events carry the shop's fields", func(a *auditor) {
			a.views["C"].Events[2].ShopOrderID = ""
		}},
		{"paid at WeChat, closed at wxpayd", "checkout events carry the shop's fields", func(a *auditor) {
			a.views["C"].Order.State = store.StateClosed
		}},
	} {
		a := consistent()
		c.breaks(a)
		v := a.run()
		found := false
		for _, x := range v {
			found = found || x.invariant == c.want
		}
		if !found {
			t.Errorf("%s: want %q broken; got %v", c.name, c.want, v)
		}
	}
}

func TestSpacingAllowsRestartsAndOtherSteps(t *testing.T) {
	t.Parallel()
	a := consistent()
	a.led["B"].CallTimes["query"] = []int64{1000, 2000} // a close between: the order moved a step
	a.led["B"].CallTimes["close"] = []int64{1500}
	a.led["A"].CallTimes["close"] = []int64{3000, 3500} // wxpayd started in between
	a.starts = append(a.starts, time.UnixMilli(3200))
	a.led["A"].Refunds = append(a.led["A"].Refunds, ledgerRefund{OutRefundNo: "A-R2", Amount: 1, Status: "CLOSED"})
	a.views["A"].Order.Refunds = append(a.views["A"].Order.Refunds, store.Refund{OutRefundNo: "A-R2", Amount: 1, Status: "CLOSED"})
	a.rec.intents = append(a.rec.intents, &refundIntent{otn: "A", amount: 1})
	a.led["A"].CallTimes["refund_query"] = []int64{9000, 9001} // one per refund
	a.led["A"].CallTimes["query"] = []int64{20000, 20001}      // a GET and its transport retry
	for _, v := range a.run() {
		if strings.HasPrefix(v.invariant, "WeChat calls") {
			t.Errorf("false alarm: %v", v)
		}
	}
}
