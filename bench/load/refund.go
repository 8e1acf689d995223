package load

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/wxpayd/wxpayd/bench/sim"
)

// Refunds and WeChat's failures: the admin refunds a share of the paid
// orders (Config.RefundShare), wxpaysim's API faults and refund outcomes
// can be switched on for the timed window (Config.SimFaults,
// SimRefundOutcomes), and the audit checks that wxpayd's refunds equal
// WeChat's.

// refundTry is what the admin saw refunding one order. Only the buyer's
// goroutine writes it; the audit reads it after the window.
type refundTry struct {
	sent     bool
	answers  []string
	accepted bool // some answer was 2xx
	refused  bool // every answer was a definitive refusal (a 4xx other than 429)
}

// refundKey is the Idempotency-Key of a buyer's refund: one per order, so
// every retry is the same refund.
func (b *buyer) refundKey() string { return "wbr-" + strings.TrimPrefix(b.code, "code-") }

// refundOrder is the admin refunding b's order: refundFrac of its total
// (at least 1 fen), retried after 429, 5xx or no answer with the same
// Idempotency-Key, which makes every retry the same refund.
func (r *runner) refundOrder(ctx context.Context, b *buyer) {
	total := b.total
	if total <= 0 {
		total = r.cfg.Price
	}
	b.refundAmt = max(1, min(total, int64(float64(total)*b.refundFrac)))
	body := fmt.Appendf(nil, `{"amount":%d,"reason":"wxpaybench"}`, b.refundAmt)
	path := "/admin/v1/orders/" + b.otn + "/refunds"
	t := &b.refund
	t.sent, t.refused = true, true
	for attempt := 0; ; attempt++ {
		start := time.Now()
		rep, err := b.st.doKey("POST", path, r.admin, b.refundKey(), body, r.deadline(ctx))
		end := time.Now()
		retry := false
		switch {
		case err != nil:
			r.rec.observe(stepRefund, start, end, classError, transportCode(err))
			t.answers = append(t.answers, transportCode(err))
			t.refused, retry = false, true
		case rep.status >= 200 && rep.status < 300:
			r.rec.observe(stepRefund, start, end, classOK, "")
			t.answers = append(t.answers, fmt.Sprint(rep.status))
			t.accepted, t.refused = true, false
		default:
			r.rec.observe(stepRefund, start, end, statusClass(rep.status, ""), answerCode(rep))
			t.answers = append(t.answers, answerCode(rep))
			if rep.status == 429 || rep.status >= 500 {
				t.refused, retry = false, true
			}
		}
		if !retry || attempt >= r.cfg.Retries {
			return
		}
		wait := rep.retryAfter
		if wait <= 0 {
			wait = time.Second
		}
		wait += time.Duration(rand.Int64N(int64(wait/2) + 1))
		if !sleep(ctx, wait) {
			return
		}
	}
}

// applySimFaults puts SimFaults and SimRefundOutcomes on wxpaysim for the
// window and returns the function that restores what was there before.
func (r *runner) applySimFaults(ctx context.Context) (func(), error) {
	cfg := &r.cfg
	if cfg.SimFaults == "" && cfg.SimRefundOutcomes == "" {
		return func() {}, nil
	}
	rep, err := r.sim.do("GET", "/sim/v1/faults", "", nil, r.deadline(ctx))
	if err != nil || rep.status != 200 {
		return nil, fmt.Errorf("GET %s/sim/v1/faults: %v %s: this wxpaysim cannot inject API faults", r.sim.base, err, answerOf(rep, err))
	}
	var before sim.FaultSettings
	if err := json.Unmarshal(rep.body, &before); err != nil {
		return nil, fmt.Errorf("GET %s/sim/v1/faults: %w", r.sim.base, err)
	}
	put := func(faults, outcomes string) error {
		m := map[string]string{}
		if cfg.SimFaults != "" {
			m["faults"] = faults
		}
		if cfg.SimRefundOutcomes != "" {
			m["refund_outcomes"] = outcomes
		}
		body, _ := json.Marshal(m)
		rep, err := r.sim.do("PUT", "/sim/v1/faults", "", body, r.deadline(ctx))
		if err != nil || rep.status != 200 {
			return fmt.Errorf("PUT %s/sim/v1/faults %s: %s", r.sim.base, body, answerOf(rep, err))
		}
		return nil
	}
	if err := put(cfg.SimFaults, cfg.SimRefundOutcomes); err != nil {
		return nil, err
	}
	r.notes = append(r.notes, fmt.Sprintf("wxpaysim's API faults were %q and its refund outcomes %q during the timed window (PUT /sim/v1/faults), and back to %q and %q for the audit, so wxpayd's retries could settle.",
		cmpStr(cfg.SimFaults, before.Faults), cmpStr(cfg.SimRefundOutcomes, before.RefundOutcomes), before.Faults, before.RefundOutcomes))
	return func() {
		if err := put(before.Faults, before.RefundOutcomes); err != nil {
			r.notes = append(r.notes, "Restoring wxpaysim's faults failed: "+err.Error())
		}
	}, nil
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func answerOf(rep reply, err error) string {
	if err != nil {
		return transportCode(err)
	}
	return answerCode(rep)
}

// adminOrderView is the part of GET /admin/v1/orders/{out_trade_no} the
// refund audit reads.
type adminOrderView struct {
	Order struct {
		State    string `json:"state"`
		Total    int64  `json:"total"`
		Refunded int64  `json:"refunded"`
		Refunds  []struct {
			OutRefundNo string `json:"out_refund_no"`
			Amount      int64  `json:"amount"`
			Status      string `json:"status"`
		} `json:"refunds"`
	} `json:"order"`
}

// refundState is one refunded order on both sides.
type refundState struct {
	b      *buyer
	wx     adminOrderView
	wechat sim.OrderView
	err    string
}

// settled reports whether nothing is pending: no refund PROCESSING at
// WeChat, every refund at wxpayd final (SUCCESS, CLOSED, FAILED) or
// ABNORMAL on both sides (WeChat holds it until the merchant applies).
func (s *refundState) settled() bool {
	if s.err != "" {
		return false
	}
	status := map[string]string{}
	for _, rf := range s.wechat.Refunds {
		if rf.Status == "PROCESSING" {
			return false
		}
		status[rf.OutRefundNo] = rf.Status
	}
	for _, rf := range s.wx.Order.Refunds {
		switch rf.Status {
		case "SUCCESS", "CLOSED", "FAILED":
		case "ABNORMAL":
			if status[rf.OutRefundNo] != "ABNORMAL" {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func (r *runner) refundStates(ctx context.Context, list []*buyer) []refundState {
	out := make([]refundState, len(list))
	for i, b := range list {
		s := &out[i]
		s.b = b
		rep, err := b.st.do("GET", "/admin/v1/orders/"+b.otn, r.admin, nil, r.deadline(ctx))
		if err != nil || rep.status != 200 || json.Unmarshal(rep.body, &s.wx) != nil {
			s.err = "wxpayd: " + answerOf(rep, err)
			continue
		}
		rep, err = r.sim.do("GET", "/sim/v1/orders/"+b.otn, "", nil, r.deadline(ctx))
		if err != nil || rep.status != 200 || json.Unmarshal(rep.body, &s.wechat) != nil {
			s.err = "wxpaysim: " + answerOf(rep, err)
		}
	}
	return out
}

// refundCheck waits (until deadline) for every refund to settle, then
// compares wxpayd's refunds with WeChat's, order by order.
func (r *runner) refundCheck(ctx context.Context, deadline time.Time, n map[string]int64) Check {
	c := Check{Name: "refunds equal WeChat's",
		Why: "A refund is money leaving the shop: wxpayd's refunded amount must be what WeChat refunded, every WeChat refund must be one the admin asked for (a retried request with its Idempotency-Key refunds once), and a refund whose outcome was lost must be retried or queried until WeChat says, never guessed."}
	var asked []*buyer
	full := 0
	for _, b := range r.buyers {
		if b.refund.sent {
			asked = append(asked, b)
			if b.refundFrac == 1 {
				full++
			}
		}
	}
	if r.cfg.RefundShare == 0 {
		c.Skipped, c.Passed = true, true
		c.Detail = "skipped: --refund-share 0"
		return c
	}
	var states []refundState
	for {
		states = r.refundStates(ctx, asked)
		done := true
		for i := range states {
			done = done && states[i].settled()
		}
		if done || time.Now().After(deadline) || !sleep(ctx, 500*time.Millisecond) {
			break
		}
	}
	var accepted, refused, unanswered, pending int
	var wxFen, wechatFen int64
	byStatus := map[string]int{}
	var bad []string
	for i := range states {
		s := &states[i]
		b := s.b
		t := &b.refund
		switch {
		case t.accepted:
			accepted++
		case t.refused:
			refused++
		default:
			unanswered++
		}
		if s.err != "" {
			bad = append(bad, b.otn+": unreadable: "+s.err)
			continue
		}
		if !s.settled() {
			pending++
			bad = append(bad, b.otn+": still pending at the audit deadline")
		}
		var ok int64
		for _, rf := range s.wechat.Refunds {
			byStatus[rf.Status]++
			if rf.Status == "SUCCESS" {
				ok += rf.Amount
			}
		}
		wxFen += s.wx.Order.Refunded
		wechatFen += ok
		why := ""
		known := map[string]string{}
		for _, rf := range s.wx.Order.Refunds {
			if _, dup := known[rf.OutRefundNo]; dup {
				why = "wxpayd lists out_refund_no " + rf.OutRefundNo + " twice"
			}
			known[rf.OutRefundNo] = rf.Status
		}
		switch {
		case why != "":
		case s.wx.Order.Refunded != ok:
			why = fmt.Sprintf("wxpayd refunded %d fen, WeChat's SUCCESS refunds sum to %d", s.wx.Order.Refunded, ok)
		case len(s.wechat.Refunds) > 1:
			why = fmt.Sprintf("WeChat has %d refunds for one request", len(s.wechat.Refunds))
		case len(s.wechat.Refunds) == 1 && s.wechat.Refunds[0].Amount != b.refundAmt:
			why = fmt.Sprintf("WeChat refunded %d fen, the admin asked for %d", s.wechat.Refunds[0].Amount, b.refundAmt)
		case len(s.wechat.Refunds) == 1 && t.refused:
			why = "WeChat has a refund wxpayd refused (" + strings.Join(t.answers, ", ") + ")"
		case ok > s.wechat.Total:
			why = fmt.Sprintf("WeChat refunded %d fen of %d", ok, s.wechat.Total)
		}
		for _, rf := range s.wechat.Refunds {
			st, found := known[rf.OutRefundNo]
			switch {
			case why != "":
			case !found:
				why = "wxpayd does not know WeChat's refund " + rf.OutRefundNo
			case (st == "SUCCESS") != (rf.Status == "SUCCESS") || (st == "ABNORMAL") != (rf.Status == "ABNORMAL"):
				why = fmt.Sprintf("refund %s is %s at wxpayd, %s at WeChat", rf.OutRefundNo, st, rf.Status)
			}
		}
		if why != "" {
			bad = append(bad, b.otn+": "+why)
		}
	}
	n["refunds_asked"] = int64(len(asked))
	n["refunded_fen_wxpayd"] = wxFen
	n["refunded_fen_wechat"] = wechatFen
	statuses := make([]string, 0, len(byStatus))
	for k, v := range byStatus {
		statuses = append(statuses, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(statuses)
	c.Passed = len(bad) == 0
	c.Detail = fmt.Sprintf("%d refunds asked (%d in full, %d in part): %d accepted, %d refused, %d without a definitive answer; at WeChat: %s; wxpayd refunded %d fen, WeChat %d fen; %d not settled",
		len(asked), full, len(asked)-full, accepted, refused, unanswered, strings.Join(statuses, ", "), wxFen, wechatFen, pending)
	if len(asked) == 0 {
		c.Detail += " (no paid order was picked: raise --refund-share or --buyers)"
	}
	if len(bad) > 0 {
		if len(bad) > 5 {
			bad = append(bad[:5:5], fmt.Sprintf("… %d more", len(bad)-5))
		}
		c.Detail += "; " + strings.Join(bad, "; ")
	}
	return c
}

// apiFaultCheck reports the WeChat API faults wxpaysim injected during the
// run; with --sim-faults set it fails when none was injected (the run then
// tested nothing of them).
func (r *runner) apiFaultCheck(before, after sim.Stats, n map[string]int64) (Check, bool) {
	spec, _ := sim.ParseFaults(r.cfg.SimFaults)
	want := spec.String() != "" && r.cfg.SimFaults != ""
	var total uint64
	var parts []string
	for _, k := range sortedKeys(after.APIFaults) {
		if d := after.APIFaults[k] - before.APIFaults[k]; d > 0 {
			total += d
			parts = append(parts, fmt.Sprintf("%s %d", k, d))
		}
	}
	n["wxpaysim_api_faults"] = int64(total)
	if !want && total == 0 {
		return Check{}, false
	}
	c := Check{Name: "WeChat API faults injected", Passed: total > 0,
		Detail: fmt.Sprintf("%d injected: %s", total, strings.Join(parts, ", ")),
		Why:    "With --sim-faults wxpaysim fails WeChat calls (errors, rate limits, unsigned 502s, slow and lost answers); the other checks then show that wxpayd's books still equal WeChat's. A run that injected none tested nothing of it."}
	if total == 0 {
		c.Detail = "none injected: raise the --sim-faults rates or the load"
	}
	return c, true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
