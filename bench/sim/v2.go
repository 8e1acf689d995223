package sim

import (
	"bytes"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
)

// APIv2: POST /pay/unifiedorder (XML) and the XML payment notification of
// orders created through it. Orders share the store with APIv3, so an
// out_trade_no is unique per mchid across both.

type v2State struct {
	key *wxpay.V2Key
}

func newV2State(id *Identity) (*v2State, error) {
	k, err := wxpay.NewV2Key(id.APIv2Key)
	if err != nil {
		return nil, err
	}
	return &v2State{key: k}, nil
}

// v2Order is what an APIv2 order adds to order.
type v2Order struct {
	signType wxpay.V2SignType
}

// v2 return_msg texts and err_code values.
const (
	v2ErrLackParams  = "LACK_PARAMS"
	v2ErrParam       = "PARAM_ERROR"
	v2ErrOrderPaid   = "ORDERPAID"
	v2ErrOrderClosed = "ORDERCLOSED"
	v2ErrUsed        = "OUT_TRADE_NO_USED"
	v2ErrSystem      = "SYSTEMERROR"
	v2ErrAppIDMchID  = "APPID_MCHID_NOT_MATCH"
)

// v2Endpoint is one APIv2 endpoint: its counters, fault point and ledger
// kind, the order a call names (for the ledger when a fault answers before
// run), and run, which processes an authenticated request and returns its
// signed reply. secure endpoints are served only over the TLS listener
// with the merchant's client certificate.
type v2Endpoint struct {
	ep     endpoint
	fp     faultPoint
	ck     callKind
	secure bool
	names  func(s *Server, p map[string]string) string
	run    func(s *Server, p map[string]string, st wxpay.V2SignType, now time.Time) []byte
}

// v2Serve serves an APIv2 request. Faults are drawn once the request's
// sign passed (and, on /secapi/, its client certificate); system_error and
// rate_limited answer as APIv2 does, a signed business failure (err_code
// SYSTEMERROR or FREQUENCY_LIMITED); bad_gateway is a proxy's 502; slow
// and lost apply the request first, as for APIv3.
func (s *Server) v2Serve(ctx *fasthttp.RequestCtx, e *v2Endpoint) {
	s.stats.requests[e.ep].Add(1)
	if e.secure && !s.merchantCertOK(ctx) {
		// UNCONFIRMED: WeChat's wording for a call without the merchant's
		// certificate (its TLS layer asks for one; the API refuses).
		s.v2Write(ctx, s.v2Fail("请使用商户API证书访问此接口", "CERT_REQUIRED"))
		return
	}
	p, st, fail := s.v2Authenticate(ctx)
	if fail != nil {
		s.v2Write(ctx, fail)
		return
	}
	now := s.clock.Now()
	f := s.drawFault(e.fp)
	switch f {
	case afSystemError, afRateLimited, afBadGateway:
		if otn := e.names(s, p); wxpay.ValidOutTradeNo(otn) {
			s.store.recordCall(s.id.MchID, otn, e.ck, now)
		}
		s.latency()
		switch f {
		case afSystemError:
			s.v2WriteRaw(ctx, s.v2Result(p, st, v2ErrSystem, "系统超时", ""))
		case afRateLimited:
			// UNCONFIRMED: unifiedorder's tables list no rate-limit code;
			// FREQUENCY_LIMITED is APIv2 refund's.
			s.v2WriteRaw(ctx, s.v2Result(p, st, "FREQUENCY_LIMITED", "频率超限", ""))
		default:
			writeBadGateway(ctx)
		}
		return
	}
	reply := e.run(s, p, st, now)
	switch f {
	case afSlow:
		s.latency()
		s.slowWait()
		s.v2WriteRaw(ctx, reply)
	case afLost:
		s.latency()
		if s.chance(0.5) {
			s.v2WriteRaw(ctx, s.v2Result(p, st, v2ErrSystem, "系统超时", ""))
			return
		}
		cut(ctx)
	default:
		s.v2Write(ctx, reply)
	}
}

// v2UnifiedOrderEP is POST /pay/unifiedorder.
var v2UnifiedOrderEP = &v2Endpoint{ep: epV2UnifiedOrder, fp: fpPrepay, ck: ckPrepay,
	names: func(_ *Server, p map[string]string) string { return p["out_trade_no"] },
	run:   (*Server).v2Process,
}

// v2Write applies latency and --drop-rate, then writes an APIv2 reply.
func (s *Server) v2Write(ctx *fasthttp.RequestCtx, reply []byte) {
	s.latency()
	if s.chance(s.cfg.DropRate) {
		s.drop(ctx)
		return
	}
	s.v2WriteRaw(ctx, reply)
}

// v2WriteRaw writes an APIv2 reply: HTTP 200 whatever return_code says.
func (s *Server) v2WriteRaw(ctx *fasthttp.RequestCtx, reply []byte) {
	ctx.SetStatusCode(200)
	ctx.SetContentType("text/xml; charset=utf-8")
	ctx.SetBody(reply)
}

// v2NoRoute answers a path that is none of WeChat's: on APIv2's surface the
// failure is APIv2's XML, return_code FAIL (UNCONFIRMED: WeChat's HTTP
// status and text for an unknown APIv2 path; APIv2 failures are HTTP 200).
func (s *Server) v2NoRoute(ctx *fasthttp.RequestCtx) {
	s.v2Write(ctx, s.v2Fail("请求的接口地址不存在", "NO_ROUTE"))
}

// v2Fail is a communication failure: return_code FAIL, unsigned.
func (s *Server) v2Fail(msg, stat string) []byte {
	s.stats.reject("v2 " + stat)
	return wxpay.AppendV2XML(nil, map[string]string{"return_code": "FAIL", "return_msg": msg})
}

// v2Authenticate parses the request and checks mch_id, appid and sign. It
// returns the parameters and sign type, or the failure reply.
func (s *Server) v2Authenticate(ctx *fasthttp.RequestCtx) (map[string]string, wxpay.V2SignType, []byte) {
	if string(ctx.Method()) != fasthttp.MethodPost {
		return nil, "", s.v2Fail("请使用post方法", "REQUIRE_POST_METHOD")
	}
	body := ctx.PostBody()
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, "", s.v2Fail("post数据为空", "POST_DATA_EMPTY")
	}
	p, err := wxpay.ParseV2XML(body)
	if err != nil {
		return nil, "", s.v2Fail("XML格式错误", "XML_FORMAT_ERROR")
	}
	if p["mch_id"] != s.id.MchID {
		return nil, "", s.v2Fail("mch_id参数格式错误", "MCHID_NOT_EXIST")
	}
	if p["appid"] != s.id.AppID {
		return nil, "", s.v2Fail("appid和mch_id不匹配", v2ErrAppIDMchID)
	}
	st := wxpay.V2SignMD5
	if v := p["sign_type"]; v != "" {
		st = wxpay.V2SignType(v)
		if st != wxpay.V2SignMD5 && st != wxpay.V2SignHMACSHA256 {
			return nil, "", s.v2Fail("sign_type参数格式错误", "SIGN_TYPE_ERROR")
		}
	}
	if err := s.v2.key.Verify(p, st); err != nil {
		return nil, "", s.v2Fail("签名错误", "SIGNERROR")
	}
	return p, st, nil
}

// v2Process validates and stores the order; it returns the signed reply.
// It shares APIv3 prepay's rate limit (UNCONFIRMED: the err_code WeChat
// gives unifiedorder over its rate; FREQUENCY_LIMITED is refund's).
func (s *Server) v2Process(p map[string]string, st wxpay.V2SignType, now time.Time) []byte {
	code, desc := s.v2Validate(p, now)
	if code == "" && !s.limiter.allow(s.id.MchID, now) {
		code, desc = "FREQUENCY_LIMITED", "频率超限"
	}
	var prepayID string
	if code == "" {
		prepayID, code, desc = s.v2Create(p, st, now)
	} else if wxpay.ValidOutTradeNo(p["out_trade_no"]) {
		s.store.recordCall(s.id.MchID, p["out_trade_no"], ckPrepay, now)
	}
	if code != "" {
		s.stats.reject("v2 " + code)
	}
	return s.v2Result(p, st, code, desc, prepayID)
}

// v2Result builds the signed reply of a request that passed its sign:
// result_code FAIL with err_code when code is set, else the prepay_id.
func (s *Server) v2Result(p map[string]string, st wxpay.V2SignType, code, desc, prepayID string) []byte {
	if code != "" {
		return s.v2Reply(p, st, code, desc, nil)
	}
	return s.v2Reply(p, st, "", "", map[string]string{"prepay_id": prepayID, "trade_type": "JSAPI"})
}

// v2Reply builds the signed reply of a request that passed its sign, with
// the request's sign type: result_code FAIL with err_code when code is
// set, else SUCCESS with fields.
func (s *Server) v2Reply(p map[string]string, st wxpay.V2SignType, code, desc string, fields map[string]string) []byte {
	out := map[string]string{
		"return_code": "SUCCESS", "return_msg": "OK", "appid": s.id.AppID, "mch_id": s.id.MchID,
		"nonce_str": wxpay.NewNonce(), "result_code": "SUCCESS",
	}
	if p["device_info"] != "" {
		out["device_info"] = p["device_info"]
	}
	if code != "" {
		out["result_code"] = "FAIL"
		out["err_code"] = code
		out["err_code_des"] = desc
	} else {
		for k, v := range fields {
			if v != "" {
				out[k] = v
			}
		}
	}
	sign, err := s.v2.key.Sign(out, st)
	if err != nil {
		return s.v2Fail("系统错误", v2ErrSystem)
	}
	out["sign"] = sign
	return wxpay.AppendV2XML(nil, out)
}

// v2Validate checks unifiedorder's fields; it returns err_code and
// err_code_des, or "".
func (s *Server) v2Validate(p map[string]string, now time.Time) (string, string) {
	for _, f := range []string{"nonce_str", "body", "out_trade_no", "total_fee", "spbill_create_ip", "notify_url", "trade_type"} {
		if p[f] == "" {
			return v2ErrLackParams, "缺少参数" + f
		}
	}
	if p["trade_type"] != "JSAPI" {
		return v2ErrParam, "trade_type只支持JSAPI"
	}
	if p["openid"] == "" {
		return v2ErrLackParams, "trade_type=JSAPI时，openid为必填参数"
	}
	if len(p["nonce_str"]) > 32 || len(p["body"]) > 127 || len(p["attach"]) > 127 ||
		len(p["spbill_create_ip"]) > 64 || len(p["openid"]) > 128 {
		return v2ErrParam, "参数长度超过限制"
	}
	if !wxpay.ValidOutTradeNo(p["out_trade_no"]) {
		return v2ErrParam, "out_trade_no参数格式错误"
	}
	if n, err := strconv.ParseInt(p["total_fee"], 10, 64); err != nil || n <= 0 || p["total_fee"][0] == '+' {
		return v2ErrParam, "total_fee参数格式错误"
	}
	if ft := p["fee_type"]; ft != "" && ft != "CNY" {
		return v2ErrParam, "fee_type只支持CNY"
	}
	if e := checkNotifyURL("/notify_url", p["notify_url"], 256); e != nil {
		return v2ErrParam, "notify_url参数格式错误"
	}
	if te := p["time_expire"]; te != "" {
		if _, err := time.ParseInLocation(wxpay.V2TimeLayout, te, beijing); err != nil {
			return v2ErrParam, "time_expire参数格式错误"
		}
	}
	return "", ""
}

// v2Create stores the order or reuses it for an identical retry.
func (s *Server) v2Create(p map[string]string, st wxpay.V2SignType, now time.Time) (string, string, string) {
	total, _ := strconv.ParseInt(p["total_fee"], 10, 64)
	expire := now.Add(DefaultOrderTTL)
	if te := p["time_expire"]; te != "" {
		t, _ := time.ParseInLocation(wxpay.V2TimeLayout, te, beijing)
		expire = clampTime(t, now.Add(MinOrderTTL), now.Add(MaxOrderTTL))
	}
	o := &order{
		mchID: s.id.MchID, appID: s.id.AppID, outTradeNo: p["out_trade_no"], desc: p["body"],
		attach: p["attach"], notifyURL: p["notify_url"], goodsTag: p["goods_tag"], openID: p["openid"],
		total: total, currency: "CNY", created: now, expire: expire, payerIP: p["spbill_create_ip"],
		v2: &v2Order{signType: st},
	}
	id, e := s.createOrReuse(o, now, func(old *order) bool {
		return old.v2 != nil && old.desc == o.desc && old.attach == o.attach && old.notifyURL == o.notifyURL &&
			old.total == o.total && old.openID == o.openID && old.goodsTag == o.goodsTag
	})
	if e == errOverloaded {
		s.store.recordCall(o.mchID, o.outTradeNo, ckPrepay, now)
	}
	if e == nil {
		if id != "" && o.sh != nil {
			s.stats.v2Orders.Add(1)
		}
		return id, "", ""
	}
	switch e.code {
	case wxpay.CodeOrderClosed:
		return "", v2ErrOrderClosed, "订单已关闭"
	case wxpay.CodeOrderPaid:
		return "", v2ErrOrderPaid, "该订单已支付"
	case wxpay.CodeOutTradeNoUsed:
		return "", v2ErrUsed, "商户订单号重复"
	default:
		return "", v2ErrSystem, "系统超时"
	}
}

// v2PayNotification builds the APIv2 payment notification (signed XML) for
// a paid APIv2 order. Caller holds the shard.
func (s *Server) v2PayNotification(o *order, now time.Time) *delivery {
	total := strconv.FormatInt(o.total, 10)
	p := map[string]string{
		"appid": o.appID, "bank_type": "OTHERS", "cash_fee": total, "fee_type": "CNY", "is_subscribe": "N",
		"mch_id": o.mchID, "nonce_str": wxpay.NewNonce(), "openid": o.openID, "out_trade_no": o.outTradeNo,
		"result_code": "SUCCESS", "return_code": "SUCCESS", "time_end": now.In(beijing).Format(wxpay.V2TimeLayout),
		"total_fee": total, "trade_type": "JSAPI", "transaction_id": o.txnID, "attach": o.attach,
	}
	if o.v2.signType == wxpay.V2SignHMACSHA256 {
		p["sign_type"] = string(wxpay.V2SignHMACSHA256)
	}
	sign, err := s.v2.key.Sign(p, o.v2.signType)
	if err != nil { // unreachable: the sign type was checked at unifiedorder
		panic("sim: sign v2 notification: " + err.Error())
	}
	p["sign"] = sign
	d := &delivery{o: o, url: o.notifyURL, body: wxpay.AppendV2XML(nil, p), fault: faultNone, v2: true}
	return s.withFaults(o, d, o.txnID, "APIV2.PAY")
}

// v2Tamper returns a copy of an APIv2 notification whose sign is wrong, or,
// for a refund notification (which has no sign), whose req_info's first
// block no longer decrypts to the document.
func v2Tamper(body []byte) []byte {
	out := bytes.Clone(body)
	open := "<sign><![CDATA["
	if !bytes.Contains(out, []byte(open)) {
		open = "<req_info><![CDATA["
	}
	if i := bytes.Index(out, []byte(open)); i >= 0 && i+len(open) < len(out) {
		j := i + len(open)
		if out[j] == '0' {
			out[j] = '1'
		} else {
			out[j] = '0'
		}
	}
	return out
}

// v2Acked reports whether an APIv2 notification answer acknowledges it.
func v2Acked(body []byte) bool {
	p, err := wxpay.ParseV2XML(body)
	return err == nil && p["return_code"] == "SUCCESS"
}
