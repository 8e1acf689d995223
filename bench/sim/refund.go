package sim

import (
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

const (
	pathRefundPrefix = "/v3/refund/domestic/refunds/"
	maxRefunds       = 50 // partial refunds per order
)

// codeRefundFeeMismatch is WeChat's code for an out_refund_no repeated with
// another amount (APIv2's refund table; APIv3's FAQ names it too).
const codeRefundFeeMismatch = "REFUND_FEE_MISMATCH"

// refund is one refund of an order; guarded by the order's shard mu.
type refund struct {
	o           *order
	outRefundNo string
	refundID    string
	reason      string
	notifyURL   string
	amount      int64
	status      string // wxpay.RefundStatus*
	outcome     string // the status it ends in after the delay; SUCCESS once an abnormal refund is applied
	channel     string // ORIGINAL; OTHER_BANKCARD once an abnormal refund goes to a bank card
	account     string // user_received_account
	created     time.Time
	success     time.Time
	v2          bool // made through /secapi/pay/refund: notified in APIv2's form (v2orders.go)
}

// refundBody is the JSON of POST /v3/refund/domestic/refunds.
type refundBody struct {
	TransactionID string `json:"transaction_id"`
	OutTradeNo    string `json:"out_trade_no"`
	OutRefundNo   string `json:"out_refund_no"`
	Reason        string `json:"reason"`
	NotifyURL     string `json:"notify_url"`
	FundsAccount  string `json:"funds_account"`
	Amount        struct {
		Refund   int64  `json:"refund"`
		Total    int64  `json:"total"`
		Currency string `json:"currency"`
	} `json:"amount"`
}

func validateRefund(b *refundBody) *apiError {
	if b.OutRefundNo == "" {
		return paramError("/out_refund_no", "", "必填")
	}
	if !wxpay.ValidOutRefundNo(b.OutRefundNo) {
		return paramError("/out_refund_no", b.OutRefundNo, "长度不能超过64个字符，只能是数字、大小写字母_-|*@")
	}
	if b.TransactionID == "" && b.OutTradeNo == "" {
		return paramError("/out_trade_no", "", "transaction_id和out_trade_no必须二选一")
	}
	if b.TransactionID == "" && !wxpay.ValidOutTradeNo(b.OutTradeNo) {
		return paramError("/out_trade_no", b.OutTradeNo, "长度须为6到32个字符，只能是数字、大小写字母_-|*")
	}
	if e := checkLen("/transaction_id", b.TransactionID, 32, false); e != nil {
		return e
	}
	if e := checkLen("/reason", b.Reason, 80, false); e != nil {
		return e
	}
	if b.NotifyURL != "" {
		if e := checkNotifyURL("/notify_url", b.NotifyURL, 256); e != nil {
			return e
		}
	}
	if b.FundsAccount != "" && b.FundsAccount != "AVAILABLE" {
		return paramError("/funds_account", b.FundsAccount, "只支持AVAILABLE")
	}
	if b.Amount.Refund <= 0 {
		return paramError("/amount/refund", b.Amount.Refund, "必须大于0")
	}
	if b.Amount.Total <= 0 {
		return paramError("/amount/total", b.Amount.Total, "必须大于0")
	}
	if b.Amount.Refund > b.Amount.Total {
		return paramError("/amount/refund", b.Amount.Refund, "不能大于原订单金额amount.total")
	}
	if b.Amount.Currency != "CNY" {
		return paramError("/amount/currency", b.Amount.Currency, "必填，只支持CNY")
	}
	return nil
}

var errRefundNotFound = newErr(404, wxpay.CodeResourceNotExists, "订单不存在")

// refund serves POST /v3/refund/domestic/refunds. The refund starts
// PROCESSING, holds its amount, and after the refund delay ends SUCCESS,
// CLOSED or ABNORMAL (drawn now from the refund outcomes) with the matching
// REFUND.* notification. A refund beyond what is refundable (the total less
// refunds that succeeded or are in flight) is 403 NOT_ENOUGH; the other
// business rules are 400 INVALID_REQUEST (UNCONFIRMED: WeChat's messages are
// known, the exact code per rule is not). A repeated out_refund_no is the
// same refund; with another amount it is 400 REFUND_FEE_MISMATCH.
func (s *Server) refund(r *v3req) (int, []byte, *apiError) {
	var b refundBody
	if e := decodeBody(r.body, &b); e != nil {
		return 0, nil, e
	}
	if e := validateRefund(&b); e != nil {
		return 0, nil, e
	}
	st := s.store
	var o *order
	if b.TransactionID != "" {
		st.idxMu.RLock()
		t := st.byTxn[b.TransactionID]
		st.idxMu.RUnlock()
		if t == nil || t.mchID != r.mchID {
			return 0, nil, errRefundNotFound
		}
		if o = st.lookup(t.mchID, t.outTradeNo); o == nil {
			return 0, nil, errRefundNotFound
		}
	} else if o = st.lookup(r.mchID, b.OutTradeNo); o == nil {
		st.recordCall(r.mchID, b.OutTradeNo, ckRefund, r.now)
		return 0, nil, errRefundNotFound
	}
	defer o.sh.mu.Unlock()
	o.calls.add(ckRefund, r.now)
	o.expireIfDue(r.now, &s.stats)
	rkey := orderKey(r.mchID, b.OutRefundNo)
	st.idxMu.RLock()
	old := st.refunds[rkey]
	st.idxMu.RUnlock()
	if old != nil {
		switch {
		case old.o != o:
			return 0, nil, newErr(400, wxpay.CodeInvalidRequest, "商户退款单号已被其他订单使用")
		case old.amount != b.Amount.Refund || b.Amount.Total != o.total:
			// UNCONFIRMED: the HTTP status of REFUND_FEE_MISMATCH in APIv3.
			return 0, nil, newErr(400, codeRefundFeeMismatch, "订单金额或退款金额与之前请求不一致，请核实后再试")
		}
		return 200, old.json(make([]byte, 0, 512)), nil // same out_refund_no: the same refund, refunded once
	}
	switch {
	case o.txnID == "":
		return 0, nil, newErr(400, wxpay.CodeInvalidRequest, "订单未支付，不能退款")
	case b.Amount.Total != o.total:
		return 0, nil, newErr(400, wxpay.CodeInvalidRequest, "订单金额与退款请求中的订单金额不一致")
	case b.Amount.Refund > o.refundable(): // by subtraction: no overflow
		// UNCONFIRMED: WeChat documents NOT_ENOUGH for a short balance; its
		// code for exceeding the refundable amount is not documented.
		return 0, nil, newErr(403, wxpay.CodeNotEnough, "申请退款金额超过订单可退金额")
	case len(o.refunds) >= maxRefunds:
		return 0, nil, newErr(400, wxpay.CodeInvalidRequest, "订单退款次数超过50次")
	}
	if !s.notifier.reserve() {
		return 0, nil, errOverloaded
	}
	rf := &refund{
		o: o, outRefundNo: b.OutRefundNo, refundID: st.newRefundID(r.now), reason: b.Reason,
		notifyURL: b.NotifyURL, amount: b.Amount.Refund, status: wxpay.RefundStatusProcessing,
		outcome: s.drawOutcome(), channel: "ORIGINAL", account: "支付用户零钱", created: r.now,
	}
	if rf.notifyURL == "" {
		rf.notifyURL = o.notifyURL
	}
	o.refunds = append(o.refunds, rf)
	o.refunding += rf.amount
	o.state = wxpay.TradeStateRefund
	st.idxMu.Lock()
	st.refunds[rkey] = rf
	st.idxMu.Unlock()
	s.stats.refunds.Add(1)
	s.notifier.schedule(&task{due: r.now.Add(s.cfg.refundDelay()), fn: func() { s.completeRefund(rf) }})
	return 200, rf.json(make([]byte, 0, 512)), nil
}

// completeRefund ends a PROCESSING refund in its drawn outcome and notifies
// it, using the pending slot reserved for it: SUCCESS moves the amount to
// refunded, CLOSED makes it refundable again, ABNORMAL keeps holding it.
func (s *Server) completeRefund(rf *refund) {
	o := rf.o
	now := s.clock.Now()
	o.sh.mu.Lock()
	if rf.status != wxpay.RefundStatusProcessing { // unreachable: one completion per PROCESSING spell
		o.sh.mu.Unlock()
		s.notifier.release()
		return
	}
	rf.status = rf.outcome
	var event, summary string
	switch rf.status {
	case wxpay.RefundStatusClosed:
		o.refunding -= rf.amount
		event, summary = wxpay.EventRefundClosed, "退款关闭"
		s.stats.refundsClosed.Add(1)
	case wxpay.RefundStatusAbnormal:
		event, summary = wxpay.EventRefundAbnormal, "退款异常"
		s.stats.refundsAbnorm.Add(1)
	default:
		o.refunding -= rf.amount
		o.refunded += rf.amount
		rf.success = now
		event, summary = wxpay.EventRefundSuccess, "退款成功"
		s.stats.refundsDone.Add(1)
	}
	var n *delivery
	if rf.v2 {
		n = s.v2RefundNotification(rf, now)
	} else {
		plain := rf.noticeJSON(make([]byte, 0, 384))
		n = s.newDelivery(o, event, wxpay.OriginalTypeRefund, summary, rf.notifyURL, plain, now)
	}
	o.sh.mu.Unlock()
	s.notifier.submit(n, now)
}

// json appends the refund answer (create and query). Caller holds the shard.
func (rf *refund) json(b []byte) []byte {
	o := rf.o
	ob := newObj(b)
	am := ob.obj("amount")
	am.str("currency", o.currency)
	am.num("discount_refund", 0)
	am.raw("from", "[]")
	am.num("payer_refund", rf.amount)
	am.num("payer_total", o.total)
	am.num("refund", rf.amount)
	am.num("settlement_refund", rf.amount)
	am.num("settlement_total", o.total)
	am.num("total", o.total)
	am.end(ob)
	ob.str("channel", rf.channel)
	ob.str("create_time", rfc3339(rf.created))
	ob.str("funds_account", "AVAILABLE")
	ob.str("out_refund_no", rf.outRefundNo)
	ob.str("out_trade_no", o.outTradeNo)
	ob.raw("promotion_detail", "[]")
	ob.str("refund_id", rf.refundID)
	ob.str("status", rf.status)
	if rf.status == wxpay.RefundStatusSuccess {
		ob.str("success_time", rfc3339(rf.success))
	}
	ob.str("transaction_id", o.txnID)
	ob.str("user_received_account", rf.account)
	return ob.done()
}

// noticeJSON appends the REFUND.* resource. Caller holds the shard.
func (rf *refund) noticeJSON(b []byte) []byte {
	o := rf.o
	ob := newObj(b)
	ob.str("mchid", o.mchID)
	ob.str("out_trade_no", o.outTradeNo)
	ob.str("transaction_id", o.txnID)
	ob.str("out_refund_no", rf.outRefundNo)
	ob.str("refund_id", rf.refundID)
	ob.str("refund_status", rf.status)
	if rf.status == wxpay.RefundStatusSuccess {
		ob.str("success_time", rfc3339(rf.success))
	}
	ob.str("user_received_account", rf.account)
	am := ob.obj("amount")
	am.num("total", o.total)
	am.num("refund", rf.amount)
	am.num("payer_total", o.total)
	am.num("payer_refund", rf.amount)
	am.end(ob)
	return ob.done()
}

// refundQuery serves GET /v3/refund/domestic/refunds/{out_refund_no}.
func (s *Server) refundQuery(r *v3req) (int, []byte, *apiError) {
	orn := pathParam(r.ctx, pathRefundPrefix, "")
	if !wxpay.ValidOutRefundNo(orn) {
		e := paramError("/out_refund_no", orn, "长度不能超过64个字符，只能是数字、大小写字母_-|*@")
		e.detail.Location = "path"
		return 0, nil, e
	}
	st := s.store
	st.idxMu.RLock()
	rf := st.refunds[orderKey(r.mchID, orn)]
	st.idxMu.RUnlock()
	if rf == nil {
		return 0, nil, newErr(404, wxpay.CodeResourceNotExists, "退款单不存在")
	}
	rf.o.sh.mu.Lock()
	rf.o.calls.add(ckRefundQuery, r.now)
	body := rf.json(make([]byte, 0, 512))
	rf.o.sh.mu.Unlock()
	return 200, body, nil
}
