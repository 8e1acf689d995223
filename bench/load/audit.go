package load

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxpayd/wxpayd/bench/sim"
	"github.com/wxpayd/wxpayd/sink/clickhouse"
)

// AuditResult is the end-state audit.
type AuditResult struct {
	Passed bool    `json:"passed"`
	Checks []Check `json:"checks"`
	// Numbers the checks compare, for the report.
	Numbers map[string]int64 `json:"numbers"`
	SKUs    []SKUState       `json:"skus"`
	// Faults are wxpaysim's extra notification copies during this run.
	Faults map[string]sim.Fault `json:"faults"`
}

// Check is one audit assertion.
type Check struct {
	Name    string `json:"name"`
	Passed  bool   `json:"passed"`
	Skipped bool   `json:"skipped,omitempty"`
	Detail  string `json:"detail"`
	Why     string `json:"why"`
}

// SKUState is a SKU's counts at the end, from GET /admin/v1/skus/{sku}.
type SKUState struct {
	SKU      string `json:"sku"`
	Stock    int64  `json:"stock"`
	Left     int64  `json:"left"`
	Reserved int64  `json:"reserved"`
	Sold     int64  `json:"sold"`
	Paid     int64  `json:"paid_orders"` // orders of this SKU reading PAID
}

// orderState is an order as wxpayd reports it at audit time.
type orderState struct {
	State         string `json:"state"`
	TransactionID string `json:"transaction_id"`
	ExpiresAt     string `json:"expires_at"`
	expires       time.Time
	err           string
}

func (o orderState) open() bool { return o.State == "CREATED" || o.State == "PREPAID" }
func (o orderState) paid() bool {
	return o.State == "PAID" || o.State == "REFUNDING" || o.State == "REFUNDED"
}

// audit drains the run and checks the end state:
//
//  1. no oversell: per SKU, sold ≤ stock and sold + reserved + left = stock;
//  2. wxpaysim's paid count (this run) = wxpayd's PAID orders = units sold =
//     payments the buyers made;
//  3. ClickHouse holds exactly one order.paid per paid order (after the sink
//     catches up, within AuditTimeout), when --clickhouse is given;
//  4. no order is left CREATED or PREPAID past its TTL (plus TTLGrace);
//  5. every tampered or stale copy was rejected, and wxpayd counted them;
//  6. every duplicate copy was answered 2xx;
//  7. every payment wxpaysim saw acknowledged is PAID in wxpayd with the same
//     transaction_id (none lost), and none is pending or given up;
//  8. every paying buyer saw PAID within PaidTimeout;
//  9. notify-storm only: faults were injected at all;
//  10. with --refund-share: once refunds settled, wxpayd's refunds equal
//     WeChat's order by order (amounts, outcomes, no refund the admin did
//     not ask for, none twice);
//  11. with --sim-faults: WeChat API faults were injected at all;
//  12. every order was created, and every payment signed, through the
//     merchant API wxpayd runs (--api).
func (r *runner) audit(ctx context.Context, before snapshot) AuditResult {
	cfg := &r.cfg
	a := AuditResult{Numbers: map[string]int64{}}
	add := func(c Check) { a.Checks = append(a.Checks, c) }
	deadline := time.Now().Add(cfg.AuditTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}

	// Drain: wxpaysim finishes every delivery (genuine retries and fault
	// copies) or the deadline passes.
	after, drainErr := r.drain(ctx, deadline)

	states := r.orderStates(ctx)
	if cfg.AwaitTTL {
		states = r.awaitTTL(ctx, states)
	}
	skus := r.skuStates(ctx, states)
	a.SKUs = skus
	final, snapErr := r.snapshot(ctx)
	if snapErr == nil {
		after = final.sim
	}

	// Counts.
	var paidOrders, openDue, openNotDue, closed, unknown, lost, mismatch int64
	var buyersPaid, seen int64
	var latestOpen time.Time
	now := time.Now()
	var lostEx []string
	for _, b := range r.buyers {
		if b.otn == "" {
			continue
		}
		st := states[b.otn]
		switch {
		case st.err != "":
			unknown++
		case st.paid():
			paidOrders++
		case st.open():
			if !st.expires.IsZero() && now.After(st.expires.Add(cfg.TTLGrace)) {
				openDue++
			} else {
				openNotDue++
				if st.expires.After(latestOpen) {
					latestOpen = st.expires
				}
			}
		case st.State == "CLOSED" || st.State == "FAILED":
			closed++
		}
		if b.paid {
			buyersPaid++
			switch {
			case !st.paid():
				lost++
				if len(lostEx) < 5 {
					lostEx = append(lostEx, b.otn+" reads "+cmp.Or(st.State, st.err))
				}
			case st.TransactionID != b.txn:
				mismatch++
				if len(lostEx) < 5 {
					lostEx = append(lostEx, b.otn+" has transaction_id "+st.TransactionID+", wxpaysim said "+b.txn)
				}
			}
		}
		if b.seenPaid {
			seen++
		}
	}
	simPaid := int64(after.Paid - before.sim.Paid)
	soldOf := func(skus []SKUState) (sold int64) {
		for _, s := range skus {
			sold += s.Sold
		}
		return sold
	}
	sold := soldOf(skus)
	// In cluster mode a payment on one node is committed to the SKU's owner
	// on another by a retried message: the owner's count settles shortly
	// after the order reads PAID. Wait for it (within the audit deadline)
	// rather than report a lag as a mismatch.
	for sold != paidOrders && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		skus = r.skuStates(ctx, states)
		sold = soldOf(skus)
	}
	a.SKUs = skus
	n := a.Numbers
	n["wxpaysim_paid"] = simPaid
	n["wxpayd_paid_orders"] = paidOrders
	n["wxpayd_units_sold"] = sold
	n["buyer_payments"] = buyersPaid
	n["buyers_saw_paid"] = seen
	n["orders_open_within_ttl"] = openNotDue
	n["orders_open_past_ttl"] = openDue
	n["orders_closed"] = closed
	n["orders_unreadable"] = unknown

	// 1. No oversell.
	{
		c := Check{Name: "no oversell", Passed: len(skus) > 0,
			Why: "Stock is reserved at prepay and committed at payment by one actor per SKU; selling more units than exist is the one bug a flash sale must never have."}
		var parts []string
		for _, s := range skus {
			ok := s.Sold <= s.Stock && s.Sold+s.Reserved+s.Left == s.Stock && s.Paid <= s.Stock
			if !ok {
				c.Passed = false
			}
			parts = append(parts, fmt.Sprintf("%s: stock %d, sold %d, reserved %d, left %d, PAID orders %d", s.SKU, s.Stock, s.Sold, s.Reserved, s.Left, s.Paid))
		}
		if len(skus) == 0 {
			parts = append(parts, "no SKU could be read")
		}
		c.Detail = strings.Join(parts, "; ")
		add(c)
	}
	// 2. Paid counts agree.
	add(Check{Name: "paid counts agree (wxpaysim = wxpayd)",
		Passed: simPaid == paidOrders && paidOrders == sold && sold == buyersPaid && unknown == 0,
		Detail: fmt.Sprintf("wxpaysim paid %d (Δ of /sim/v1/stats paid), wxpayd PAID orders %d, units sold %d, buyers told 201 by /sim/v1/pay %d, orders unreadable %d",
			simPaid, paidOrders, sold, buyersPaid, unknown),
		Why: "Money WeChat took must be exactly the orders the shop marks paid and the units it ships: no payment dropped, none counted twice."})
	// 3. ClickHouse.
	add(r.clickhouseCheck(ctx, paidOrders, n))
	// 4. TTL.
	{
		c := Check{Name: "no order left PREPAID past its TTL", Passed: openDue == 0 && unknown == 0,
			Why: "An unpaid order must be closed at WeChat when its TTL passes and its stock released, or units stay locked and the buyer could still pay a dead order."}
		c.Detail = fmt.Sprintf("%d open past TTL+%v, %d closed, %d open and not yet due", openDue, cfg.TTLGrace, closed, openNotDue)
		if openNotDue > 0 {
			c.Detail += fmt.Sprintf(" (latest expiry %s; run with --await-ttl and a short WXPAYD_ORDER_TTL to see them closed)", latestOpen.Format(time.RFC3339))
		}
		if cfg.AwaitTTL {
			var reserved int64
			for _, s := range skus {
				reserved += s.Reserved
			}
			c.Detail += fmt.Sprintf("; waited for TTLs: %d units still reserved", reserved)
			if openNotDue == 0 && reserved != 0 {
				c.Passed = false
			}
		}
		add(c)
	}
	// 5–6. Faults.
	a.Faults = map[string]sim.Fault{}
	for k, f := range after.Faults {
		b := before.sim.Faults[k]
		a.Faults[k] = sim.Fault{Sent: f.Sent - b.Sent, Accepted: f.Accepted - b.Accepted, Rejected: f.Rejected - b.Rejected, Failed: f.Failed - b.Failed}
	}
	tam, sta, dup := a.Faults["tampered"], a.Faults["stale"], a.Faults["duplicate"]
	var wxRejected float64
	if snapErr == nil {
		wxRejected = final.metrics.sum("wxpayd_notifications_total", "outcome", "rejected") -
			before.metrics.sum("wxpayd_notifications_total", "outcome", "rejected")
	}
	n["wxpayd_notifications_rejected"] = int64(wxRejected)
	{
		bad := tam.Sent + sta.Sent
		c := Check{Name: "every tampered or stale notification rejected",
			Passed: tam.Accepted == 0 && sta.Accepted == 0 && tam.Failed == 0 && sta.Failed == 0 &&
				tam.Rejected == tam.Sent && sta.Rejected == sta.Sent && int64(wxRejected) >= int64(tam.Rejected+sta.Rejected) && snapErr == nil,
			Detail: fmt.Sprintf("tampered: sent %d, rejected %d, accepted %d, unanswered %d; stale: sent %d, rejected %d, accepted %d, unanswered %d; wxpayd_notifications_total{outcome=\"rejected\"} Δ %d",
				tam.Sent, tam.Rejected, tam.Accepted, tam.Failed, sta.Sent, sta.Rejected, sta.Accepted, sta.Failed, int64(wxRejected)),
			Why: "A notification with a bad signature or a timestamp older than 5 minutes may be forged or replayed: wxpayd must answer non-2xx and never move an order on it."}
		if snapErr != nil {
			c.Detail += "; /metrics unreadable: " + snapErr.Error()
		}
		if bad == 0 {
			c.Detail = "none injected (start wxpaysim with --tamper-rate and --stale-rate to test this)"
		}
		add(c)
	}
	add(Check{Name: "duplicate notifications acknowledged once",
		Passed: dup.Accepted == dup.Sent && simPaid == paidOrders,
		Detail: fmt.Sprintf("duplicate copies: sent %d, answered 2xx %d, rejected %d, unanswered %d; paid orders still %d", dup.Sent, dup.Accepted, dup.Rejected, dup.Failed, paidOrders),
		Why:    "WeChat resends notifications; a duplicate must get 2xx (or WeChat keeps retrying) and must not pay the order twice."})
	if cfg.Scenario == ScenarioNotifyStorm {
		add(Check{Name: "faults injected", Passed: tam.Sent+sta.Sent > 0 && dup.Sent > 0,
			Detail: fmt.Sprintf("duplicate %d, tampered %d, stale %d copies", dup.Sent, tam.Sent, sta.Sent),
			Why:    "A notify-storm needs wxpaysim started with --dup-rate, --tamper-rate and --stale-rate; without them it tests nothing."})
	}
	// 7. None lost.
	{
		acked := int64(after.Notifications.Acknowledged - before.sim.Notifications.Acknowledged)
		givenUp := int64(after.Notifications.GivenUp - before.sim.Notifications.GivenUp)
		pending := int64(after.Notifications.Pending)
		n["wxpaysim_acknowledged"] = acked
		c := Check{Name: "every acknowledged notification durable (none lost)",
			Passed: lost == 0 && mismatch == 0 && acked >= buyersPaid && givenUp == 0 && pending == 0 && drainErr == nil,
			Detail: fmt.Sprintf("wxpaysim acknowledged %d genuine notifications (Δ), pending %d, given up %d; of %d payments, %d not PAID in wxpayd, %d with another transaction_id",
				acked, pending, givenUp, buyersPaid, lost, mismatch),
			Why: "wxpayd answers 2xx only after the payment is fsync'd; an acknowledged payment that later reads unpaid is money lost (WeChat stops retrying once it has a 2xx)."}
		if len(lostEx) > 0 {
			c.Detail += "; e.g. " + strings.Join(lostEx, ", ")
		}
		if drainErr != nil {
			c.Detail += "; " + drainErr.Error()
		}
		add(c)
	}
	// 8. Buyers saw PAID.
	add(Check{Name: "every payer saw PAID", Passed: seen == buyersPaid,
		Detail: fmt.Sprintf("%d of %d paying buyers read PAID within %v", seen, buyersPaid, cfg.PaidTimeout),
		Why:    "After wx.requestPayment succeeds the Mini Program polls the order; a buyer who paid and never sees PAID calls support."})
	// 10. Refunds.
	add(r.refundCheck(ctx, deadline, n))
	// 11. API faults.
	if c, ok := r.apiFaultCheck(before.sim, after, n); ok {
		add(c)
	}
	// 12. The merchant API (api.go).
	add(r.apiCheck(before.sim, after, n))

	a.Passed = true
	for _, c := range a.Checks {
		if !c.Passed && !c.Skipped {
			a.Passed = false
		}
	}
	return a
}

// drain waits until wxpaysim has no notification pending, nothing
// scheduled (a refund still PROCESSING has its notification to come) and
// every fault copy was answered, or deadline. It returns the last stats
// read.
func (r *runner) drain(ctx context.Context, deadline time.Time) (sim.Stats, error) {
	var st sim.Stats
	var err error
	for {
		st, err = r.simStats(ctx)
		if err == nil {
			done := st.Notifications.Pending == 0 && st.Live.Scheduled == 0
			for _, f := range st.Faults {
				if f.Sent != f.Accepted+f.Rejected+f.Failed {
					done = false
				}
			}
			if done {
				return st, nil
			}
		}
		if time.Now().After(deadline) || !sleep(ctx, 200*time.Millisecond) {
			if err != nil {
				return st, fmt.Errorf("wxpaysim unreadable: %w", err)
			}
			return st, fmt.Errorf("wxpaysim still had %d notifications pending at the audit deadline", st.Notifications.Pending)
		}
	}
}

// orderStates reads every order of the run through the buyer API.
func (r *runner) orderStates(ctx context.Context) map[string]orderState {
	var list []*buyer
	for _, b := range r.buyers {
		if b.otn != "" {
			list = append(list, b)
		}
	}
	out := make(map[string]orderState, len(list))
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(len(list), 64); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(list) {
					return
				}
				b := list[i]
				st := r.readOrder(ctx, b)
				mu.Lock()
				out[b.otn] = st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

func (r *runner) readOrder(ctx context.Context, b *buyer) orderState {
	var st orderState
	for attempt := 0; attempt < 3; attempt++ {
		rep, err := b.st.do("GET", "/api/v1/orders/"+b.otn, b.token, nil, r.deadline(ctx))
		switch {
		case err != nil:
			st.err = transportCode(err)
		case rep.status != 200:
			st.err = answerCode(rep)
		default:
			if err := json.Unmarshal(rep.body, &st); err != nil {
				st.err = "bad JSON"
				continue
			}
			st.err = ""
			st.expires, _ = time.Parse(time.RFC3339, st.ExpiresAt)
			return st
		}
		if !sleep(ctx, 200*time.Millisecond) {
			break
		}
	}
	return st
}

// awaitTTL waits until every open order is past its TTL plus TTLGrace (or
// closed), leaving 30 s of ctx for the rest of the audit, and rereads them.
func (r *runner) awaitTTL(ctx context.Context, states map[string]orderState) map[string]orderState {
	var latest time.Time
	for _, st := range states {
		if st.open() && st.expires.After(latest) {
			latest = st.expires
		}
	}
	if latest.IsZero() {
		r.notes = append(r.notes, "--await-ttl: no order was open after the window; nothing to wait for.")
		return states
	}
	until := latest.Add(r.cfg.TTLGrace)
	if d, ok := ctx.Deadline(); ok && d.Add(-30*time.Second).Before(until) {
		until = d.Add(-30 * time.Second)
	}
	t0 := time.Now()
	for time.Now().Before(until) {
		if !sleep(ctx, min(2*time.Second, time.Until(until))) {
			break
		}
		open := false
		for _, st := range states {
			if st.open() {
				open = true
				break
			}
		}
		if !open {
			break
		}
		if time.Now().After(latest) { // past every TTL: reread to see them close
			states = r.orderStates(ctx)
		}
	}
	states = r.orderStates(ctx)
	r.notes = append(r.notes, fmt.Sprintf("--await-ttl: waited %.0f s after the window for unpaid orders to pass their TTL (latest %s) and be closed.",
		time.Since(t0).Seconds(), latest.Format(time.RFC3339)))
	return states
}

// skuStates reads every SKU of the run and counts its PAID orders.
func (r *runner) skuStates(ctx context.Context, states map[string]orderState) []SKUState {
	paid := map[string]int64{}
	for _, b := range r.buyers {
		if b.otn != "" && states[b.otn].paid() {
			paid[b.sku]++
		}
	}
	var out []SKUState
	for _, s := range r.skus {
		rep, err := r.targets[0].do("GET", "/admin/v1/skus/"+s.name, r.admin, nil, r.deadline(ctx))
		if err != nil || rep.status != 200 {
			continue
		}
		var v SKUState
		if json.Unmarshal(rep.body, &v) != nil {
			continue
		}
		v.Paid = paid[s.name]
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SKU < out[j].SKU })
	return out
}

// clickhouseCheck waits until ClickHouse holds one order.paid event per
// paid order of the run's SKUs, for at most AuditTimeout.
func (r *runner) clickhouseCheck(ctx context.Context, want int64, n map[string]int64) Check {
	deadline := time.Now().Add(r.cfg.AuditTimeout)
	c := Check{Name: "ClickHouse has every payment once",
		Why: "Analysts count sales in ClickHouse; the outbox → Kafka → sink pipeline must deliver every order.paid event, exactly once in effect, within seconds."}
	if r.cfg.ClickHouse == "" {
		c.Skipped, c.Passed = true, true
		c.Detail = "skipped: no --clickhouse address given"
		return c
	}
	conn, err := clickhouse.Dial(clickhouse.Config{Addr: r.cfg.ClickHouse, ReadTimeout: 10 * time.Second}, "")
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	defer conn.Close()
	var names []string
	for _, s := range r.skus {
		names = append(names, "'"+s.name+"'") // validated [0-9a-z-]
	}
	q := fmt.Sprintf("SELECT uniqExact(out_trade_no), uniqExact(event_id) FROM %s.events WHERE type = 'order.paid' AND sku IN (%s)",
		r.cfg.ClickHouseDB, strings.Join(names, ","))
	t0 := time.Now()
	var orders, events uint64
	var lastErr error
	for {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		lastErr = conn.QueryRow(qctx, q).Scan(&orders, &events)
		cancel()
		if lastErr == nil && int64(orders) >= want {
			break
		}
		if time.Now().After(deadline) || !sleep(ctx, 500*time.Millisecond) {
			break
		}
	}
	n["clickhouse_paid_orders"] = int64(orders)
	n["clickhouse_paid_events"] = int64(events)
	c.Passed = lastErr == nil && int64(orders) == want && events == orders
	c.Detail = fmt.Sprintf("%d distinct paid orders and %d distinct order.paid events in %s.events for this run's SKUs (want %d each), %.1f s after the audit began waiting",
		orders, events, r.cfg.ClickHouseDB, want, time.Since(t0).Seconds())
	if lastErr != nil {
		c.Detail += "; last error: " + lastErr.Error()
	}
	return c
}
