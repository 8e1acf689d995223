package wxpay

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The APIv2 order API in the order model: V2Merchant turns the APIv3
// requests the order actors make (PrepayRequest, RefundRequest, an
// out_trade_no or out_refund_no) into signed APIv2 documents for
// /pay/unifiedorder, /pay/orderquery, /pay/closeorder, /secapi/pay/refund
// and /pay/refundquery, and their replies back into the APIv3 answers
// (PrepayResponse, Transaction, Refund) or the *APIError the same refusal
// would have been (V2APIError). The HTTP part is client.V2Client's.

// V2Merchant is a merchant's APIv2 identity: the appid and mch_id every
// request carries, the APIv2 key that signs requests and verifies replies,
// and the sign type (V2SignMD5 when empty). It also signs wx.requestPayment
// parameters with the same key and type (RequestPayment). A V2Merchant is
// read-only once built and safe for concurrent use.
type V2Merchant struct {
	AppID    string
	MchID    string
	Key      *V2Key
	SignType V2SignType
}

// Validate reports a missing field or an unknown sign type.
func (m *V2Merchant) Validate() error {
	switch {
	case m.AppID == "":
		return fmt.Errorf("%w: APIv2 appid", ErrMissingField)
	case m.MchID == "":
		return fmt.Errorf("%w: APIv2 mch_id", ErrMissingField)
	case m.Key == nil:
		return fmt.Errorf("%w: APIv2 key", ErrMissingField)
	case m.SignType != "" && !m.SignType.valid():
		return errV2SignType(m.SignType)
	}
	return nil
}

func (m *V2Merchant) signType() V2SignType {
	if m.SignType == "" {
		return V2SignMD5
	}
	return m.SignType
}

// RequestPayment returns APIv2 wx.requestPayment parameters signed with
// the merchant's key and sign type (see (*V2Key).RequestPayment). It has
// the signature of (*Signer).RequestPayment, so either signs for the
// ingress.
func (m *V2Merchant) RequestPayment(appID, prepayID string, timestamp int64, nonce string) (PayParams, error) {
	return m.Key.RequestPayment(appID, prepayID, timestamp, nonce, m.signType())
}

// sign completes params with appid, mch_id, nonce_str and (for
// HMAC-SHA256) sign_type, signs them and returns the XML document. An
// absent sign_type means MD5 to WeChat, so MD5 documents leave it out.
func (m *V2Merchant) sign(params map[string]string, nonce string) ([]byte, error) {
	if nonce == "" || len(nonce) > 32 {
		return nil, fmt.Errorf("%w: nonce_str must be 1 to 32 characters", ErrMalformed)
	}
	params["appid"] = m.AppID
	params["mch_id"] = m.MchID
	params["nonce_str"] = nonce
	if t := m.signType(); t != V2SignMD5 {
		params["sign_type"] = string(t)
	}
	sig, err := m.Key.Sign(params, m.signType())
	if err != nil {
		return nil, err
	}
	params["sign"] = sig
	return AppendV2XML(make([]byte, 0, 512), params), nil
}

// UnifiedOrder returns the signed /pay/unifiedorder document for req:
// trade_type JSAPI, body = description (at most 127 bytes), total_fee =
// amount.total in fen, openid = payer.openid, attach, goods_tag,
// notify_url, time_expire = req.TimeExpire (RFC 3339) written as
// yyyyMMddHHmmss in Beijing time, spbill_create_ip =
// scene_info.payer_client_ip when req has one, else clientIP. Only CNY is
// accepted. Invalid input wraps ErrMissingField or ErrMalformed.
func (m *V2Merchant) UnifiedOrder(req *PrepayRequest, clientIP, nonce string) ([]byte, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: nil prepay request", ErrMissingField)
	}
	if c := req.Amount.Currency; c != "" && c != "CNY" {
		return nil, fmt.Errorf("%w: currency %.8q: APIv2 JSAPI takes CNY only", ErrMalformed, c)
	}
	if req.AppID != "" && req.AppID != m.AppID || req.MchID != "" && req.MchID != m.MchID {
		return nil, fmt.Errorf("%w: appid or mchid differs from the merchant's", ErrMalformed)
	}
	ip := clientIP
	if req.SceneInfo != nil && req.SceneInfo.PayerClientIP != "" {
		ip = req.SceneInfo.PayerClientIP
	}
	expire, err := v2TimeOf(req.TimeExpire)
	if err != nil {
		return nil, err
	}
	detail, err := v2Detail(req.Detail)
	if err != nil {
		return nil, err
	}
	o := V2UnifiedOrder{
		AppID: m.AppID, MchID: m.MchID, NonceStr: nonce, Body: req.Description, Attach: req.Attach, Detail: detail,
		OutTradeNo: req.OutTradeNo, TotalFee: req.Amount.Total, SpbillCreateIP: ip, TimeExpire: expire,
		GoodsTag: req.GoodsTag, NotifyURL: req.NotifyURL, TradeType: "JSAPI", OpenID: req.Payer.OpenID,
	}
	if m.signType() != V2SignMD5 {
		o.SignType = m.signType()
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if !ValidOutTradeNo(o.OutTradeNo) {
		return nil, fmt.Errorf("%w: out_trade_no must be 6 to 32 of [0-9A-Za-z_-|*]", ErrMalformed)
	}
	return m.sign(o.Params(), nonce)
}

// v2Detail writes APIv3's order detail as APIv2's detail field: JSON with
// cost_price, invoice_id and goods_detail[] of goods_id, wxpay_goods_id,
// goods_name, quantity and price (fen); "" for none.
func v2Detail(d *Detail) (string, error) {
	if d == nil || d.CostPrice == 0 && d.InvoiceID == "" && len(d.GoodsDetail) == 0 {
		return "", nil
	}
	type good struct {
		GoodsID      string `json:"goods_id"`
		WxpayGoodsID string `json:"wxpay_goods_id,omitempty"`
		GoodsName    string `json:"goods_name,omitempty"`
		Quantity     int64  `json:"quantity"`
		Price        int64  `json:"price"`
	}
	v := struct {
		CostPrice   int64  `json:"cost_price,omitempty"`
		InvoiceID   string `json:"invoice_id,omitempty"`
		GoodsDetail []good `json:"goods_detail,omitempty"`
	}{CostPrice: d.CostPrice, InvoiceID: d.InvoiceID}
	for _, g := range d.GoodsDetail {
		v.GoodsDetail = append(v.GoodsDetail, good{g.MerchantGoodsID, g.WechatpayGoodsID, g.GoodsName, g.Quantity, g.UnitPrice})
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("%w: detail: %w", ErrMalformed, err)
	}
	if len(b) > 6000 { // detail is String(6000)
		return "", fmt.Errorf("%w: detail longer than 6000 bytes", ErrMalformed)
	}
	return string(b), nil
}

// v2TimeOf rewrites an RFC 3339 time as an APIv2 time (V2TimeLayout,
// Beijing time); empty stays empty.
func v2TimeOf(rfc string) (string, error) {
	if rfc == "" {
		return "", nil
	}
	t, err := time.Parse(time.RFC3339, rfc)
	if err != nil {
		return "", fmt.Errorf("%w: time_expire %.40q is not RFC 3339", ErrMalformed, rfc)
	}
	return t.In(v2Beijing).Format(V2TimeLayout), nil
}

// OrderQuery returns the signed /pay/orderquery document for an order.
func (m *V2Merchant) OrderQuery(outTradeNo, nonce string) ([]byte, error) {
	if !ValidOutTradeNo(outTradeNo) {
		return nil, fmt.Errorf("%w: out_trade_no %.40q", ErrMalformed, outTradeNo)
	}
	return m.sign(map[string]string{"out_trade_no": outTradeNo}, nonce)
}

// CloseOrder returns the signed /pay/closeorder document for an order.
func (m *V2Merchant) CloseOrder(outTradeNo, nonce string) ([]byte, error) {
	return m.OrderQuery(outTradeNo, nonce) // the same fields
}

// Refund returns the signed /secapi/pay/refund document for req:
// transaction_id or out_trade_no, out_refund_no, total_fee =
// amount.total, refund_fee = amount.refund, refund_desc = reason (at most
// 80 bytes) and notify_url (WeChat then notifies the refund there, not at
// the merchant platform's refund URL). Only CNY is accepted.
func (m *V2Merchant) Refund(req *RefundRequest, nonce string) ([]byte, error) {
	switch {
	case req == nil:
		return nil, fmt.Errorf("%w: nil refund request", ErrMissingField)
	case !ValidOutRefundNo(req.OutRefundNo):
		return nil, fmt.Errorf("%w: out_refund_no %.70q", ErrMalformed, req.OutRefundNo)
	case req.TransactionID == "" && req.OutTradeNo == "":
		return nil, fmt.Errorf("%w: transaction_id or out_trade_no", ErrMissingField)
	case req.OutTradeNo != "" && !ValidOutTradeNo(req.OutTradeNo):
		return nil, fmt.Errorf("%w: out_trade_no %.40q", ErrMalformed, req.OutTradeNo)
	case req.Amount.Refund <= 0 || req.Amount.Total <= 0 || req.Amount.Refund > req.Amount.Total:
		return nil, fmt.Errorf("%w: amount must satisfy 0 < refund <= total", ErrMalformed)
	case req.Amount.Currency != "" && req.Amount.Currency != "CNY":
		return nil, fmt.Errorf("%w: currency %.8q: APIv2 refunds take CNY only", ErrMalformed, req.Amount.Currency)
	case len(req.Reason) > 80:
		return nil, fmt.Errorf("%w: reason longer than 80 bytes", ErrMalformed)
	case len(req.NotifyURL) > 256:
		return nil, fmt.Errorf("%w: notify_url longer than 256 bytes", ErrMalformed)
	}
	p := map[string]string{
		"out_refund_no": req.OutRefundNo,
		"total_fee":     strconv.FormatInt(req.Amount.Total, 10),
		"refund_fee":    strconv.FormatInt(req.Amount.Refund, 10),
	}
	set := func(k, v string) {
		if v != "" {
			p[k] = v
		}
	}
	set("transaction_id", req.TransactionID)
	set("out_trade_no", req.OutTradeNo)
	set("refund_desc", req.Reason)
	set("notify_url", req.NotifyURL)
	return m.sign(p, nonce)
}

// RefundQuery returns the signed /pay/refundquery document for a refund,
// asked for by its out_refund_no.
func (m *V2Merchant) RefundQuery(outRefundNo, nonce string) ([]byte, error) {
	if !ValidOutRefundNo(outRefundNo) {
		return nil, fmt.Errorf("%w: out_refund_no %.70q", ErrMalformed, outRefundNo)
	}
	return m.sign(map[string]string{"out_refund_no": outRefundNo}, nonce)
}

// Reply checks an APIv2 reply and returns its parameters. In order: the
// document must parse (ErrMalformed); a return_code FAIL is refused with
// V2ReturnError (such replies are not signed); the sign must verify with
// the merchant's key (ErrV2MissingSign, ErrV2BadSign: do not trust
// anything in it, not even a refusal); appid and mch_id, when present,
// must be the merchant's (ErrMalformed); a result_code FAIL is the
// business refusal V2APIError translates. Only then are the parameters,
// a new map owned by the caller, returned.
func (m *V2Merchant) Reply(body []byte) (map[string]string, error) {
	p, err := ParseV2XML(body)
	if err != nil {
		return nil, err
	}
	if err := v2Code("return_code", p["return_code"]); err != nil {
		return nil, err
	}
	if p["return_code"] != v2Success {
		return nil, V2ReturnError(p["return_msg"])
	}
	if err := m.Key.VerifyAuto(p); err != nil {
		return nil, err
	}
	if a := p["appid"]; a != "" && a != m.AppID {
		return nil, fmt.Errorf("%w: reply for appid %.32q", ErrMalformed, a)
	}
	if id := p["mch_id"]; id != "" && id != m.MchID {
		return nil, fmt.Errorf("%w: reply for mch_id %.32q", ErrMalformed, id)
	}
	if err := v2Code("result_code", p["result_code"]); err != nil {
		return nil, err
	}
	if p["result_code"] != v2Success {
		return nil, V2APIError(p["err_code"], p["err_code_des"])
	}
	return p, nil
}

// DecodeV2Prepay decodes the prepay_id of a unifiedorder reply that Reply
// accepted.
func DecodeV2Prepay(p map[string]string) (PrepayResponse, error) {
	r, err := ParseV2UnifiedOrderReply(p)
	if err != nil {
		return PrepayResponse{}, err
	}
	if !r.OK() {
		return PrepayResponse{}, V2APIError(r.ErrCode, r.ErrCodeDes)
	}
	return PrepayResponse{PrepayID: r.PrepayID}, nil
}

// DecodeV2OrderQuery translates an orderquery reply that Reply accepted
// into the APIv3 transaction: the same trade_state names, amount.total =
// total_fee, amount.payer_total = cash_fee, amount.currency = fee_type
// (CNY when absent), success_time = time_end as RFC 3339, payer.openid =
// openid. out_trade_no and trade_state are required, and a SUCCESS or
// REFUND state needs transaction_id and a positive total_fee (ErrMissingField,
// ErrMalformed).
func DecodeV2OrderQuery(p map[string]string) (Transaction, error) {
	if err := v2Required(p, "out_trade_no", "trade_state"); err != nil {
		return Transaction{}, err
	}
	t := Transaction{
		AppID: p["appid"], MchID: p["mch_id"], OutTradeNo: p["out_trade_no"], TransactionID: p["transaction_id"],
		TradeType: p["trade_type"], TradeState: p["trade_state"], TradeStateDesc: p["trade_state_desc"],
		BankType: p["bank_type"], Attach: p["attach"], Payer: Payer{OpenID: p["openid"]},
	}
	paid := t.TradeState == TradeStateSuccess || t.TradeState == TradeStateRefund
	if paid && t.TransactionID == "" {
		return Transaction{}, fmt.Errorf("%w: transaction_id", ErrMissingField)
	}
	var err error
	if t.Amount.Total, err = v2Amount(p, "total_fee", paid, paid); err != nil {
		return Transaction{}, err
	}
	if t.Amount.PayerTotal, err = v2Amount(p, "cash_fee", false, false); err != nil {
		return Transaction{}, err
	}
	t.Amount.Currency = p["fee_type"]
	if t.Amount.Currency == "" {
		t.Amount.Currency = "CNY"
	}
	t.Amount.PayerCurrency = t.Amount.Currency
	if err := v2Time("time_end", p["time_end"], V2TimeLayout); err != nil {
		return Transaction{}, err
	}
	t.SuccessTime = v2RFC3339(p["time_end"], V2TimeLayout)
	return t, nil
}

// DecodeV2Refund translates a /secapi/pay/refund reply that Reply accepted
// into the APIv3 refund answer. The reply means WeChat accepted the
// refund: Status is PROCESSING (its outcome comes by notification or
// refund query). out_refund_no and refund_id are required, refund_fee and
// total_fee are positive integers.
func DecodeV2Refund(p map[string]string) (Refund, error) {
	if err := v2Required(p, "out_refund_no", "refund_id"); err != nil {
		return Refund{}, err
	}
	r := Refund{
		RefundID: p["refund_id"], OutRefundNo: p["out_refund_no"], TransactionID: p["transaction_id"],
		OutTradeNo: p["out_trade_no"], Status: RefundStatusProcessing,
	}
	var err error
	if r.Amount.Refund, err = v2Amount(p, "refund_fee", true, true); err != nil {
		return Refund{}, err
	}
	if r.Amount.Total, err = v2Amount(p, "total_fee", true, true); err != nil {
		return Refund{}, err
	}
	if r.Amount.PayerTotal, err = v2Amount(p, "cash_fee", false, false); err != nil {
		return Refund{}, err
	}
	if r.Amount.PayerRefund, err = v2Amount(p, "cash_refund_fee", false, false); err != nil {
		return Refund{}, err
	}
	if r.Amount.SettlementRefund, err = v2Amount(p, "settlement_refund_fee", false, false); err != nil {
		return Refund{}, err
	}
	if r.Amount.SettlementTotal, err = v2Amount(p, "settlement_total_fee", false, false); err != nil {
		return Refund{}, err
	}
	r.Amount.Currency = p["fee_type"]
	if r.Amount.Currency == "" {
		r.Amount.Currency = "CNY"
	}
	return r, nil
}

// v2MaxRefundCount bounds the refunds a refundquery reply may list (WeChat
// pages at 10; an order has at most 50).
const v2MaxRefundCount = 50

// DecodeV2RefundQuery translates a refundquery reply that Reply accepted
// into the APIv3 refund answer for outRefundNo: the reply lists refund_count
// refunds as out_refund_no_$n, refund_id_$n, refund_status_$n,
// refund_fee_$n, refund_success_time_$n and refund_recv_accout_$n (sic),
// and the one whose out_refund_no_$n is outRefundNo is taken. Its status
// is spelled as APIv3 does (CHANGE → ABNORMAL, REFUNDCLOSE → CLOSED;
// SUCCESS and PROCESSING as they are) and its success time becomes RFC
// 3339. A reply without that refund is an ErrMalformed.
func DecodeV2RefundQuery(p map[string]string, outRefundNo string) (Refund, error) {
	count, err := v2Amount(p, "refund_count", true, true)
	if err != nil {
		return Refund{}, err
	}
	if count > v2MaxRefundCount {
		return Refund{}, fmt.Errorf("%w: refund_count %d exceeds %d", ErrMalformed, count, v2MaxRefundCount)
	}
	for n := range int(count) {
		sfx := "_" + strconv.Itoa(n)
		if p["out_refund_no"+sfx] != outRefundNo {
			continue
		}
		if err := v2Required(p, "refund_id"+sfx, "refund_status"+sfx); err != nil {
			return Refund{}, err
		}
		r := Refund{
			RefundID: p["refund_id"+sfx], OutRefundNo: outRefundNo, TransactionID: p["transaction_id"],
			OutTradeNo: p["out_trade_no"], Channel: p["refund_channel"+sfx],
			UserReceivedAccount: p["refund_recv_accout"+sfx], Status: v2RefundStatus(p["refund_status"+sfx]),
		}
		switch r.Status {
		case RefundStatusSuccess, RefundStatusProcessing, RefundStatusClosed, RefundStatusAbnormal:
		default:
			return Refund{}, fmt.Errorf("%w: refund_status%s %.20q", ErrMalformed, sfx, p["refund_status"+sfx])
		}
		if r.Amount.Refund, err = v2Amount(p, "refund_fee"+sfx, true, true); err != nil {
			return Refund{}, err
		}
		if r.Amount.Total, err = v2Amount(p, "total_fee", false, false); err != nil {
			return Refund{}, err
		}
		if r.Amount.SettlementRefund, err = v2Amount(p, "settlement_refund_fee"+sfx, false, false); err != nil {
			return Refund{}, err
		}
		st := p["refund_success_time"+sfx]
		if err := v2Time("refund_success_time"+sfx, st, V2RefundSuccessTimeLayout); err != nil {
			return Refund{}, err
		}
		r.SuccessTime = v2RFC3339(st, V2RefundSuccessTimeLayout)
		r.Amount.Currency = "CNY"
		return r, nil
	}
	return Refund{}, fmt.Errorf("%w: refundquery reply does not list out_refund_no %.70q", ErrMalformed,
		strings.ToValidUTF8(outRefundNo, "?"))
}
