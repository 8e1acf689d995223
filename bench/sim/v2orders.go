package sim

import (
	"bytes"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
)

// APIv2 after unifiedorder: POST /pay/orderquery, /pay/closeorder,
// /secapi/pay/refund (TLS listener, merchant client certificate) and
// /pay/refundquery, and the refund notification with req_info. They work
// on the same orders and refunds as APIv3 (an order made through either
// API can be queried, closed and refunded through either), count on the
// same ledger, and take the faults of their APIv3 counterparts. A refund
// made through /secapi/pay/refund is notified in APIv2's form; one made
// through APIv3 in APIv3's.

// More APIv2 err_code values (v2.go has the unifiedorder ones).
const (
	v2ErrOrderNotExist  = "ORDERNOTEXIST"
	v2ErrRefundNotExist = "REFUNDNOTEXIST"
	v2ErrNotEnough      = "NOTENOUGH"
	v2ErrBusiness       = "ERROR"
	v2ErrTradeState     = "TRADE_STATE_ERROR"
)

// v2Endpoints routes APIv2's paths.
var v2Endpoints = map[string]*v2Endpoint{
	"/pay/unifiedorder": v2UnifiedOrderEP,
	"/pay/orderquery": {ep: epV2OrderQuery, fp: fpQuery, ck: ckQuery,
		names: (*Server).v2NamedOrder, run: (*Server).v2OrderQuery},
	"/pay/closeorder": {ep: epV2CloseOrder, fp: fpClose, ck: ckClose,
		names: (*Server).v2NamedOrder, run: (*Server).v2CloseOrder},
	"/secapi/pay/refund": {ep: epV2Refund, fp: fpRefund, ck: ckRefund, secure: true,
		names: (*Server).v2NamedOrder, run: (*Server).v2Refund},
	"/pay/refundquery": {ep: epV2RefundQuery, fp: fpRefundQuery, ck: ckRefundQuery,
		names: (*Server).v2NamedRefundOrder, run: (*Server).v2RefundQuery},
}

// v2Route serves an APIv2 path, or answers an unknown one in APIv2's XML.
func (s *Server) v2Route(ctx *fasthttp.RequestCtx, path []byte) {
	if e := v2Endpoints[string(path)]; e != nil {
		s.v2Serve(ctx, e)
		return
	}
	s.stats.requests[epOther].Add(1)
	s.v2NoRoute(ctx)
}

// v2NamedOrder is the out_trade_no a request names: through its
// transaction_id when it has one (WeChat's precedence), else its
// out_trade_no.
func (s *Server) v2NamedOrder(p map[string]string) string {
	if txn := p["transaction_id"]; txn != "" {
		return s.store.outTradeNoOfTxn(s.id.MchID, txn)
	}
	return p["out_trade_no"]
}

// v2NamedRefundOrder is the out_trade_no a refund query names: through
// its refund, else as v2NamedOrder.
func (s *Server) v2NamedRefundOrder(p map[string]string) string {
	if rf := s.v2LookupRefund(p); rf != nil {
		return rf.o.outTradeNo // immutable
	}
	return s.v2NamedOrder(p)
}

// v2Order returns the order p names with its shard locked, or nil.
func (s *Server) v2Order(p map[string]string) *order {
	otn := s.v2NamedOrder(p)
	if !wxpay.ValidOutTradeNo(otn) {
		return nil
	}
	return s.store.lookup(s.id.MchID, otn)
}

// v2TradeFields are an order's fields in an orderquery reply (and, paid,
// its notification's). Caller holds the shard.
func (o *order) v2TradeFields() map[string]string {
	total := strconv.FormatInt(o.total, 10)
	f := map[string]string{
		"out_trade_no": o.outTradeNo, "trade_state": o.state, "trade_state_desc": tradeStateDesc[o.state],
		"total_fee": total, "fee_type": "CNY", "attach": o.attach, "openid": o.openID, "is_subscribe": "N",
		"trade_type": "JSAPI",
	}
	if o.txnID != "" {
		f["transaction_id"] = o.txnID
		f["bank_type"] = "OTHERS"
		f["cash_fee"] = total
		f["cash_fee_type"] = "CNY"
		f["time_end"] = o.successTime.In(beijing).Format(wxpay.V2TimeLayout)
	}
	return f
}

// v2OrderQuery serves POST /pay/orderquery: by transaction_id or
// out_trade_no.
func (s *Server) v2OrderQuery(p map[string]string, st wxpay.V2SignType, now time.Time) []byte {
	if p["transaction_id"] == "" && p["out_trade_no"] == "" {
		s.stats.reject("v2 " + v2ErrParam)
		return s.v2Reply(p, st, v2ErrParam, "transaction_id和out_trade_no必须二选一", nil)
	}
	o := s.v2Order(p)
	if o == nil {
		if otn := p["out_trade_no"]; p["transaction_id"] == "" && wxpay.ValidOutTradeNo(otn) {
			s.store.recordCall(s.id.MchID, otn, ckQuery, now)
		}
		s.stats.reject("v2 " + v2ErrOrderNotExist)
		return s.v2Reply(p, st, v2ErrOrderNotExist, "此交易订单号不存在", nil)
	}
	o.calls.add(ckQuery, now)
	o.expireIfDue(now, &s.stats)
	f := o.v2TradeFields()
	o.sh.mu.Unlock()
	return s.v2Reply(p, st, "", "", f)
}

// v2CloseOrder serves POST /pay/closeorder: an unpaid order closes; a
// closed one is ORDERCLOSED and a paid one ORDERPAID, as APIv2 documents.
func (s *Server) v2CloseOrder(p map[string]string, st wxpay.V2SignType, now time.Time) []byte {
	otn := p["out_trade_no"]
	if !wxpay.ValidOutTradeNo(otn) {
		s.stats.reject("v2 " + v2ErrParam)
		return s.v2Reply(p, st, v2ErrParam, "out_trade_no参数格式错误", nil)
	}
	o := s.store.lookup(s.id.MchID, otn)
	if o == nil {
		s.store.recordCall(s.id.MchID, otn, ckClose, now)
		s.stats.reject("v2 " + v2ErrOrderNotExist)
		return s.v2Reply(p, st, v2ErrOrderNotExist, "此交易订单号不存在", nil)
	}
	o.calls.add(ckClose, now)
	o.expireIfDue(now, &s.stats)
	code, desc := "", ""
	switch o.state {
	case wxpay.TradeStateNotPay:
		o.state = wxpay.TradeStateClosed
		o.closedBy = "merchant"
		s.stats.closed.Add(1)
	case wxpay.TradeStateClosed:
		code, desc = v2ErrOrderClosed, "当前订单已关闭，无需继续关闭"
	default:
		code, desc = v2ErrOrderPaid, "订单已支付，不能发起关单"
	}
	o.sh.mu.Unlock()
	if code != "" {
		s.stats.reject("v2 " + code)
	}
	return s.v2Reply(p, st, code, desc, nil)
}

// v2RefundParams checks the fields of /secapi/pay/refund; it returns the
// amounts, or err_code and err_code_des.
func v2RefundParams(p map[string]string) (refundFee, totalFee int64, code, desc string) {
	switch {
	case p["out_refund_no"] == "" || p["total_fee"] == "" || p["refund_fee"] == "":
		return 0, 0, v2ErrLackParams, "缺少参数out_refund_no、total_fee或refund_fee"
	case !wxpay.ValidOutRefundNo(p["out_refund_no"]):
		return 0, 0, v2ErrParam, "out_refund_no参数格式错误"
	case p["transaction_id"] == "" && p["out_trade_no"] == "":
		return 0, 0, v2ErrParam, "transaction_id和out_trade_no必须二选一"
	case p["transaction_id"] == "" && !wxpay.ValidOutTradeNo(p["out_trade_no"]):
		return 0, 0, v2ErrParam, "out_trade_no参数格式错误"
	case len(p["refund_desc"]) > 80:
		return 0, 0, v2ErrParam, "refund_desc长度超过限制"
	case p["refund_fee_type"] != "" && p["refund_fee_type"] != "CNY":
		return 0, 0, v2ErrParam, "refund_fee_type只支持CNY"
	}
	if u := p["notify_url"]; u != "" && checkNotifyURL("/notify_url", u, 256) != nil {
		return 0, 0, v2ErrParam, "notify_url参数格式错误"
	}
	var err error
	if refundFee, err = strconv.ParseInt(p["refund_fee"], 10, 64); err != nil || refundFee <= 0 || p["refund_fee"][0] == '+' {
		return 0, 0, v2ErrParam, "refund_fee参数格式错误"
	}
	if totalFee, err = strconv.ParseInt(p["total_fee"], 10, 64); err != nil || totalFee <= 0 || p["total_fee"][0] == '+' {
		return 0, 0, v2ErrParam, "total_fee参数格式错误"
	}
	if refundFee > totalFee {
		return 0, 0, v2ErrParam, "退款金额大于订单金额"
	}
	return refundFee, totalFee, "", ""
}

// v2Refund serves POST /secapi/pay/refund with APIv3 refund's rules: the
// same out_refund_no is the same refund (another amount:
// REFUND_FEE_MISMATCH), beyond the refundable amount is NOTENOUGH, at most
// 50 refunds; the refund starts PROCESSING and ends after the refund delay
// in its drawn outcome, notified in APIv2's form at notify_url (else the
// order's notify_url: UNCONFIRMED, WeChat uses the refund URL set in the
// merchant platform). UNCONFIRMED: the err_code of an unknown order
// (ORDERNOTEXIST), an unpaid one (TRADE_STATE_ERROR) and a total_fee that
// is not the order's (ERROR).
func (s *Server) v2Refund(p map[string]string, st wxpay.V2SignType, now time.Time) []byte {
	refundFee, totalFee, code, desc := v2RefundParams(p)
	if code != "" {
		if otn := s.v2NamedOrder(p); wxpay.ValidOutTradeNo(otn) {
			s.store.recordCall(s.id.MchID, otn, ckRefund, now)
		}
		return s.v2RefundFail(p, st, code, desc)
	}
	o := s.v2Order(p)
	if o == nil {
		if otn := p["out_trade_no"]; p["transaction_id"] == "" {
			s.store.recordCall(s.id.MchID, otn, ckRefund, now)
		}
		return s.v2RefundFail(p, st, v2ErrOrderNotExist, "订单不存在")
	}
	rf, code, desc := s.v2CreateRefund(o, p, refundFee, totalFee, now)
	if code != "" {
		o.sh.mu.Unlock()
		return s.v2RefundFail(p, st, code, desc)
	}
	f := rf.v2Fields()
	o.sh.mu.Unlock()
	return s.v2Reply(p, st, "", "", f)
}

func (s *Server) v2RefundFail(p map[string]string, st wxpay.V2SignType, code, desc string) []byte {
	s.stats.reject("v2 " + code)
	return s.v2Reply(p, st, code, desc, nil)
}

// v2CreateRefund creates the refund, or returns the one with the same
// out_refund_no. Caller holds o's shard.
func (s *Server) v2CreateRefund(o *order, p map[string]string, refundFee, totalFee int64, now time.Time) (*refund, string, string) {
	st := s.store
	o.calls.add(ckRefund, now)
	o.expireIfDue(now, &s.stats)
	rkey := orderKey(o.mchID, p["out_refund_no"])
	st.idxMu.RLock()
	old := st.refunds[rkey]
	st.idxMu.RUnlock()
	if old != nil {
		switch {
		case old.o != o:
			return nil, v2ErrBusiness, "商户退款单号已被其他订单使用"
		case old.amount != refundFee || totalFee != o.total:
			return nil, codeRefundFeeMismatch, "订单金额或退款金额与之前请求不一致，请核实后再试"
		}
		return old, "", "" // the same refund, refunded once
	}
	switch {
	case o.txnID == "":
		return nil, v2ErrTradeState, "订单未支付，不能退款"
	case totalFee != o.total:
		return nil, v2ErrBusiness, "订单金额与退款请求中的订单金额不一致"
	case refundFee > o.refundable(): // by subtraction: no overflow
		return nil, v2ErrNotEnough, "申请退款金额超过订单可退金额"
	case len(o.refunds) >= maxRefunds:
		return nil, v2ErrBusiness, "订单退款次数超过50次"
	}
	if !s.notifier.reserve() {
		return nil, v2ErrSystem, "系统繁忙，请稍后再试"
	}
	rf := &refund{
		o: o, outRefundNo: p["out_refund_no"], refundID: st.newRefundID(now), reason: p["refund_desc"],
		notifyURL: p["notify_url"], amount: refundFee, status: wxpay.RefundStatusProcessing,
		outcome: s.drawOutcome(), channel: "ORIGINAL", account: "支付用户零钱", created: now, v2: true,
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
	s.notifier.schedule(&task{due: now.Add(s.cfg.refundDelay()), fn: func() { s.completeRefund(rf) }})
	return rf, "", ""
}

// v2Fields are a refund's fields in the /secapi/pay/refund reply. Caller
// holds the shard.
func (rf *refund) v2Fields() map[string]string {
	o := rf.o
	total, amount := strconv.FormatInt(o.total, 10), strconv.FormatInt(rf.amount, 10)
	return map[string]string{
		"transaction_id": o.txnID, "out_trade_no": o.outTradeNo, "out_refund_no": rf.outRefundNo,
		"refund_id": rf.refundID, "refund_fee": amount, "settlement_refund_fee": amount, "total_fee": total,
		"settlement_total_fee": total, "fee_type": "CNY", "cash_fee": total, "cash_refund_fee": amount,
	}
}

// v2RefundStatus spells a refund status as APIv2 does.
func v2RefundStatus(status string) string {
	switch status {
	case wxpay.RefundStatusClosed:
		return "REFUNDCLOSE"
	case wxpay.RefundStatusAbnormal:
		return "CHANGE"
	}
	return status // SUCCESS, PROCESSING
}

// v2LookupRefund returns the refund p names by refund_id or out_refund_no
// (WeChat's precedence), or nil.
func (s *Server) v2LookupRefund(p map[string]string) *refund {
	st := s.store
	st.idxMu.RLock()
	defer st.idxMu.RUnlock()
	if id := p["refund_id"]; id != "" {
		for _, rf := range st.refunds {
			if rf.refundID == id && rf.o.mchID == s.id.MchID { // immutable fields
				return rf
			}
		}
		return nil
	}
	if no := p["out_refund_no"]; no != "" {
		return st.refunds[orderKey(s.id.MchID, no)]
	}
	return nil
}

// v2RefundQueryPage is how many refunds a refundquery reply lists from
// offset when an order has more (WeChat's page).
const v2RefundQueryPage = 10

// v2RefundQuery serves POST /pay/refundquery by refund_id, out_refund_no,
// transaction_id or out_trade_no (WeChat's precedence): the one refund, or
// the order's refunds from offset, ten at a time.
func (s *Server) v2RefundQuery(p map[string]string, st wxpay.V2SignType, now time.Time) []byte {
	var o *order
	var list []*refund
	byRefund := p["refund_id"] != "" || p["out_refund_no"] != ""
	if byRefund {
		rf := s.v2LookupRefund(p)
		if rf == nil {
			return s.v2RefundFail(p, st, v2ErrRefundNotExist, "退款订单查询失败")
		}
		o = rf.o
		o.sh.mu.Lock()
		list = []*refund{rf}
	} else {
		if p["transaction_id"] == "" && p["out_trade_no"] == "" {
			return s.v2RefundFail(p, st, v2ErrParam, "refund_id、out_refund_no、transaction_id和out_trade_no必须四选一")
		}
		if o = s.v2Order(p); o == nil {
			return s.v2RefundFail(p, st, v2ErrRefundNotExist, "退款订单查询失败")
		}
		list = o.refunds
	}
	defer o.sh.mu.Unlock()
	o.calls.add(ckRefundQuery, now)
	total := len(list)
	if !byRefund {
		off, err := strconv.Atoi(p["offset"])
		if p["offset"] == "" {
			off, err = 0, nil
		}
		if err != nil || off < 0 || off > len(list) {
			return s.v2RefundFail(p, st, v2ErrParam, "offset参数错误")
		}
		list = list[off:min(len(list), off+v2RefundQueryPage)]
	}
	if len(list) == 0 {
		return s.v2RefundFail(p, st, v2ErrRefundNotExist, "退款订单查询失败")
	}
	t := strconv.FormatInt(o.total, 10)
	f := map[string]string{
		"transaction_id": o.txnID, "out_trade_no": o.outTradeNo, "total_fee": t, "cash_fee": t, "fee_type": "CNY",
		"refund_count": strconv.Itoa(len(list)),
	}
	if total > v2RefundQueryPage {
		f["total_refund_count"] = strconv.Itoa(total)
	}
	for n, rf := range list {
		sfx := "_" + strconv.Itoa(n)
		amount := strconv.FormatInt(rf.amount, 10)
		f["out_refund_no"+sfx] = rf.outRefundNo
		f["refund_id"+sfx] = rf.refundID
		f["refund_channel"+sfx] = rf.channel
		f["refund_fee"+sfx] = amount
		f["settlement_refund_fee"+sfx] = amount
		f["refund_status"+sfx] = v2RefundStatus(rf.status)
		f["refund_account"+sfx] = "REFUND_SOURCE_UNSETTLED_FUNDS"
		f["refund_recv_accout"+sfx] = rf.account
		if rf.status == wxpay.RefundStatusSuccess {
			f["refund_success_time"+sfx] = rf.success.In(beijing).Format(wxpay.V2RefundSuccessTimeLayout)
		}
	}
	return s.v2Reply(p, st, "", "", f)
}

// v2RefundNotification builds the APIv2 refund notification of a refund
// made through /secapi/pay/refund, now in a final or ABNORMAL (CHANGE)
// state: no sign, the refund in req_info, encrypted with the key derived
// from the APIv2 key. Caller holds the shard.
func (s *Server) v2RefundNotification(rf *refund, now time.Time) *delivery {
	o := rf.o
	total, amount := strconv.FormatInt(o.total, 10), strconv.FormatInt(rf.amount, 10)
	inner := map[string]string{
		"out_refund_no": rf.outRefundNo, "out_trade_no": o.outTradeNo, "refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS",
		"refund_fee": amount, "refund_id": rf.refundID, "refund_recv_accout": rf.account,
		"refund_request_source": "API", "refund_status": v2RefundStatus(rf.status), "settlement_refund_fee": amount,
		"settlement_total_fee": total, "total_fee": total, "transaction_id": o.txnID,
	}
	if rf.status == wxpay.RefundStatusSuccess {
		inner["success_time"] = rf.success.In(beijing).Format(wxpay.V2RefundSuccessTimeLayout)
	}
	// req_info's document is <root>, not <xml>.
	doc := wxpay.AppendV2XML(nil, inner)
	doc = append([]byte("<root>"), bytes.TrimSuffix(bytes.TrimPrefix(doc, []byte("<xml>")), []byte("</xml>"))...)
	doc = append(doc, "</root>"...)
	reqInfo, err := s.v2.key.EncryptReqInfo(doc)
	if err != nil { // unreachable: the document is small
		panic("sim: encrypt req_info: " + err.Error())
	}
	body := wxpay.AppendV2XML(nil, map[string]string{
		"return_code": "SUCCESS", "appid": o.appID, "mch_id": o.mchID, "nonce_str": wxpay.NewNonce(), "req_info": reqInfo,
	})
	d := &delivery{o: o, url: rf.notifyURL, body: body, fault: faultNone, v2: true}
	return s.withFaults(o, d, "v2r:"+rf.refundID+":"+rf.status, "APIV2.REFUND."+v2RefundStatus(rf.status))
}
