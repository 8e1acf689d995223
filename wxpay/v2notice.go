package wxpay

import (
	"fmt"
	"time"
)

// v2Beijing is the zone of APIv2 times (UTC+8, no daylight saving).
var v2Beijing = time.FixedZone("CST", 8*3600)

// Ids of APIv2 notices: WeChat gives APIv2 notifications no id of their
// own, so the payment's or refund's id, which every redelivery repeats,
// stands in.
const (
	v2PaymentIDPrefix = "v2:"
	v2RefundIDPrefix  = "v2r:"
)

// ParseNotice is the APIv2 counterpart of (*NotifyParser).ParseNotice: the
// one path for the XML notifications WeChat posts to the merchant's APIv2
// notify_url (route NoticePayment) and refund notify_url (route
// NoticeRefund). It runs every check and translates the document into the
// order model of the APIv3 notices, so both versions reach the order the
// same way. appID and mchID are the merchant's.
//
// A payment notification is parsed (ParseV2XML), its sign verified with the
// sign type it names (VerifyAuto), and decoded (DecodeV2PayNotification).
// Unless return_code and result_code are both SUCCESS it is a NoticeOther:
// a failed payment carries no money. Otherwise it is a NoticePayment whose
// Payment has trade_state SUCCESS, amount.total = total_fee,
// amount.payer_total = cash_fee, amount.currency = fee_type (CNY when
// absent), success_time = time_end as RFC 3339, and ID "v2:" +
// transaction_id. Its appid and mch_id are left for the order to match, as
// for APIv3.
//
// A refund notification carries no sign: req_info, encrypted with a key
// derived from the APIv2 key, authenticates it. It is parsed and decoded
// (DecodeV2RefundNotification); a return_code FAIL is a NoticeOther.
// Otherwise req_info must decrypt and decode (DecryptReqInfo,
// ErrV2ReqInfo); its appid and mch_id, like a payment's, are left for the
// order to match. The NoticeRefund's Refund has refund_status in APIv3 spelling (CHANGE →
// ABNORMAL, REFUNDCLOSE → CLOSED), amount.total = total_fee, amount.refund =
// refund_fee, success_time as RFC 3339, and ID "v2r:" + refund_id.
//
// The caller bounds the body (see MaxNotificationBody). Errors wrap the
// wxpay sentinel of the failed check; the Notice is then empty.
func (k *V2Key) ParseNotice(route NoticeKind, body []byte) (Notice, error) {
	switch route {
	case NoticePayment:
		return k.paymentNotice(body)
	case NoticeRefund:
		return k.refundNotice(body)
	}
	return Notice{}, fmt.Errorf("%w: APIv2 notifications are payments or refunds, not %s", ErrMalformed, route)
}

func (k *V2Key) paymentNotice(body []byte) (Notice, error) {
	p, err := ParseV2XML(body)
	if err != nil {
		return Notice{}, err
	}
	if err := k.VerifyAuto(p); err != nil {
		return Notice{}, err
	}
	n, err := DecodeV2PayNotification(p)
	if err != nil {
		return Notice{}, err
	}
	if !n.Paid() {
		return Notice{Kind: NoticeOther}, nil
	}
	currency := n.FeeType
	if currency == "" {
		currency = "CNY"
	}
	return Notice{Kind: NoticePayment, ID: v2PaymentIDPrefix + n.TransactionID, Payment: Transaction{
		AppID: n.AppID, MchID: n.MchID, OutTradeNo: n.OutTradeNo, TransactionID: n.TransactionID,
		TradeType: n.TradeType, TradeState: TradeStateSuccess, BankType: n.BankType, Attach: n.Attach,
		SuccessTime: v2RFC3339(n.TimeEnd, V2TimeLayout),
		Payer:       Payer{OpenID: n.OpenID},
		Amount:      TransactionAmount{Total: n.TotalFee, PayerTotal: n.CashFee, Currency: currency},
	}}, nil
}

func (k *V2Key) refundNotice(body []byte) (Notice, error) {
	p, err := ParseV2XML(body)
	if err != nil {
		return Notice{}, err
	}
	outer, err := DecodeV2RefundNotification(p)
	if err != nil {
		return Notice{}, err
	}
	if outer.ReturnCode != v2Success {
		return Notice{Kind: NoticeOther}, nil
	}
	info, err := k.DecryptReqInfo(outer.ReqInfo)
	if err != nil {
		return Notice{}, err
	}
	return Notice{Kind: NoticeRefund, ID: v2RefundIDPrefix + info.RefundID, Refund: RefundNotice{
		AppID: outer.AppID, MchID: outer.MchID, OutTradeNo: info.OutTradeNo, TransactionID: info.TransactionID,
		OutRefundNo: info.OutRefundNo, RefundID: info.RefundID, RefundStatus: v2RefundStatus(info.RefundStatus),
		SuccessTime:         v2RFC3339(info.SuccessTime, V2RefundSuccessTimeLayout),
		UserReceivedAccount: info.RefundRecvAccount,
		Amount:              RefundNoticeAmount{Total: info.TotalFee, Refund: info.RefundFee},
	}}, nil
}

// v2RefundStatus spells an APIv2 refund_status as APIv3 does.
func v2RefundStatus(s string) string {
	switch s {
	case "CHANGE":
		return RefundStatusAbnormal
	case "REFUNDCLOSE":
		return RefundStatusClosed
	}
	return NormalizeRefundStatus(s)
}

// v2RFC3339 rewrites an APIv2 Beijing time in layout as RFC 3339 with
// +08:00, the form of APIv3 times; empty stays empty. The decoders have
// already checked the layout.
func v2RFC3339(s, layout string) string {
	if s == "" {
		return ""
	}
	t, err := time.ParseInLocation(layout, s, v2Beijing)
	if err != nil {
		return ""
	}
	return t.Format(time.RFC3339)
}
