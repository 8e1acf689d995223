package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wxpayd/wxpayd/actors/store"
)

// The workload executes the plan against the stack and records what
// wxpayd and wxpaysim answered; the audit judges afterwards. Nothing here
// fails the test: an unexpected answer is evidence, not an error.

// orderView is the part of wxpayd's buyer order view the workload reads,
// and of the shop's view (the checkout's answer): its order id, attach and
// line items.
type orderView struct {
	OutTradeNo  string `json:"out_trade_no"`
	State       string `json:"state"`
	SKU         string `json:"sku"`
	Quantity    int64  `json:"quantity"`
	Description string `json:"description"`
	ExpiresAt   string `json:"expires_at"`
	Amount      struct {
		Total int64 `json:"total"`
	} `json:"amount"`
	Payment *struct {
		Package string `json:"package"`
	} `json:"payment"`
	ShopOrderID string           `json:"shop_order_id"`
	Attach      string           `json:"attach"`
	LineItems   []store.LineItem `json:"line_items"`
}

// createAnswer is one answer to POST /api/v1/orders or /api/v1/checkouts.
type createAnswer struct {
	at        time.Time
	answer    string // "201", "422 IDEMPOTENCY_KEY_REUSED", "transport: ..."
	status    int
	code      string
	transient bool       // settles nothing (see answer.transient)
	view      *orderView // on 2xx
}

// createReq is one logical create request (retried on transient answers
// with the same key and body) and every answer it got.
type createReq struct {
	p          params
	sequential bool // sent after the key's order existed, with another body: must be 422
	answers    []createAnswer
}

// final is the request's last answer (the definitive one, unless every
// answer was transient).
func (r *createReq) final() *createAnswer { return lastAnswer(r.answers) }

func lastAnswer(answers []createAnswer) *createAnswer {
	if len(answers) == 0 {
		return nil
	}
	return &answers[len(answers)-1]
}

// checkoutFields are what a checkout asks for, the buyer as the openid it
// resolves to and expires_in as the order's life (wxpayd's order TTL when
// not sent): what wxpayd compares when a shop order id comes again. (It
// compares expires_in as sent; the plan never varies it between one shop
// order id's requests, so its effect is enough to tell them apart.)
type checkoutFields struct {
	openid, description, attach string
	lines                       string // lineKey of the line items
	amount                      int64
	life                        time.Duration
}

func (f checkoutFields) String() string {
	s := fmt.Sprintf("{%d fen, openid %s, attach %q, description %q, life %v", f.amount, f.openid, f.attach, f.description, f.life)
	if f.lines != "" {
		s += ", lines " + f.lines
	}
	return s + "}"
}

// lineKey is a comparable form of line items.
func lineKey(items []store.LineItem) string {
	var parts []string
	for _, l := range items {
		parts = append(parts, fmt.Sprintf("%s/%s×%d@%d", l.SKU, l.Name, l.Quantity, l.UnitPrice))
	}
	return strings.Join(parts, " ")
}

// lineItems splits amount over one line per SKU: each but the last one or
// two units at an equal share, the last one unit of the rest.
func lineItems(skus []string, amount int64) []store.LineItem {
	var out []store.LineItem
	share, used := amount/int64(len(skus)), int64(0)
	for i, sku := range skus {
		l := store.LineItem{SKU: sku, Name: "chaos " + sku, Quantity: 1, UnitPrice: amount - used}
		if i < len(skus)-1 {
			l.Quantity = 1 + int64(i%2)
			l.UnitPrice = share / l.Quantity
		}
		used += l.Quantity * l.UnitPrice
		out = append(out, l)
	}
	return out
}

// checkoutReq is one logical POST /api/v1/checkouts (retried on transient
// answers with the same body) and every answer it got.
type checkoutReq struct {
	f          checkoutFields
	items      []store.LineItem // the line items f.lines stands for
	session    bool             // the buyer was given as its session token, not its openid
	sequential bool             // sent after the shop order id's order was acknowledged
	answers    []createAnswer
}

func (r *checkoutReq) final() *createAnswer { return lastAnswer(r.answers) }

// shopGroup is every request the shop sent for one shop order id, and the
// orders the admin list by that id named during the run.
type shopGroup struct {
	script int
	id     string // shop_order_id
	reqs   []*checkoutReq
	listed [][]string // each GET /admin/v1/orders?shop_order_id= that was answered: its out_trade_nos
}

func (g *shopGroup) answers() [][]createAnswer {
	var out [][]createAnswer
	for _, req := range g.reqs {
		out = append(out, req.answers)
	}
	return out
}

// keyGroup is every request one buyer sent with one Idempotency-Key.
type keyGroup struct {
	script int
	buyer  string
	openid string
	key    string
	reqs   []*createReq
}

func (g *keyGroup) answers() [][]createAnswer {
	var out [][]createAnswer
	for _, req := range g.reqs {
		out = append(out, req.answers)
	}
	return out
}

// answered returns the order the last 2xx among lists named ("" for none)
// and how many answers there are: the requests that were sent.
func answered(lists ...[]createAnswer) (otn string, sent int) {
	for _, as := range lists {
		sent += len(as)
		for _, ans := range as {
			if ans.view != nil {
				otn = ans.view.OutTradeNo
			}
		}
	}
	return otn, sent
}

// knownOrder is an order wxpayd acknowledged with a 2xx.
type knownOrder struct {
	otn      string
	openid   string
	sku      string
	qty      int64
	total    int64
	prepayID string
	expires  time.Time
	script   int
}

// refundIntent is one refund the admin asked for: one request, or several
// with one Idempotency-Key (retries of one intent).
type refundIntent struct {
	otn     string
	amount  int64
	key     string
	kind    refundKind
	answers []answer
}

// accepted reports whether some answer was 2xx.
func (in *refundIntent) accepted() bool {
	for _, a := range in.answers {
		if a.ok() {
			return true
		}
	}
	return false
}

// refused reports whether every answer was a definitive refusal (a 4xx
// other than 429): then nothing may have been refunded for it.
func (in *refundIntent) refused() bool {
	for _, a := range in.answers {
		if a.status < 400 || a.transient() {
			return false
		}
	}
	return len(in.answers) > 0
}

func (in *refundIntent) String() string {
	var parts []string
	for _, a := range in.answers {
		parts = append(parts, a.String())
	}
	k := ""
	if in.key != "" {
		k = " key " + in.key
	}
	return fmt.Sprintf("%s %d fen (%s%s): %s", in.otn, in.amount, in.kind, k, strings.Join(parts, ", "))
}

// payAttempt is one POST /sim/v1/pay.
type payAttempt struct {
	otn    string
	at     time.Time
	answer string
	txn    string // on 201
}

// recorder holds what the workload saw. Safe for concurrent use.
type recorder struct {
	mu      sync.Mutex
	groups  []*keyGroup
	shops   []*shopGroup
	orders  map[string]*knownOrder
	intents []*refundIntent
	pays    []payAttempt
	counts  map[string]int // answers by step and code, for the log
}

func newRecorder() *recorder {
	return &recorder{orders: map[string]*knownOrder{}, counts: map[string]int{}}
}

func (rc *recorder) count(step string, a answer) {
	rc.mu.Lock()
	rc.counts[step+" "+a.String()]++
	rc.mu.Unlock()
}

func (rc *recorder) group(g *keyGroup) {
	rc.mu.Lock()
	rc.groups = append(rc.groups, g)
	rc.mu.Unlock()
}

func (rc *recorder) shop(g *shopGroup) {
	rc.mu.Lock()
	rc.shops = append(rc.shops, g)
	rc.mu.Unlock()
}

// shopIDs are the shop order ids the workload sent.
func (rc *recorder) shopIDs() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, g := range rc.shops {
		out = append(out, g.id)
	}
	return out
}

func (rc *recorder) order(o *knownOrder) {
	rc.mu.Lock()
	if _, ok := rc.orders[o.otn]; !ok {
		rc.orders[o.otn] = o
	}
	rc.mu.Unlock()
}

func (rc *recorder) intent(i *refundIntent) {
	rc.mu.Lock()
	rc.intents = append(rc.intents, i)
	rc.mu.Unlock()
}

func (rc *recorder) pay(p payAttempt) {
	rc.mu.Lock()
	rc.pays = append(rc.pays, p)
	rc.mu.Unlock()
}

// runner executes a plan.
type runner struct {
	s     *stack
	p     *plan
	rec   *recorder
	ttl   time.Duration // wxpayd's order TTL: the life of a checkout sent without expires_in
	start time.Time
	logf  func(string, ...any)
}

// maxScripts bounds the buyer scripts in progress at once. Most of them
// wait (late payers up to a TTL), so the bound is loose: the arrival rate
// is what sets the load.
const maxScripts = 256

// run executes the plan: scripts at their times, fault phases, kills. It
// returns when every script has finished and faultsOff has passed, or
// wxpayd could not be started again (that error).
func (r *runner) run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var restartErr error
	r.start = time.Now()
	var wg sync.WaitGroup
	at := func(d time.Duration) bool { return sleepCtx(ctx, time.Until(r.start.Add(d))) }

	// Fault phases.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, ph := range r.p.phases {
			if ph.at > 0 && !at(ph.at) {
				return
			}
			r.setFaults(ctx, ph)
		}
	}()
	// The killer.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, k := range r.p.kills {
			if !at(k) {
				return
			}
			t0 := time.Now()
			if err := r.s.restart(); err != nil {
				restartErr = err
				cancel()
				return
			}
			r.logf("kill %d/%d at %.1f s: wxpayd back in %.1f s", i+1, len(r.p.kills), time.Since(r.start).Seconds(), time.Since(t0).Seconds())
		}
	}()
	// The buyers.
	sem := make(chan struct{}, maxScripts)
	var scripts sync.WaitGroup
	for i := range r.p.scripts {
		sc := &r.p.scripts[i]
		if !at(sc.at) {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		scripts.Add(1)
		go func() {
			defer scripts.Done()
			defer func() { <-sem }()
			r.script(ctx, sc)
		}()
	}
	scripts.Wait()
	wg.Wait()
	return restartErr
}

// setFaults switches wxpaysim's API faults and refund outcomes at runtime.
func (r *runner) setFaults(ctx context.Context, ph faultPhase) {
	for attempt := 0; attempt < 5; attempt++ {
		a := r.s.do(ctx, "PUT", r.s.simURL+"/sim/v1/faults", "", map[string]string{"faults": ph.faults, "refund_outcomes": ph.outcomes})
		if a.ok() {
			at := 0.0
			if !r.start.IsZero() {
				at = time.Since(r.start).Seconds()
			}
			r.logf("faults %s at %.1f s: %q, refund outcomes %q", ph.name, at, ph.faults, ph.outcomes)
			return
		}
		r.logf("PUT /sim/v1/faults (%s): %s %s", ph.name, a, a.body)
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff is the wait before retry n (0-based) after a transient answer:
// Retry-After when given (at most 2 s), else 200 ms doubling to 2 s.
func backoff(n int, a answer) time.Duration {
	if a.retryAfter > 0 {
		return min(a.retryAfter, 2*time.Second)
	}
	return min(200*time.Millisecond<<min(n, 4), 2*time.Second)
}

// buyer is a logged-in Mini Program user.
type buyer struct {
	name, token, openid string
}

// loginCode is wx.login: a code from wxpaysim, and the openid it stands
// for.
type loginCode struct {
	Code   string `json:"code"`
	OpenID string `json:"openid"`
}

// wxLogin asks wxpaysim for a wx.login code of user (ok false and the
// answer when it gave none).
func (r *runner) wxLogin(ctx context.Context, user string) (loginCode, answer, bool) {
	c := r.s.do(ctx, "POST", r.s.simURL+"/sim/v1/login", "", map[string]string{"user": user})
	var code loginCode
	if !c.ok() || json.Unmarshal(c.body, &code) != nil || code.Code == "" || code.OpenID == "" {
		r.rec.count("sim-login", c)
		return code, c, false
	}
	return code, c, true
}

// login is wx.login (a code from wxpaysim) plus POST /api/v1/login, retried
// with a fresh code while wxpayd is down or WeChat's login fails.
func (r *runner) login(ctx context.Context, name string) (*buyer, bool) {
	for attempt := 0; attempt < 20 && ctx.Err() == nil; attempt++ {
		code, c, ok := r.wxLogin(ctx, name)
		if !ok {
			sleepCtx(ctx, backoff(attempt, c))
			continue
		}
		a := r.s.do(ctx, "POST", r.s.base+"/api/v1/login", "", map[string]string{"code": code.Code})
		r.rec.count("login", a)
		var tok struct {
			Token string `json:"token"`
		}
		if a.ok() && json.Unmarshal(a.body, &tok) == nil && tok.Token != "" {
			return &buyer{name: name, token: tok.Token, openid: code.OpenID}, true
		}
		if !a.transient() && a.status != 400 && a.status != 401 {
			return nil, false
		}
		sleepCtx(ctx, backoff(attempt, a))
	}
	return nil, false
}

// create sends one logical create request, retrying transient answers with
// the same key and body for up to ~20 s. It records every answer in req.
func (r *runner) create(ctx context.Context, b *buyer, key string, req *createReq) {
	body := map[string]any{"sku": req.p.sku, "quantity": req.p.qty}
	r.send(ctx, "create", "/api/v1/orders", b.token, body, &req.answers, "Idempotency-Key", key)
}

// sendCheckout sends one logical checkout for shop order id, as the shop's
// backend retries: transient answers again with the same body for up to
// ~20 s. It records every answer in req.
func (r *runner) sendCheckout(ctx context.Context, sc *script, b *buyer, id string, req *checkoutReq) {
	body := map[string]any{"shop_order_id": id, "amount": req.f.amount, "description": req.f.description, "attach": req.f.attach}
	if req.session {
		body["session"] = b.token
	} else {
		body["openid"] = req.f.openid
	}
	if len(req.items) > 0 {
		body["line_items"] = req.items
	}
	if sc.expiresIn > 0 {
		body["expires_in"] = sc.expiresIn
	}
	r.send(ctx, "checkout", "/api/v1/checkouts", r.s.shop, body, &req.answers)
}

// send POSTs body to wxpayd's path with the bearer token auth and headers
// hdr, and again with the same body after each transient answer for up to
// ~20 s. It appends every answer to *answers; step names them in the
// answer counts.
func (r *runner) send(ctx context.Context, step, path, auth string, body any, answers *[]createAnswer, hdr ...string) {
	deadline := time.Now().Add(20 * time.Second)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		a := r.s.do(ctx, "POST", r.s.base+path, auth, body, hdr...)
		r.rec.count(step, a)
		ca := createAnswer{at: time.Now(), answer: a.String(), status: a.status, code: a.code(), transient: a.transient()}
		if a.ok() {
			var v orderView
			if json.Unmarshal(a.body, &v) == nil && v.OutTradeNo != "" {
				ca.view = &v
			} else {
				ca.answer += " (unreadable body)"
			}
		}
		*answers = append(*answers, ca)
		if !a.transient() || time.Now().After(deadline) {
			return
		}
		sleepCtx(ctx, backoff(attempt, a))
	}
}

// acknowledge records the order of a 2xx answer to a request for openid's
// order.
func (r *runner) acknowledge(sc *script, openid string, ca *createAnswer) *knownOrder {
	if ca == nil || ca.view == nil {
		return nil
	}
	v := ca.view
	o := &knownOrder{otn: v.OutTradeNo, openid: openid, sku: v.SKU, qty: v.Quantity, total: v.Amount.Total, script: sc.id}
	o.expires, _ = time.Parse(time.RFC3339, v.ExpiresAt)
	if v.Payment != nil {
		o.prepayID = strings.TrimPrefix(v.Payment.Package, "prepay_id=")
	}
	r.rec.order(o)
	return o
}

// payOrder is wx.requestPayment: wxpaysim's POST /sim/v1/pay.
func (r *runner) payOrder(ctx context.Context, b *buyer, o *knownOrder) bool {
	if o.prepayID == "" {
		return false
	}
	a := r.s.do(ctx, "POST", r.s.simURL+"/sim/v1/pay", "", map[string]string{"prepay_id": o.prepayID, "openid": b.openid})
	r.rec.count("pay", a)
	p := payAttempt{otn: o.otn, at: time.Now(), answer: a.String()}
	var v struct {
		TransactionID string `json:"transaction_id"`
	}
	if a.ok() && json.Unmarshal(a.body, &v) == nil {
		p.txn = v.TransactionID
	}
	r.rec.pay(p)
	return a.status == 201
}

func (r *runner) script(ctx context.Context, sc *script) {
	b, ok := r.login(ctx, sc.buyer)
	if !ok {
		return
	}
	switch sc.kind {
	case kindHonest:
		r.honest(ctx, sc, b)
	case kindSameKey:
		r.sameKey(ctx, sc, b)
	case kindManyKeys:
		r.manyKeys(ctx, sc, b)
	case kindCheckout:
		r.checkout(ctx, sc, b)
	}
}

func (r *runner) honest(ctx context.Context, sc *script, b *buyer) {
	g := &keyGroup{script: sc.id, buyer: b.name, openid: b.openid, key: fmt.Sprintf("chaos-%d-a", sc.id)}
	r.rec.group(g)
	req := &createReq{p: sc.reqs[0]}
	g.reqs = append(g.reqs, req)
	r.create(ctx, b, g.key, req)
	o := r.acknowledge(sc, b.openid, req.final())
	if o == nil {
		return
	}
	if sc.reuse != nil {
		again := &createReq{p: *sc.reuse, sequential: true}
		g.reqs = append(g.reqs, again)
		r.create(ctx, b, g.key, again)
	}
	r.payAndRefund(ctx, sc, b, o)
}

// payAndRefund is the buyer b paying o as the script says (now, late,
// twice or never), then the admin refunding the paid order as it says.
func (r *runner) payAndRefund(ctx context.Context, sc *script, b *buyer, o *knownOrder) {
	paid := false
	switch sc.pay {
	case payNever:
		return
	case payNow:
		sleepCtx(ctx, sc.think)
		paid = r.payOrder(ctx, b, o)
	case payTwice:
		sleepCtx(ctx, sc.think)
		paid = r.payOrder(ctx, b, o)
		r.payOrder(ctx, b, o)
	case payLate:
		if o.expires.IsZero() {
			return
		}
		sleepCtx(ctx, time.Until(o.expires.Add(sc.lateBy)))
		paid = r.payOrder(ctx, b, o)
	}
	if !paid || sc.refund == refundNone {
		return
	}
	sleepCtx(ctx, sc.refundAfter)
	r.refunds(ctx, sc, o)
}

func (r *runner) sameKey(ctx context.Context, sc *script, b *buyer) {
	g := &keyGroup{script: sc.id, buyer: b.name, openid: b.openid, key: fmt.Sprintf("chaos-%d-race", sc.id)}
	for _, p := range sc.reqs {
		g.reqs = append(g.reqs, &createReq{p: p})
	}
	r.rec.group(g)
	var wg sync.WaitGroup
	for _, req := range g.reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.create(ctx, b, g.key, req)
		}()
	}
	wg.Wait()
	for i, req := range g.reqs {
		if o := r.acknowledge(sc, b.openid, req.final()); o != nil && sc.payWon[i] {
			sleepCtx(ctx, sc.think)
			r.payOrder(ctx, b, o) // the same order may be paid twice: wxpaysim refuses the second
		}
	}
}

func (r *runner) manyKeys(ctx context.Context, sc *script, b *buyer) {
	var groups []*keyGroup
	for i, p := range sc.reqs {
		g := &keyGroup{script: sc.id, buyer: b.name, openid: b.openid, key: fmt.Sprintf("chaos-%d-k%d", sc.id, i),
			reqs: []*createReq{{p: p}}}
		groups = append(groups, g)
		r.rec.group(g)
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.create(ctx, b, g.key, g.reqs[0])
		}()
	}
	wg.Wait()
	for i, g := range groups {
		if o := r.acknowledge(sc, b.openid, g.reqs[0].final()); o != nil && sc.payWon[i] {
			sleepCtx(ctx, sc.think)
			r.payOrder(ctx, b, o)
		}
	}
}

// checkout plays a shop's backend and its buyer b: the shop sends its
// requests for one shop order id at once (its retries, some with other
// fields), the buyer pays the order one of them was answered with as the
// plan says (as that request's buyer) and the admin refunds it, the shop
// sends one more request later, and the admin lists the order by its shop
// order id.
func (r *runner) checkout(ctx context.Context, sc *script, b *buyer) {
	other := "" // the openid of wx.login user <buyer>-other, when a request names that buyer
	needOther := sc.shopLate != nil && sc.shopLate.other
	for _, c := range sc.shop {
		needOther = needOther || c.other
	}
	if needOther {
		code, _, ok := r.wxLogin(ctx, sc.buyer+"-other")
		if !ok {
			return
		}
		other = code.OpenID
	}
	g := &shopGroup{script: sc.id, id: fmt.Sprintf("chaos-%d-shop", sc.id)}
	req := func(c checkoutPlan, sequential bool) *checkoutReq {
		q := &checkoutReq{session: c.session, sequential: sequential, f: checkoutFields{
			openid: b.openid, description: fmt.Sprintf("chaos checkout %d", sc.id), attach: c.attach, amount: c.amount, life: r.ttl,
		}}
		if c.other {
			q.f.openid = other
		}
		if sc.expiresIn > 0 {
			q.f.life = time.Duration(sc.expiresIn) * time.Second
		}
		if len(sc.lines) > 0 {
			q.items = lineItems(sc.lines, c.amount)
			q.f.lines = lineKey(q.items)
		}
		return q
	}
	for _, c := range sc.shop {
		g.reqs = append(g.reqs, req(c, false))
	}
	r.rec.shop(g)
	var wg sync.WaitGroup
	for _, q := range g.reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.sendCheckout(ctx, sc, b, g.id, q)
		}()
	}
	wg.Wait()
	var o *knownOrder
	payer := &buyer{name: b.name}
	for _, q := range g.reqs {
		if k := r.acknowledge(sc, q.f.openid, q.final()); k != nil && o == nil {
			o, payer.openid = k, q.f.openid
		}
	}
	if o != nil {
		r.payAndRefund(ctx, sc, payer, o)
		if sc.shopLate != nil {
			late := req(*sc.shopLate, true)
			r.rec.mu.Lock()
			g.reqs = append(g.reqs, late)
			r.rec.mu.Unlock()
			r.sendCheckout(ctx, sc, b, g.id, late)
		}
	}
	if otns, err := (reader{r.s}).shopOrder(ctx, g.id); err == nil {
		r.rec.mu.Lock()
		g.listed = append(g.listed, otns)
		r.rec.mu.Unlock()
	}
}

// adminOrder reads an order through the admin API (nil when unreadable).
func (r *runner) adminOrder(ctx context.Context, otn string) *adminView {
	a := r.s.do(ctx, "GET", r.s.base+"/admin/v1/orders/"+otn, r.s.admin, nil)
	if !a.ok() {
		return nil
	}
	var v adminView
	if json.Unmarshal(a.body, &v) != nil {
		return nil
	}
	return &v
}

// awaitOrder polls the admin view until ok(view) or 15 s pass.
func (r *runner) awaitOrder(ctx context.Context, otn string, ok func(*adminView) bool) *adminView {
	deadline := time.Now().Add(15 * time.Second)
	for {
		v := r.adminOrder(ctx, otn)
		if v != nil && ok(v) || time.Now().After(deadline) || !sleepCtx(ctx, 300*time.Millisecond) {
			return v
		}
	}
}

// refundRequest sends one refund intent: a single request, or with a key
// retried on transient answers (each retry is the same intent).
func (r *runner) refundRequest(ctx context.Context, in *refundIntent) {
	body := map[string]any{"amount": in.amount, "reason": "chaos " + in.kind.String()}
	var hdr []string
	if in.key != "" {
		hdr = []string{"Idempotency-Key", in.key}
	}
	for attempt := 0; ctx.Err() == nil; attempt++ {
		a := r.s.do(ctx, "POST", r.s.base+"/admin/v1/orders/"+in.otn+"/refunds", r.s.admin, body, hdr...)
		r.rec.count("refund", a)
		r.rec.mu.Lock()
		in.answers = append(in.answers, a)
		r.rec.mu.Unlock()
		if in.key == "" || !a.transient() || attempt >= 8 {
			break
		}
		sleepCtx(ctx, backoff(attempt, a))
	}
}

func (r *runner) newIntent(o *knownOrder, kind refundKind, amount int64, key string) *refundIntent {
	in := &refundIntent{otn: o.otn, amount: amount, key: key, kind: kind}
	r.rec.intent(in)
	return in
}

func share(total int64, f float64) int64 {
	a := int64(float64(total) * f)
	return max(1, min(a, total))
}

// refunds plays the admin refunding a paid order as the script says, then
// applying for the refunds that end ABNORMAL.
func (r *runner) refunds(ctx context.Context, sc *script, o *knownOrder) {
	r.refundOnce(ctx, sc, o)
	if sc.applyAbn && sc.refund != refundOver {
		r.applyAbnormal(ctx, o)
	}
}

// applyAbnormal waits a little for the order's refunds to end and applies
// for each ABNORMAL one: the money goes to the merchant's account instead.
func (r *runner) applyAbnormal(ctx context.Context, o *knownOrder) {
	v := r.awaitOrder(ctx, o.otn, func(v *adminView) bool { return pendingRefunds(v) == 0 })
	if v == nil {
		return
	}
	for _, rf := range v.Order.Refunds {
		if rf.Status != "ABNORMAL" {
			continue
		}
		for attempt := 0; attempt < 6 && ctx.Err() == nil; attempt++ {
			a := r.s.do(ctx, "POST", r.s.base+"/admin/v1/orders/"+o.otn+"/refunds/"+rf.OutRefundNo+"/apply-abnormal",
				r.s.admin, map[string]string{"type": "MERCHANT_BANK_CARD"})
			r.rec.count("apply-abnormal", a)
			if !a.transient() {
				break
			}
			sleepCtx(ctx, backoff(attempt, a))
		}
	}
}

func (r *runner) refundOnce(ctx context.Context, sc *script, o *knownOrder) {
	// The admin refunds what the shop shows as paid: wait for it.
	r.awaitOrder(ctx, o.otn, func(v *adminView) bool { return paidState(v.Order.State) })
	key := func(i int) string { return fmt.Sprintf("chaos-refund-%d-%d", sc.id, i) }
	switch sc.refund {
	case refundFull:
		r.refundRequest(ctx, r.newIntent(o, sc.refund, o.total, ""))
	case refundPartial:
		r.refundRequest(ctx, r.newIntent(o, sc.refund, share(o.total, sc.fracs[0]), ""))
	case refundOver:
		r.refundRequest(ctx, r.newIntent(o, sc.refund, o.total+1, ""))
	case refundTwoConcurrent:
		a1, a2 := share(o.total, sc.fracs[0]), share(o.total, sc.fracs[1])
		var wg sync.WaitGroup
		for _, a := range []int64{a1, a2} {
			in := r.newIntent(o, sc.refund, a, "")
			wg.Add(1)
			go func() { defer wg.Done(); r.refundRequest(ctx, in) }()
		}
		wg.Wait()
	case refundSameKeyRace:
		in := r.newIntent(o, sc.refund, share(o.total, sc.fracs[0]), key(0))
		var wg sync.WaitGroup
		for k := 0; k < sc.racers; k++ {
			wg.Add(1)
			go func() { defer wg.Done(); r.refundRequest(ctx, in) }()
		}
		wg.Wait()
	case refundRetryKey:
		in := r.newIntent(o, sc.refund, share(o.total, sc.fracs[0]), key(0))
		r.refundRequest(ctx, in)
		r.refundRequest(ctx, in)
	case refundPartialThenRest:
		r.refundRequest(ctx, r.newIntent(o, sc.refund, share(o.total, sc.fracs[0]), key(0)))
		v := r.awaitOrder(ctx, o.otn, func(v *adminView) bool { return pendingRefunds(v) == 0 })
		if v == nil || v.Order.RefundedFen >= o.total || pendingRefunds(v) > 0 {
			return
		}
		r.refundRequest(ctx, r.newIntent(o, sc.refund, o.total-v.Order.RefundedFen, key(1)))
	}
}
