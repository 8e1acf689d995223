package load

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/wxpayd/wxpayd/bench/sim"
)

// buyer is one virtual Mini Program user. Only its own goroutine writes it
// until the window ends; the audit reads it after.
type buyer struct {
	id    int
	code  string    // wx.login code, used once
	ep    *endpoint // its node's pool for login and prepay
	st    *endpoint // its node's pool for reading its order
	sku   string
	payer bool // will pay when it holds an order

	token    string
	loggedIn bool
	otn      string
	prepayID string
	appID    string
	soldOut  bool
	paid     bool   // wxpaysim answered 201 to /sim/v1/pay
	txn      string // its transaction_id
	seenPaid bool
	total    int64  // the order's amount in fen, from the prepay answer
	signType string // the signType of its wx.requestPayment parameters

	refunder   bool    // the admin refunds its order once the buyer saw PAID
	refundFrac float64 // the share of the total refunded (1: in full)
	refundAmt  int64   // how much, in fen (from the total, when refunding)
	refund     refundTry
}

// newBuyer makes buyer i of a run. Its code maps to a stable openid in
// wxpaysim ("code-<run>x<i>.1").
func (r *runner) newBuyer(i int, prefix, sku string, payer bool) *buyer {
	return &buyer{
		id: i, code: "code-" + r.cfg.RunID + prefix + strconv.Itoa(i) + ".1",
		ep: r.shops[i%len(r.shops)], st: r.targets[i%len(r.targets)], sku: sku, payer: payer,
	}
}

// login is the Mini Program's wx.login plus POST /api/v1/login.
func (r *runner) login(ctx context.Context, b *buyer, start time.Time) bool {
	body := make([]byte, 0, 64)
	body = append(body, `{"code":"`...)
	body = append(body, b.code...)
	body = append(body, `"}`...)
	rep, err := b.ep.do("POST", "/api/v1/login", "", body, r.deadline(ctx))
	end := time.Now()
	if err != nil {
		r.rec.observe(stepLogin, start, end, classError, transportCode(err))
		return false
	}
	if rep.status != 200 {
		r.rec.observe(stepLogin, start, end, statusClass(rep.status, ""), answerCode(rep))
		return false
	}
	var v struct {
		Token string `json:"token"`
	}
	if json.Unmarshal(rep.body, &v) != nil || v.Token == "" {
		r.rec.observe(stepLogin, start, end, classError, "200 without a token")
		return false
	}
	r.rec.observe(stepLogin, start, end, classOK, "")
	b.token, b.loggedIn = v.Token, true
	return true
}

// orderAnswer is the part of POST /api/v1/orders' answer a buyer uses.
type orderAnswer struct {
	OutTradeNo string `json:"out_trade_no"`
	State      string `json:"state"`
	Amount     struct {
		Total int64 `json:"total"`
	} `json:"amount"`
	Payment *struct {
		AppID    string `json:"appId"`
		Package  string `json:"package"`
		SignType string `json:"signType"`
	} `json:"payment"`
}

// prepay is POST /api/v1/orders, retried after Retry-After (plus up to half
// of it again, as people do not retry in lockstep) when answered 429 or
// 503, like a buyer tapping "buy" again. The first attempt is
// measured from start (the arrival's intended time).
func (r *runner) prepay(ctx context.Context, b *buyer, start time.Time) bool {
	body := []byte(`{"sku":"` + b.sku + `","quantity":1}`)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			start = time.Now()
		}
		rep, err := b.ep.do("POST", "/api/v1/orders", b.token, body, r.deadline(ctx))
		end := time.Now()
		if err != nil {
			r.rec.observe(stepPrepay, start, end, classError, transportCode(err))
			return false
		}
		switch rep.status {
		case 201:
			var v orderAnswer
			if json.Unmarshal(rep.body, &v) != nil || v.OutTradeNo == "" || v.Payment == nil ||
				!strings.HasPrefix(v.Payment.Package, "prepay_id=") || v.Payment.AppID == "" {
				r.rec.observe(stepPrepay, start, end, classError, "201 without payment parameters")
				return false
			}
			r.rec.observe(stepPrepay, start, end, classOK, "")
			b.otn, b.appID, b.total, b.signType = v.OutTradeNo, v.Payment.AppID, v.Amount.Total, v.Payment.SignType
			b.prepayID = strings.TrimPrefix(v.Payment.Package, "prepay_id=")
			return true
		case 409:
			code := errorCode(rep.body)
			if code == "SOLD_OUT" || code == "LIMIT_EXCEEDED" {
				r.rec.observe(stepPrepay, start, end, classRejected, answerCode(rep))
				b.soldOut = true
				return false
			}
		case 429, 503:
			r.rec.observe(stepPrepay, start, end, statusClass(rep.status, ""), answerCode(rep))
			if attempt >= r.cfg.Retries {
				return false
			}
			wait := rep.retryAfter
			if wait <= 0 {
				wait = time.Second
			}
			// People do not retry in lockstep: spread the retries over half
			// a Retry-After more.
			wait += time.Duration(rand.Int64N(int64(wait/2) + 1))
			if !sleep(ctx, wait) {
				return false
			}
			continue
		}
		r.rec.observe(stepPrepay, start, end, classError, answerCode(rep))
		return false
	}
}

// pay is wx.requestPayment: the buyer confirms, wxpaysim marks the order
// paid and schedules its notification.
func (r *runner) pay(ctx context.Context, b *buyer) bool {
	openid := sim.OpenID(b.appID, b.code)
	body := make([]byte, 0, 128)
	body = append(body, `{"prepay_id":"`...)
	body = append(body, b.prepayID...)
	body = append(body, `","openid":"`...)
	body = append(body, openid...)
	body = append(body, `"}`...)
	start := time.Now()
	rep, err := r.sim.do("POST", "/sim/v1/pay", "", body, r.deadline(ctx))
	end := time.Now()
	if err != nil {
		r.rec.observe(stepPay, start, end, classError, transportCode(err))
		return false
	}
	if rep.status != 201 {
		r.rec.observe(stepPay, start, end, classError, answerCode(rep))
		return false
	}
	var v struct {
		TransactionID string `json:"transaction_id"`
	}
	if json.Unmarshal(rep.body, &v) != nil || v.TransactionID == "" {
		r.rec.observe(stepPay, start, end, classError, "201 without transaction_id")
		return false
	}
	r.rec.observe(stepPay, start, end, classOK, "")
	b.paid, b.txn = true, v.TransactionID
	return true
}

// awaitPaid polls the order until it reads PAID, as the Mini Program does
// after wx.requestPayment succeeds, for at most PaidTimeout. The wait
// between polls doubles from PollInterval up to 4x it, which is also the
// resolution of the paid step.
func (r *runner) awaitPaid(ctx context.Context, b *buyer, arrival time.Time) {
	paidAt := time.Now()
	giveUp := paidAt.Add(r.cfg.PaidTimeout)
	wait := r.cfg.PollInterval
	path := "/api/v1/orders/" + b.otn
	last := "no answer"
	for {
		if !sleep(ctx, wait) {
			r.rec.observe(stepPaid, paidAt, time.Now(), classError, "run stopped before PAID")
			return
		}
		start := time.Now()
		rep, err := b.st.do("GET", path, b.token, nil, r.deadline(ctx))
		end := time.Now()
		switch {
		case err != nil:
			r.rec.observe(stepPoll, start, end, classError, transportCode(err))
			last = transportCode(err)
		case rep.status != 200:
			r.rec.observe(stepPoll, start, end, statusClass(rep.status, ""), answerCode(rep))
			last = answerCode(rep)
		default:
			var v struct {
				State string `json:"state"`
			}
			if json.Unmarshal(rep.body, &v) != nil || v.State == "" {
				r.rec.observe(stepPoll, start, end, classError, "200 without a state")
				break
			}
			r.rec.observe(stepPoll, start, end, classOK, "")
			last = "state " + v.State
			if v.State == "PAID" {
				b.seenPaid = true
				r.rec.observe(stepPaid, paidAt, end, classOK, "")
				r.rec.observe(stepCheckot, arrival, end, classOK, "")
				return
			}
		}
		if end.After(giveUp) {
			r.rec.observe(stepPaid, paidAt, end, classError, "not PAID within "+r.cfg.PaidTimeout.String()+" ("+last+")")
			return
		}
		wait = min(wait*2, 4*r.cfg.PollInterval)
	}
}

// shop is one buyer's journey after arriving at its intended time: log in
// (unless done before the window), prepay, and, if it pays, pay and wait
// for PAID; then, for a share of them, the admin refunds the order.
func (r *runner) shop(ctx context.Context, b *buyer, arrival time.Time) {
	start := arrival
	if !b.loggedIn {
		if !r.login(ctx, b, start) {
			return
		}
		start = time.Now()
	}
	if !r.prepay(ctx, b, start) || !b.payer {
		return
	}
	if !r.pay(ctx, b) {
		return
	}
	r.awaitPaid(ctx, b, arrival)
	if b.refunder && b.seenPaid {
		r.refundOrder(ctx, b)
	}
}

// statusClass classifies a non-OK status.
func statusClass(status int, code string) class {
	switch {
	case status == 429:
		return classThrottled
	case code == "SOLD_OUT" || code == "LIMIT_EXCEEDED":
		return classRejected
	}
	return classError
}

// deadline is a request's deadline: Timeout from now, within ctx's.
func (r *runner) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(r.cfg.Timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
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
