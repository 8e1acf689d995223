package wxpay

import (
	"fmt"
	"strconv"
	"time"
)

// Values of return_code and result_code.
const (
	v2Success = "SUCCESS"
	v2Fail    = "FAIL"
)

// V2TimeLayout is the time.Parse layout of APIv2 times such as time_end,
// time_start and time_expire (yyyyMMddHHmmss, Beijing time, UTC+8).
const V2TimeLayout = "20060102150405"

// V2PayNotification is an APIv2 payment notification (or order query reply)
// decoded from the map ParseV2XML returns. Decoding does not verify the sign:
// call (*V2Key).Verify or VerifyAuto on the same map first. Amounts are in
// fen; optional amounts are 0 when absent.
type V2PayNotification struct {
	ReturnCode         string     // return_code: SUCCESS or FAIL (communication only)
	ReturnMsg          string     // return_msg
	AppID              string     // appid
	MchID              string     // mch_id
	DeviceInfo         string     // device_info
	NonceStr           string     // nonce_str
	SignType           string     // sign_type; empty means MD5
	ResultCode         string     // result_code: SUCCESS or FAIL (the business result)
	ErrCode            string     // err_code
	ErrCodeDes         string     // err_code_des
	OpenID             string     // openid
	IsSubscribe        string     // is_subscribe: Y or N
	TradeType          string     // trade_type, JSAPI for Mini Programs
	BankType           string     // bank_type
	TotalFee           int64      // total_fee: order amount
	SettlementTotalFee int64      // settlement_total_fee
	FeeType            string     // fee_type; empty means CNY
	CashFee            int64      // cash_fee: amount paid in cash
	CashFeeType        string     // cash_fee_type
	CouponFee          int64      // coupon_fee
	CouponCount        int64      // coupon_count
	Coupons            []V2Coupon // coupon_type_$n, coupon_id_$n, coupon_fee_$n for n < CouponCount
	TransactionID      string     // transaction_id: WeChat's order id
	OutTradeNo         string     // out_trade_no: the merchant's order id
	Attach             string     // attach, as sent at unifiedorder
	TimeEnd            string     // time_end, V2TimeLayout in Beijing time
}

// V2Coupon is one coupon or discount applied to a payment.
type V2Coupon struct {
	Type string // coupon_type_$n: CASH or NO_CASH
	ID   string // coupon_id_$n
	Fee  int64  // coupon_fee_$n, fen
}

// v2MaxCoupons bounds coupon_count so a hostile document cannot make
// DecodeV2PayNotification allocate much.
const v2MaxCoupons = 100

// Paid reports whether the notification says the order was paid:
// return_code and result_code are both SUCCESS. The caller must still check
// that TotalFee, OutTradeNo, AppID and MchID match its order.
func (n V2PayNotification) Paid() bool {
	return n.ReturnCode == v2Success && n.ResultCode == v2Success
}

// DecodeV2PayNotification decodes an APIv2 payment notification. return_code
// is required and must be SUCCESS or FAIL. When it is SUCCESS, appid, mch_id,
// nonce_str, result_code (SUCCESS or FAIL) and out_trade_no are required; when
// result_code is SUCCESS too, transaction_id, openid, trade_type, bank_type,
// time_end, total_fee (a positive integer) and cash_fee are required. Amounts
// are decimal integers without sign or leading zeros, and time_end must match
// V2TimeLayout. Missing fields wrap ErrMissingField and bad values
// ErrMalformed, with the field name.
func DecodeV2PayNotification(p map[string]string) (V2PayNotification, error) {
	n := V2PayNotification{
		ReturnCode:    p["return_code"],
		ReturnMsg:     p["return_msg"],
		AppID:         p["appid"],
		MchID:         p["mch_id"],
		DeviceInfo:    p["device_info"],
		NonceStr:      p["nonce_str"],
		SignType:      p["sign_type"],
		ResultCode:    p["result_code"],
		ErrCode:       p["err_code"],
		ErrCodeDes:    p["err_code_des"],
		OpenID:        p["openid"],
		IsSubscribe:   p["is_subscribe"],
		TradeType:     p["trade_type"],
		BankType:      p["bank_type"],
		FeeType:       p["fee_type"],
		CashFeeType:   p["cash_fee_type"],
		TransactionID: p["transaction_id"],
		OutTradeNo:    p["out_trade_no"],
		Attach:        p["attach"],
		TimeEnd:       p["time_end"],
	}
	if err := v2Code("return_code", n.ReturnCode); err != nil {
		return V2PayNotification{}, err
	}
	if n.ReturnCode != v2Success {
		return n, nil
	}
	if err := v2Required(p, "appid", "mch_id", "nonce_str", "out_trade_no"); err != nil {
		return V2PayNotification{}, err
	}
	if err := v2Code("result_code", n.ResultCode); err != nil {
		return V2PayNotification{}, err
	}
	paid := n.ResultCode == v2Success
	if paid {
		if err := v2Required(p, "transaction_id", "openid", "trade_type", "bank_type", "time_end"); err != nil {
			return V2PayNotification{}, err
		}
	}
	var err error
	if n.TotalFee, err = v2Amount(p, "total_fee", paid, true); err != nil {
		return V2PayNotification{}, err
	}
	if n.CashFee, err = v2Amount(p, "cash_fee", paid, false); err != nil {
		return V2PayNotification{}, err
	}
	if n.SettlementTotalFee, err = v2Amount(p, "settlement_total_fee", false, false); err != nil {
		return V2PayNotification{}, err
	}
	if n.CouponFee, err = v2Amount(p, "coupon_fee", false, false); err != nil {
		return V2PayNotification{}, err
	}
	if n.CouponCount, err = v2Amount(p, "coupon_count", false, false); err != nil {
		return V2PayNotification{}, err
	}
	if n.CouponCount > v2MaxCoupons {
		return V2PayNotification{}, fmt.Errorf("%w: coupon_count %d exceeds %d", ErrMalformed, n.CouponCount, v2MaxCoupons)
	}
	if n.Coupons, err = v2Coupons(p, int(n.CouponCount)); err != nil {
		return V2PayNotification{}, err
	}
	if err := v2Time("time_end", n.TimeEnd, V2TimeLayout); err != nil {
		return V2PayNotification{}, err
	}
	return n, nil
}

func v2Coupons(p map[string]string, count int) ([]V2Coupon, error) {
	if count == 0 {
		return nil, nil
	}
	cs := make([]V2Coupon, count)
	for i := range cs {
		idx := strconv.Itoa(i)
		cs[i].Type = p["coupon_type_"+idx]
		cs[i].ID = p["coupon_id_"+idx]
		fee, err := v2Amount(p, "coupon_fee_"+idx, true, false)
		if err != nil {
			return nil, err
		}
		cs[i].Fee = fee
	}
	return cs, nil
}

// v2Code checks a return_code or result_code.
func v2Code(field, v string) error {
	switch v {
	case v2Success, v2Fail:
		return nil
	case "":
		return fmt.Errorf("%w: %s", ErrMissingField, field)
	}
	return fmt.Errorf("%w: %s is %q, want SUCCESS or FAIL", ErrMalformed, field, clip(v))
}

// v2Required returns ErrMissingField naming the first absent or empty field.
func v2Required(p map[string]string, fields ...string) error {
	for _, f := range fields {
		if p[f] == "" {
			return fmt.Errorf("%w: %s", ErrMissingField, f)
		}
	}
	return nil
}

// v2Amount parses an amount in fen: decimal digits, no sign, no leading zero,
// at most 18 digits. An absent or empty field is an ErrMissingField if
// required and 0 otherwise; if positive, 0 is an ErrMalformed.
func v2Amount(p map[string]string, field string, required, positive bool) (int64, error) {
	s := p[field]
	if s == "" {
		if required {
			return 0, fmt.Errorf("%w: %s", ErrMissingField, field)
		}
		return 0, nil
	}
	v, ok := parseFen(s)
	if !ok || positive && v == 0 {
		want := "a non-negative integer"
		if positive {
			want = "a positive integer"
		}
		return 0, fmt.Errorf("%w: %s must be %s", ErrMalformed, field, want)
	}
	return v, nil
}

func parseFen(s string) (int64, bool) {
	if s == "" || len(s) > 18 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// v2Time checks an optional time field against layout.
func v2Time(field, v, layout string) error {
	if v == "" {
		return nil
	}
	if len(v) != len(layout) {
		return fmt.Errorf("%w: %s is not %s", ErrMalformed, field, layout)
	}
	if _, err := time.Parse(layout, v); err != nil {
		return fmt.Errorf("%w: %s is not %s", ErrMalformed, field, layout)
	}
	return nil
}
