package chaos

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/sink/itest"
)

// config is the run's settings from the environment.
type config struct {
	seed     uint64
	duration time.Duration
	kills    int
	minGap   time.Duration
}

func configFromEnv(t *testing.T) config {
	t.Helper()
	c := config{duration: 2 * time.Minute, kills: 3}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED %q: want an unsigned integer", v)
		}
		c.seed = n
	} else {
		var b [8]byte
		_, _ = crand.Read(b[:])
		c.seed = binary.LittleEndian.Uint64(b[:]) >> 1 // fits an int64 too, for any tool
	}
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CHAOS_DURATION %q: want a positive duration like 2m", v)
		}
		c.duration = d
	}
	if v := os.Getenv("CHAOS_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("CHAOS_KILLS %q: want a count", v)
		}
		c.kills = n
	}
	if v := os.Getenv("CHAOS_MIN_GAP"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			t.Fatalf("CHAOS_MIN_GAP %q: want a duration", v)
		}
		c.minGap = d
	}
	return c
}

// TestChaos: money stays right when buyers race and WeChat fails. See the
// package documentation for the run and audit_test.go for the invariants.
func TestChaos(t *testing.T) {
	if !itest.Integration() {
		t.Skip("chaos audit: real wxpayd and wxpaysim binaries for minutes; `make test` runs the short version, `make chaos` the long one (or set " + itest.EnvIntegration + "=1)")
	}
	cfg := configFromEnv(t)
	replay := fmt.Sprintf("make chaos SEED=%d DURATION=%v KILLS=%d", cfg.seed, cfg.duration, cfg.kills)
	t.Logf("CHAOS_SEED=%d CHAOS_DURATION=%v CHAOS_KILLS=%d (replay: %s)", cfg.seed, cfg.duration, cfg.kills, replay)
	t0 := time.Now()

	dir := t.TempDir()
	bin := binaries(t)
	has := simFlags(bin["wxpaysim"])
	opts := detectOptions(bin["wxpayd"], cfg.duration)
	if cfg.minGap == 0 {
		// wxpayd spaces a background call's retries by a backoff whose base
		// is the first query's delay, less up to a fifth of jitter; half of
		// it leaves room for calls that waited in wxpayd's call queue.
		cfg.minGap = opts.queryAfter / 2
	}
	settle := max(opts.ttl, opts.closeGrace) + 5*time.Second
	p, err := makePlan(cfg.seed, cfg.duration, cfg.kills, settle)
	if err != nil {
		t.Fatal(err)
	}
	// No --drop-rate: it cannot be switched off for the settling, and the
	// lost fault (the answer lost after the call took effect) is the same
	// failure, switched with the others.
	simArgs := []string{
		"--notify-speedup", "50", "--dup-rate", "0.15", "--tamper-rate", "0.05", "--stale-rate", "0.05",
		"--seed", strconv.FormatUint(p.simSeed, 10), "--log-level", "warn",
	}
	// Faults from the first moment: by flag when wxpaysim serve has them,
	// else through its control API before wxpayd starts. Slow answers must
	// outlast wxpayd's call timeouts (wxpaysim's default delay, 12 s, does).
	if has["faults"] && has["refund-outcomes"] {
		simArgs = append(simArgs, "--faults", p.phases[0].faults, "--refund-outcomes", p.phases[0].outcomes)
	}
	if has["slow-delay"] {
		simArgs = append(simArgs, "--slow-delay", (opts.callLimit + time.Second).String())
	} else if opts.callLimit >= 12*time.Second {
		t.Fatalf("wxpaysim has no --slow-delay and wxpayd's calls wait up to %v: slow faults would not time out", opts.callLimit)
	}
	s := newStack(t, dir, bin, opts, simArgs)
	(&runner{s: s, logf: t.Logf}).setFaults(context.Background(), p.phases[0])
	t.Logf("wxpaysim %s", strings.Join(simArgs, " "))
	t.Logf("wxpayd %s (query after %v, close grace %v, WeChat calls time out within %v)",
		strings.Join(opts.set, " "), opts.queryAfter, opts.closeGrace, opts.callLimit)
	t.Logf("plan: %s", p.summary())
	s.startWxpayd()

	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration+15*time.Minute) // settling may wait out wxpayd's longest backoff
	defer cancel()
	for _, sp := range p.skus {
		a := s.do(ctx, "PUT", s.base+"/admin/v1/skus/"+sp.name, s.admin, map[string]any{
			"description": "chaos " + sp.name, "price": sp.price, "stock": sp.stock, "per_buyer_limit": sp.limit,
		})
		if !a.ok() {
			t.Fatalf("PUT /admin/v1/skus/%s: %s %s", sp.name, a, a.body)
		}
	}

	// The workload, the fault phases and the kills.
	rec := newRecorder()
	r := &runner{s: s, p: p, rec: rec, ttl: opts.ttl, logf: t.Logf}
	if err := r.run(ctx); err != nil {
		t.Fatalf("seed %d: %v", cfg.seed, err)
	}
	if n := s.killCount(); n < cfg.kills {
		t.Errorf("only %d of the planned %d SIGKILLs happened", n, cfg.kills)
	}
	t.Logf("workload done at %.0f s: %d keys, %d shop order ids, %d orders acknowledged, %d payments tried, %d refund intents",
		time.Since(r.start).Seconds(), len(rec.groups), len(rec.shops), len(rec.orders), len(rec.pays), len(rec.intents))
	logCounts(t, rec.counts)

	// Faults off (again: the phase may have been missed by a slow start),
	// then wait until every timer has settled.
	r.setFaults(ctx, faultPhase{name: "off"})
	rd := reader{s}
	// The wait ends at the run's duration plus a margin, later if an order's
	// next attempt is scheduled later (wxpayd's backoff, persisted in the
	// record's next_tick_ms, reaches 10 minutes after repeated failures),
	// but never beyond that longest backoff after the faults stopped.
	base := r.start.Add(cfg.duration + max(40*time.Second, cfg.duration/10))
	hardCap := r.start.Add(p.faultsOff + 11*time.Minute)
	pending := waitSettled(ctx, t, rd, p, rec, opts, base, hardCap)
	t.Logf("settled at %.0f s%s", time.Since(r.start).Seconds(), pendingNote(pending))

	// Memory = disk: read everything, kill wxpayd once more, read again.
	led, err := rd.ledger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := &auditor{p: p, rec: rec, minGap: cfg.minGap, led: map[string]*ledgerOrder{}, pending: pending}
	for i := range led.Orders {
		a.led[led.Orders[i].OutTradeNo] = &led.Orders[i]
	}
	a.before = takeSnapshot(ctx, rd, p, a.known(), rec.shopIDs())
	if err := s.restart(); err != nil {
		t.Fatalf("seed %d: the final restart: %v", cfg.seed, err)
	}
	after := takeSnapshot(ctx, rd, p, a.known(), rec.shopIDs())
	a.views, a.missing, a.errs, a.skus = after.views, after.missing, after.errs, after.skus
	a.shops, a.shopErrs = after.shops, after.shopErrs
	a.starts = s.restartTimes()
	if a.stats, err = rd.stats(ctx); err != nil {
		t.Error(err)
	}
	a.simView = map[string]*simOrderView{}
	for _, otn := range a.known() {
		if v, _ := rd.simOrder(ctx, otn); v != nil {
			a.simView[otn] = v
		}
	}
	a.kafka, a.kafkaOK = readKafka(ctx, t, s, rd)

	violations := a.run()
	logLedger(t, led, a.stats, s.killCount())
	logCheckouts(t, a)
	t.Logf("audit of %d orders (%d at WeChat, %d acknowledged), %d SKUs, in %.0f s total: %d invariants checked: %s",
		len(a.known()), len(a.led), len(rec.orders), len(p.skus), time.Since(t0).Seconds(), len(a.checked), strings.Join(a.checked, "; "))
	if len(violations) == 0 {
		t.Logf("PASS: seed %d", cfg.seed)
		return
	}
	report(ctx, t, s, rd, a, violations, cfg, replay)
}

// detectOptions chooses the order TTL and reads which optional settings
// wxpayd has. wxpayd queries an unpaid order first a minute after prepay
// (unless a setting says otherwise); a TTL of a minute closes it first, so
// a long run uses two, and the active query runs under faults too.
func detectOptions(wxpayd string, duration time.Duration) wxpaydOptions {
	o := wxpaydOptions{ttl: time.Minute, queryAfter: time.Minute, closeGrace: time.Minute, callLimit: 10 * time.Second}
	if duration >= 8*time.Minute {
		o.ttl = 2 * time.Minute
	}
	o.set = append(o.set, "WXPAYD_ORDER_TTL="+o.ttl.String())
	h := helpText(wxpayd)
	timeouts := 0
	for _, s := range optionalSettings {
		flag := "-" + strings.ToLower(strings.ReplaceAll(s.env, "_", "-"))
		if !strings.Contains(h, flag+" ") && !strings.Contains(h, flag+"\n") {
			continue
		}
		o.set = append(o.set, s.env+"="+s.value)
		d, _ := time.ParseDuration(s.value)
		switch {
		case s.env == "WXPAYD_QUERY_AFTER":
			o.queryAfter = d
		case s.env == "WXPAYD_CLOSE_GRACE":
			o.closeGrace = d
		case strings.HasSuffix(s.env, "_TIMEOUT"):
			timeouts++
		}
	}
	if timeouts >= 2 { // prepay and background calls both bounded
		o.callLimit = 2 * time.Second
	}
	return o
}

// snapshot is wxpayd's view of the run at one moment.
type snapshot struct {
	views    map[string]*adminView
	missing  map[string]bool
	errs     map[string]error
	skus     map[string]skuView
	shops    map[string][]string // shop order id → the out_trade_nos the admin list by it names
	shopErrs map[string]error    // shop order id → why its list was unreadable
}

// takeSnapshot reads the SKUs, the admin list by each shop order id, and
// the orders otns and those the lists named.
func takeSnapshot(ctx context.Context, rd reader, p *plan, otns, shopIDs []string) *snapshot {
	s := &snapshot{skus: map[string]skuView{}, shops: map[string][]string{}, shopErrs: map[string]error{}}
	for _, sp := range p.skus {
		if v, err := rd.sku(ctx, sp.name); err == nil {
			s.skus[sp.name] = v
		}
	}
	set := map[string]bool{}
	for _, otn := range otns {
		set[otn] = true
	}
	for _, id := range shopIDs {
		l, err := rd.shopOrder(ctx, id)
		if err != nil {
			s.shopErrs[id] = err
			continue
		}
		s.shops[id] = l
		for _, otn := range l {
			set[otn] = true
		}
	}
	s.views, s.missing, s.errs = rd.orders(ctx, sortedKeys(set))
	return s
}

// waitSettled polls until nothing is left to happen: every order final or
// stable at wxpayd and in agreement with WeChat, no refund pending,
// wxpaysim has no notification pending, the outbox is empty and every SKU
// holds no more than its open orders. It returns what was still pending at
// the deadline.
func waitSettled(ctx context.Context, t *testing.T, rd reader, p *plan, rec *recorder, opts wxpaydOptions, base, hardCap time.Time) []pendingItem {
	var pending []pendingItem
	lastLog := time.Time{}
	for {
		var due time.Time
		pending, due = unsettled(ctx, rd, p, rec, opts)
		deadline := base
		if d := due.Add(12 * time.Second); d.After(deadline) {
			deadline = d
			if deadline.After(hardCap) {
				deadline = hardCap
			}
		}
		if len(pending) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return pending
		}
		if time.Since(lastLog) > 10*time.Second {
			t.Logf("settling: %d things pending, e.g. %s; waiting until %s at most", len(pending), pending[0], deadline.Format(time.TimeOnly))
			lastLog = time.Now()
		}
		sleepCtx(ctx, 2*time.Second)
	}
}

// pendingItem is something still to happen; otn is the order it is about
// ("" for none).
type pendingItem struct{ otn, what string }

func (p pendingItem) String() string {
	if p.otn == "" {
		return p.what
	}
	return p.otn + " " + p.what
}

// unsettled lists what is still to happen, and when the latest of the
// unsettled orders' next attempts is due at wxpayd.
func unsettled(ctx context.Context, rd reader, p *plan, rec *recorder, opts wxpaydOptions) (out []pendingItem, due time.Time) {
	add := func(otn, format string, args ...any) {
		out = append(out, pendingItem{otn, fmt.Sprintf(format, args...)})
	}
	led, err := rd.ledger(ctx)
	if err != nil {
		return []pendingItem{{"", err.Error()}}, due
	}
	st, err := rd.stats(ctx)
	if err != nil {
		return []pendingItem{{"", err.Error()}}, due
	}
	if st.Notifications.Pending > 0 {
		add("", "wxpaysim has %d notifications pending", st.Notifications.Pending)
	}
	if n, err := rd.metric(ctx, "wxpayd_outbox_backlog"); err != nil || n > 0 {
		add("", "wxpayd's outbox holds %v events (%v)", n, err)
	}
	lm := map[string]*ledgerOrder{}
	set := map[string]bool{}
	for i := range led.Orders {
		lm[led.Orders[i].OutTradeNo] = &led.Orders[i]
		set[led.Orders[i].OutTradeNo] = true
	}
	rec.mu.Lock()
	for otn := range rec.orders {
		set[otn] = true
	}
	rec.mu.Unlock()
	views, _, errs := rd.orders(ctx, sortedKeys(set))
	for otn, err := range errs {
		add(otn, "unreadable: %v", err)
	}
	open := map[string]int64{}
	for _, otn := range sortedKeys(views) {
		o := &views[otn].Order
		l := lm[otn]
		n := len(out)
		if openState(o.State) {
			open[o.SKU] += o.Quantity
			add(otn, "is %s", o.State)
		}
		if l != nil && !openState(o.State) {
			if l.paid() != paidState(o.State) {
				add(otn, "is %s at wxpayd, %s at WeChat", o.State, l.TradeState)
			}
			if o.RefundedFen != l.refundedOK() {
				add(otn, "refunded %d at wxpayd, %d at WeChat", o.RefundedFen, l.refundedOK())
			}
		}
		for _, r := range o.Refunds {
			if !refundSettled(&r, l) {
				add(otn, "refund %s is %q (WeChat: %s)", r.OutRefundNo, r.Status, l.refundStatus(r.OutRefundNo))
			}
		}
		if len(out) > n { // unsettled: when does wxpayd try next?
			next := o.NextTickMs
			switch o.State {
			case store.StateCreated:
				next = max(next, o.CreatedMs+opts.closeGrace.Milliseconds())
			case store.StatePrepaid:
				next = max(next, o.ExpiresMs)
			}
			if t := time.UnixMilli(next); t.After(due) {
				due = t
			}
		}
		if l == nil {
			continue
		}
		for _, r := range l.Refunds {
			if r.Status == "PROCESSING" {
				add(otn, "refund %s PROCESSING at WeChat", r.OutRefundNo)
			}
		}
	}
	for _, sp := range p.skus {
		v, err := rd.sku(ctx, sp.name)
		if err != nil {
			add("", "%v", err)
		} else if v.Reserved != open[sp.name] {
			add("", "SKU %s reserves %d units, its known open orders %d", sp.name, v.Reserved, open[sp.name])
		}
	}
	return out, due
}

func pendingNote(p []pendingItem) string {
	if len(p) == 0 {
		return ""
	}
	var parts []string
	for i, x := range p {
		if i == 8 {
			parts = append(parts, fmt.Sprintf("… %d more", len(p)-i))
			break
		}
		parts = append(parts, x.String())
	}
	return "; NOT settled at the deadline: " + strings.Join(parts, "; ")
}

// readKafka waits for the outbox to drain and reads the embedded broker.
func readKafka(ctx context.Context, t *testing.T, s *stack, rd reader) (map[string][]event.Event, bool) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := rd.metric(ctx, "wxpayd_outbox_backlog")
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("events in Kafka: the outbox still holds %v events 30 s after the final start (%v)", n, err)
			return nil, false
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	addrs := s.brokerAddrs()
	if len(addrs) == 0 {
		t.Errorf("events in Kafka: wxpayd did not log its embedded broker's address (\"embedded kafka broker\")")
		return nil, false
	}
	kctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ev, n, err := readTopic(kctx, addrs[0])
	if err != nil {
		t.Errorf("events in Kafka: %v", err)
		return nil, false
	}
	dups := 0
	for _, list := range ev {
		seen := map[string]bool{}
		for _, e := range list {
			if seen[e.EventID] {
				dups++
			}
			seen[e.EventID] = true
		}
	}
	t.Logf("Kafka: %d events in %s on the embedded broker, %d orders, %d redelivered copies (at-least-once)", n, addrs[0], len(ev), dups)
	return ev, true
}

func logCounts(t *testing.T, counts map[string]int) {
	keys := sortedKeys(counts)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, counts[k]))
	}
	t.Logf("answers: %s", strings.Join(parts, ", "))
}

func logLedger(t *testing.T, led *ledger, st *simStats, kills int) {
	states, refunds, calls := map[string]int{}, map[string]int{}, map[string]int{}
	for _, o := range led.Orders {
		states[o.TradeState]++
		for _, r := range o.Refunds {
			refunds[r.Status]++
		}
		for k, n := range o.Calls {
			calls[k] += n
		}
	}
	t.Logf("WeChat's ledger: %d orders %v, refunds %v, calls %v; wxpayd SIGKILLed %d times", len(led.Orders), states, refunds, calls, kills)
	if st != nil {
		injected := map[string]uint64{}
		for k, n := range st.APIFaults {
			if n > 0 {
				injected[k] = n
			}
		}
		t.Logf("wxpaysim: notifications %+v, notification copies %+v, injected API faults %v, error answers %v, dropped answers %d",
			st.Notifications, st.NotifyFaults, injected, st.Rejected, st.Dropped)
	}
}

// logCheckouts says what the shop's checkouts came to, so that a run
// shows how much of the checkout path the invariants judged.
func logCheckouts(t *testing.T, a *auditor) {
	var orders, atWeChat, paid, refunded, reqs, other, reused int
	for _, g := range a.rec.shops {
		otn := a.shopOrder(g)
		v := a.views[otn]
		if v != nil {
			orders++
			if v.Order.RefundedFen > 0 {
				refunded++
			}
		}
		if l := a.led[otn]; l != nil {
			atWeChat++
			if l.paid() {
				paid++
			}
		}
		for _, q := range g.reqs {
			reqs++
			if v != nil && q.f != recordFields(&v.Order) {
				other++
			}
			if f := q.final(); f != nil && f.status == 422 {
				reused++
			}
		}
	}
	t.Logf("checkouts: %d shop order ids, %d orders at wxpayd, %d at WeChat, %d paid there, %d refunded; %d requests, %d of them for other fields than their order's, %d answered 422",
		len(a.rec.shops), orders, atWeChat, paid, refunded, reqs, other, reused)
}

// report fails the test: the seed, every violation (the first in full, with
// the order's history at wxpayd and its entry in WeChat's ledger).
func report(ctx context.Context, t *testing.T, s *stack, rd reader, a *auditor, vs []violation, cfg config, replay string) {
	first := vs[0]
	var b strings.Builder
	fmt.Fprintf(&b, "CHAOS FAILED: seed %d (%s)\n", cfg.seed, replay)
	fmt.Fprintf(&b, "first broken invariant: %s\n", first)
	if first.otn != "" {
		_, raw, _, err := rd.order(ctx, first.otn)
		fmt.Fprintf(&b, "\nwxpayd's record and event history of %s:\n%s\n", first.otn, indentJSON(raw, err))
		if l := a.led[first.otn]; l != nil {
			lb, _ := json.MarshalIndent(l, "", "  ")
			fmt.Fprintf(&b, "\nWeChat's ledger entry:\n%s\n", lb)
		} else {
			b.WriteString("\nWeChat's ledger has no such order\n")
		}
		if _, raw := rd.simOrder(ctx, first.otn); raw != nil {
			fmt.Fprintf(&b, "\nwxpaysim's notifications for it:\n%s\n", indentJSON(raw, nil))
		}
	}
	byInv := map[string]int{}
	for _, v := range vs {
		byInv[v.invariant]++
	}
	fmt.Fprintf(&b, "\n%d violations:", len(vs))
	for _, k := range sortedKeys(byInv) {
		fmt.Fprintf(&b, " %s %d;", k, byInv[k])
	}
	b.WriteString("\n")
	for i, v := range vs {
		if i == 40 {
			fmt.Fprintf(&b, "… %d more\n", len(vs)-i)
			break
		}
		fmt.Fprintf(&b, "  %s\n", v)
	}
	if dir := s.keepLogs(cfg.seed); dir != "" {
		fmt.Fprintf(&b, "logs kept in %s\n", dir)
	}
	t.Error(b.String())
}

func indentJSON(raw []byte, err error) string {
	if err != nil {
		return err.Error()
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return string(out)
}
