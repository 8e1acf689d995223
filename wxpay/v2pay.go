package wxpay

import (
	"fmt"
	"slices"
	"strconv"
)

// V2UnifiedOrder is an APIv2 unifiedorder request. Field comments give the
// wire name and WeChat's limits; empty optional fields are not sent.
type V2UnifiedOrder struct {
	AppID          string     // appid, required
	MchID          string     // mch_id, required
	DeviceInfo     string     // device_info, optional
	NonceStr       string     // nonce_str, required, at most 32 characters (NewNonce)
	SignType       V2SignType // sign_type, optional; empty means MD5 and must match the key's use
	Body           string     // body, required, at most 127 bytes
	Detail         string     // detail, optional JSON goods detail
	Attach         string     // attach, optional, at most 127 bytes, echoed in the notification
	OutTradeNo     string     // out_trade_no, required, at most 32 of [0-9A-Za-z_-|*]
	FeeType        string     // fee_type, optional; empty means CNY
	TotalFee       int64      // total_fee, required, positive, fen
	SpbillCreateIP string     // spbill_create_ip, required, at most 64 bytes
	TimeStart      string     // time_start, optional, V2TimeLayout
	TimeExpire     string     // time_expire, optional, V2TimeLayout
	GoodsTag       string     // goods_tag, optional
	NotifyURL      string     // notify_url, required, at most 256 bytes
	TradeType      string     // trade_type, required: JSAPI for Mini Programs
	ProductID      string     // product_id, optional (required for NATIVE)
	LimitPay       string     // limit_pay, optional: no_credit
	OpenID         string     // openid, required for JSAPI
	Receipt        string     // receipt, optional: Y
	ProfitSharing  string     // profit_sharing, optional: Y or N
	SceneInfo      string     // scene_info, optional JSON
}

// Params returns the request as a new parameter map for Sign and AppendV2XML,
// without sign. Empty optional fields are left out; total_fee is written in
// decimal. Params does not validate: call Validate first.
func (o V2UnifiedOrder) Params() map[string]string {
	m := make(map[string]string, 24)
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set("appid", o.AppID)
	set("mch_id", o.MchID)
	set("device_info", o.DeviceInfo)
	set("nonce_str", o.NonceStr)
	set("sign_type", string(o.SignType))
	set("body", o.Body)
	set("detail", o.Detail)
	set("attach", o.Attach)
	set("out_trade_no", o.OutTradeNo)
	set("fee_type", o.FeeType)
	m["total_fee"] = strconv.FormatInt(o.TotalFee, 10)
	set("spbill_create_ip", o.SpbillCreateIP)
	set("time_start", o.TimeStart)
	set("time_expire", o.TimeExpire)
	set("goods_tag", o.GoodsTag)
	set("notify_url", o.NotifyURL)
	set("trade_type", o.TradeType)
	set("product_id", o.ProductID)
	set("limit_pay", o.LimitPay)
	set("openid", o.OpenID)
	set("receipt", o.Receipt)
	set("profit_sharing", o.ProfitSharing)
	set("scene_info", o.SceneInfo)
	return m
}

// Validate checks the required fields and WeChat's documented limits.
// Missing fields wrap ErrMissingField and bad values ErrMalformed (or
// ErrV2UnsupportedSignType), with the field name.
func (o V2UnifiedOrder) Validate() error {
	req := []struct{ name, v string }{
		{"appid", o.AppID}, {"mch_id", o.MchID}, {"nonce_str", o.NonceStr},
		{"body", o.Body}, {"out_trade_no", o.OutTradeNo},
		{"spbill_create_ip", o.SpbillCreateIP}, {"notify_url", o.NotifyURL},
		{"trade_type", o.TradeType},
	}
	for _, f := range req {
		if f.v == "" {
			return fmt.Errorf("%w: %s", ErrMissingField, f.name)
		}
	}
	if o.TradeType == "JSAPI" && o.OpenID == "" {
		return fmt.Errorf("%w: openid (required for JSAPI)", ErrMissingField)
	}
	if o.SignType != "" && !o.SignType.valid() {
		return errV2SignType(o.SignType)
	}
	if o.TotalFee <= 0 {
		return fmt.Errorf("%w: total_fee must be a positive integer", ErrMalformed)
	}
	limits := []struct {
		name, v string
		max     int
	}{
		{"nonce_str", o.NonceStr, 32}, {"body", o.Body, 127}, {"attach", o.Attach, 127},
		{"out_trade_no", o.OutTradeNo, 32}, {"spbill_create_ip", o.SpbillCreateIP, 64},
		{"notify_url", o.NotifyURL, 256},
	}
	for _, f := range limits {
		if len(f.v) > f.max {
			return fmt.Errorf("%w: %s longer than %d bytes", ErrMalformed, f.name, f.max)
		}
	}
	for i := 0; i < len(o.OutTradeNo); i++ {
		c := o.OutTradeNo[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' ||
			c == '_' || c == '-' || c == '|' || c == '*') {
			return fmt.Errorf("%w: out_trade_no may only hold [0-9A-Za-z_-|*]", ErrMalformed)
		}
	}
	if err := v2Time("time_start", o.TimeStart, V2TimeLayout); err != nil {
		return err
	}
	return v2Time("time_expire", o.TimeExpire, V2TimeLayout)
}

// V2UnifiedOrderReply is WeChat's reply to unifiedorder, decoded from the map
// ParseV2XML returns. When ReturnCode is SUCCESS the reply is signed: verify
// the same map with (*V2Key).Verify before trusting PrepayID.
type V2UnifiedOrderReply struct {
	ReturnCode string // return_code: SUCCESS or FAIL (communication only)
	ReturnMsg  string // return_msg: reason when ReturnCode is FAIL
	AppID      string // appid
	MchID      string // mch_id
	DeviceInfo string // device_info
	NonceStr   string // nonce_str
	ResultCode string // result_code: SUCCESS or FAIL (the business result)
	ErrCode    string // err_code, e.g. ORDERPAID, OUT_TRADE_NO_USED, SYSTEMERROR
	ErrCodeDes string // err_code_des
	TradeType  string // trade_type
	PrepayID   string // prepay_id, valid for two hours
	CodeURL    string // code_url (NATIVE only)
	MwebURL    string // mweb_url (MWEB only)
}

// OK reports whether return_code and result_code are both SUCCESS, that is,
// PrepayID is usable.
func (r V2UnifiedOrderReply) OK() bool {
	return r.ReturnCode == v2Success && r.ResultCode == v2Success
}

// ParseV2UnifiedOrderReply decodes a unifiedorder reply. return_code is
// required and must be SUCCESS or FAIL. When it is SUCCESS, result_code
// (SUCCESS or FAIL) is required; when both are SUCCESS, prepay_id and
// trade_type are required. A business failure is not an error: check OK and
// ErrCode. Missing fields wrap ErrMissingField and bad values ErrMalformed.
func ParseV2UnifiedOrderReply(p map[string]string) (V2UnifiedOrderReply, error) {
	r := V2UnifiedOrderReply{
		ReturnCode: p["return_code"],
		ReturnMsg:  p["return_msg"],
		AppID:      p["appid"],
		MchID:      p["mch_id"],
		DeviceInfo: p["device_info"],
		NonceStr:   p["nonce_str"],
		ResultCode: p["result_code"],
		ErrCode:    p["err_code"],
		ErrCodeDes: p["err_code_des"],
		TradeType:  p["trade_type"],
		PrepayID:   p["prepay_id"],
		CodeURL:    p["code_url"],
		MwebURL:    p["mweb_url"],
	}
	if err := v2Code("return_code", r.ReturnCode); err != nil {
		return V2UnifiedOrderReply{}, err
	}
	if r.ReturnCode != v2Success {
		return r, nil
	}
	if err := v2Code("result_code", r.ResultCode); err != nil {
		return V2UnifiedOrderReply{}, err
	}
	if r.ResultCode == v2Success {
		if err := v2Required(p, "prepay_id", "trade_type"); err != nil {
			return V2UnifiedOrderReply{}, err
		}
	}
	return r, nil
}

// RequestPayment returns APIv2 wx.requestPayment parameters: paySign is the
// APIv2 signature with t over exactly appId, nonceStr, package
// ("prepay_id=<id>"), signType (t) and timeStamp (decimal seconds), and
// SignType is t. t must be the sign type used at unifiedorder.
func (k *V2Key) RequestPayment(appID, prepayID string, timestamp int64, nonce string, t V2SignType) (PayParams, error) {
	if appID == "" || prepayID == "" || nonce == "" {
		return PayParams{}, fmt.Errorf("%w: appId, prepay_id and nonce are required", ErrMissingField)
	}
	if !t.valid() {
		return PayParams{}, errV2SignType(t)
	}
	ts := strconv.FormatInt(timestamp, 10)
	pkg := PayPackage(prepayID)
	// The five names are already in byte order.
	bp := getBuf()
	b := slices.Grow((*bp)[:0], 128+len(appID)+len(nonce)+len(pkg)+len(ts)+len(k.suffix))
	b = append(b, "appId="...)
	b = append(b, appID...)
	b = append(b, "&nonceStr="...)
	b = append(b, nonce...)
	b = append(b, "&package="...)
	b = append(b, pkg...)
	b = append(b, "&signType="...)
	b = append(b, t...)
	b = append(b, "&timeStamp="...)
	b = append(b, ts...)
	b = append(b, '&')
	b = append(b, k.suffix...)
	var out [v2HMACHexLen]byte
	n := k.digestHex(b, t, &out)
	*bp = b
	putBuf(bp)
	return PayParams{
		AppID: appID, TimeStamp: ts, NonceStr: nonce, Package: pkg,
		SignType: string(t), PaySign: string(out[:n]),
	}, nil
}
