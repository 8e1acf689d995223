package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/maphash"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
)

const (
	pathQueryPrefix     = "/v3/pay/transactions/out-trade-no/"
	pathQueryByIDPrefix = "/v3/pay/transactions/id/"
	numShards           = 64
)

// Lock order: a shard's mu, then store.idxMu. Orders, their refunds and their
// delivery records are guarded by their shard's mu.

// store holds orders in memory, bounded by max.
type store struct {
	seed   maphash.Seed
	shards [numShards]shard
	count  atomic.Int64
	max    int64

	idxMu    sync.RWMutex
	byPrepay map[string]*order  // prepay_id -> order
	byTxn    map[string]*order  // transaction_id -> order
	refunds  map[string]*refund // mchid + "/" + out_refund_no -> refund

	ghostCount atomic.Int64  // entries in the shards' ghosts, at most max
	seq        atomic.Uint64 // makes prepay, transaction and refund ids unique
}

type shard struct {
	mu     sync.Mutex
	orders map[string]*order   // mchid + "/" + out_trade_no
	ghosts map[string]*callLog // calls for an out_trade_no with no order (see ledger.go)
}

func newStore(max int) *store {
	st := &store{
		seed: maphash.MakeSeed(), max: int64(max),
		byPrepay: map[string]*order{}, byTxn: map[string]*order{}, refunds: map[string]*refund{},
	}
	for i := range st.shards {
		st.shards[i].orders = map[string]*order{}
		st.shards[i].ghosts = map[string]*callLog{}
	}
	return st
}

func (st *store) len() int { return int(st.count.Load()) }

func orderKey(mchID, outTradeNo string) string { return mchID + "/" + outTradeNo }

func (st *store) shardOf(key string) *shard {
	return &st.shards[maphash.String(st.seed, key)%numShards]
}

// order is one transaction. Fields after the first block change only under
// its shard's mu.
type order struct {
	sh         *shard
	mchID      string
	appID      string
	outTradeNo string
	desc       string
	attach     string
	notifyURL  string
	goodsTag   string
	openID     string
	payerIP    string // the first prepay's scene_info.payer_client_ip (APIv2: spbill_create_ip)
	total      int64
	currency   string
	created    time.Time
	expire     time.Time // time_expire: unpaid after it, the order is closed
	v2         *v2Order  // set for orders created through /pay/unifiedorder

	prepayID     string
	prepayExpire time.Time
	state        string // wxpay.TradeState*
	closedBy     string // "merchant" or "expired"
	txnID        string
	successTime  time.Time
	refunded     int64 // sum of SUCCESS refunds
	refunding    int64 // sum of PROCESSING and ABNORMAL refunds: not refundable again
	refunds      []*refund
	deliveries   []*DeliveryRecord
	calls        callLog
}

// refundable is what may still be refunded: the total less refunds that
// succeeded or are in flight. refunded+refunding never exceeds total, so
// nothing here overflows.
func (o *order) refundable() int64 { return o.total - o.refunded - o.refunding }

// expireIfDue closes an unpaid order past time_expire. UNCONFIRMED: WeChat
// documents that an unpaid order cannot be paid after time_expire; that its
// query then reports CLOSED is this simulator's choice.
func (o *order) expireIfDue(now time.Time, st *stats) {
	if o.state == wxpay.TradeStateNotPay && !now.Before(o.expire) {
		o.state = wxpay.TradeStateClosed
		o.closedBy = "expired"
		st.expired.Add(1)
	}
}

// prepayBody is the JSON of POST /v3/pay/transactions/jsapi.
type prepayBody struct {
	AppID       string `json:"appid"`
	MchID       string `json:"mchid"`
	Description string `json:"description"`
	OutTradeNo  string `json:"out_trade_no"`
	TimeExpire  string `json:"time_expire"`
	Attach      string `json:"attach"`
	NotifyURL   string `json:"notify_url"`
	GoodsTag    string `json:"goods_tag"`
	Amount      struct {
		Total    int64  `json:"total"`
		Currency string `json:"currency"`
	} `json:"amount"`
	Payer struct {
		OpenID string `json:"openid"`
	} `json:"payer"`
	SceneInfo *struct {
		PayerClientIP string `json:"payer_client_ip"`
	} `json:"scene_info"`
	Detail *struct {
		GoodsDetail []struct {
			MerchantGoodsID string `json:"merchant_goods_id"`
			Quantity        int64  `json:"quantity"`
			UnitPrice       int64  `json:"unit_price"`
		} `json:"goods_detail"`
	} `json:"detail"`
}

// decodeBody decodes a JSON request body, mapping syntax and type errors to
// PARAM_ERROR with a field pointer.
func decodeBody(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		return paramError("/", "", "请求体不能为空")
	}
	if !utf8.Valid(body) {
		return paramError("/", "", "请求体不是合法的UTF-8")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return paramError("/"+strings.ReplaceAll(te.Field, ".", "/"), te.Value, "类型错误，应为"+te.Type.String())
		}
		return paramError("/", "", "请求体不是合法的JSON")
	}
	return nil
}

// checkNotifyURL applies WeChat's notify_url rules: an absolute http(s) URL
// with a host and no query string. (WeChat requires https; the simulator
// accepts http so a local merchant can be reached.)
func checkNotifyURL(field, u string, max int) *apiError {
	if u == "" {
		return paramError(field, u, "必填")
	}
	if len(u) > max {
		return paramError(field, u, "长度不能超过"+strconv.Itoa(max))
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.Opaque != "" {
		return paramError(field, u, "必须是以http://或https://开头的绝对地址")
	}
	if p.RawQuery != "" || strings.Contains(u, "?") || p.Fragment != "" {
		return paramError(field, u, "不能携带查询参数")
	}
	return nil
}

func checkLen(field, v string, max int, required bool) *apiError {
	if v == "" && required {
		return paramError(field, v, "必填")
	}
	if len(v) > max {
		return paramError(field, v, "长度不能超过"+strconv.Itoa(max)+"字节")
	}
	return nil
}

// validatePrepay checks the fields and limits of §3 of the protocol notes.
func (s *Server) validatePrepay(b *prepayBody, mchID string, now time.Time) (time.Time, *apiError) {
	if e := checkLen("/appid", b.AppID, 32, true); e != nil {
		return time.Time{}, e
	}
	if e := checkLen("/mchid", b.MchID, 32, true); e != nil {
		return time.Time{}, e
	}
	if e := checkLen("/description", b.Description, 127, true); e != nil {
		return time.Time{}, e
	}
	if b.OutTradeNo == "" {
		return time.Time{}, paramError("/out_trade_no", b.OutTradeNo, "必填")
	}
	if !wxpay.ValidOutTradeNo(b.OutTradeNo) {
		return time.Time{}, paramError("/out_trade_no", b.OutTradeNo, "长度须为6到32个字符，只能是数字、大小写字母_-|*")
	}
	if e := checkLen("/attach", b.Attach, 128, false); e != nil {
		return time.Time{}, e
	}
	if e := checkNotifyURL("/notify_url", b.NotifyURL, 255); e != nil {
		return time.Time{}, e
	}
	if e := checkLen("/goods_tag", b.GoodsTag, 32, false); e != nil {
		return time.Time{}, e
	}
	if b.Amount.Total <= 0 {
		return time.Time{}, paramError("/amount/total", b.Amount.Total, "必须大于0")
	}
	if b.Amount.Currency != "" && b.Amount.Currency != "CNY" {
		return time.Time{}, paramError("/amount/currency", b.Amount.Currency, "只支持CNY")
	}
	if b.Payer.OpenID == "" {
		return time.Time{}, paramError("/payer/openid", "", "必填")
	}
	if e := checkLen("/payer/openid", b.Payer.OpenID, 128, true); e != nil {
		return time.Time{}, e
	}
	if b.SceneInfo != nil && b.SceneInfo.PayerClientIP == "" {
		return time.Time{}, paramError("/scene_info/payer_client_ip", "", "必填")
	}
	if b.Detail != nil {
		for i, g := range b.Detail.GoodsDetail {
			f := "/detail/goods_detail/" + strconv.Itoa(i)
			if g.MerchantGoodsID == "" {
				return time.Time{}, paramError(f+"/merchant_goods_id", "", "必填")
			}
			if g.Quantity <= 0 {
				return time.Time{}, paramError(f+"/quantity", g.Quantity, "必须大于0")
			}
		}
	}
	if b.MchID != mchID {
		// UNCONFIRMED: WeChat's code when the body's mchid differs from the
		// Authorization's.
		return time.Time{}, paramError("/mchid", b.MchID, "与Http头Authorization中的mchid不一致")
	}
	if b.AppID != s.id.AppID {
		return time.Time{}, newErr(400, wxpay.CodeAppIDMchIDMismatch, "appid和mch_id不匹配")
	}
	expire := now.Add(DefaultOrderTTL)
	if b.TimeExpire != "" {
		// WeChat's format is yyyy-MM-DDTHH:mm:ss+TIMEZONE: fractional seconds
		// (which Go's time.Time marshals when present) are refused
		// (UNCONFIRMED: WeChat's exact check is not documented).
		t, err := time.Parse(time.RFC3339, b.TimeExpire)
		if err != nil || strings.Contains(b.TimeExpire, ".") {
			return time.Time{}, paramError("/time_expire", b.TimeExpire, "须为RFC3339格式，如2018-06-08T10:34:56+08:00")
		}
		// Clamped to [now+1m, now+90d] as WeChat does.
		expire = clampTime(t, now.Add(MinOrderTTL), now.Add(MaxOrderTTL))
	}
	return expire, nil
}

// sameParams reports whether a repeated prepay carries the original
// parameters (time_expire is settable only on the first request and is not
// compared).
func (o *order) sameParams(b *prepayBody) bool {
	cur := b.Amount.Currency
	if cur == "" {
		cur = "CNY"
	}
	return o.appID == b.AppID && o.desc == b.Description && o.attach == b.Attach &&
		o.notifyURL == b.NotifyURL && o.goodsTag == b.GoodsTag && o.total == b.Amount.Total &&
		o.currency == cur && o.openID == b.Payer.OpenID && o.v2 == nil
}

// prepay serves POST /v3/pay/transactions/jsapi.
func (s *Server) prepay(r *v3req) (int, []byte, *apiError) {
	var b prepayBody
	if e := decodeBody(r.body, &b); e != nil {
		if !s.limiter.allow(r.mchID, r.now) {
			return 0, nil, errRateLimited
		}
		return 0, nil, e
	}
	// The call counts on the order's ledger when it names a valid order.
	named := b.MchID == r.mchID && wxpay.ValidOutTradeNo(b.OutTradeNo)
	refuse := func(e *apiError) (int, []byte, *apiError) {
		if named {
			s.store.recordCall(r.mchID, b.OutTradeNo, ckPrepay, r.now)
		}
		return 0, nil, e
	}
	if !s.limiter.allow(r.mchID, r.now) {
		return refuse(errRateLimited)
	}
	expire, e := s.validatePrepay(&b, r.mchID, r.now)
	if e != nil {
		return refuse(e)
	}
	cur := b.Amount.Currency
	if cur == "" {
		cur = "CNY"
	}
	o := &order{
		mchID: b.MchID, appID: b.AppID, outTradeNo: b.OutTradeNo, desc: b.Description, attach: b.Attach,
		notifyURL: b.NotifyURL, goodsTag: b.GoodsTag, openID: b.Payer.OpenID, total: b.Amount.Total,
		currency: cur, created: r.now, expire: expire,
	}
	if b.SceneInfo != nil {
		o.payerIP = b.SceneInfo.PayerClientIP
	}
	prepayID, e := s.createOrReuse(o, r.now, func(old *order) bool { return old.sameParams(&b) })
	if e == errOverloaded {
		return refuse(e)
	}
	if e != nil {
		return 0, nil, e
	}
	out := make([]byte, 0, 64)
	out = append(out, `{"prepay_id":`...)
	out = appendJSONString(out, prepayID)
	return 200, append(out, '}'), nil
}

// createOrReuse stores a new order o, or, if its out_trade_no exists, returns
// the existing order's prepay_id when same(existing) holds (renewing an
// expired prepay_id), and the matching error otherwise. The call is counted
// on the order's ledger, except when the store is full (errOverloaded: the
// caller records it).
func (s *Server) createOrReuse(o *order, now time.Time, same func(*order) bool) (string, *apiError) {
	st := s.store
	key := orderKey(o.mchID, o.outTradeNo)
	sh := st.shardOf(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.orders[key]; ok {
		old.calls.add(ckPrepay, now)
		old.expireIfDue(now, &s.stats)
		switch {
		case old.state == wxpay.TradeStateClosed:
			return "", newErr(400, wxpay.CodeOrderClosed, "订单已关闭")
		case old.state != wxpay.TradeStateNotPay:
			// UNCONFIRMED: APIv3's prepay tables do not list a code for a
			// paid out_trade_no; ORDERPAID is APIv2's (see doc.go).
			return "", newErr(400, wxpay.CodeOrderPaid, "该订单已支付")
		case !same(old):
			return "", newErr(403, wxpay.CodeOutTradeNoUsed, "商户订单号重复")
		}
		if !now.Before(old.prepayExpire) {
			// The old prepay_id stays indexed so paying it reports PREPAY_EXPIRED.
			st.idxMu.Lock()
			old.prepayID, old.prepayExpire = st.newPrepayID(now), now.Add(DefaultPrepayTTL)
			st.byPrepay[old.prepayID] = old
			st.idxMu.Unlock()
		}
		return old.prepayID, nil
	}
	if st.count.Add(1) > st.max {
		st.count.Add(-1)
		return "", errOverloaded
	}
	o.sh = sh
	st.adoptGhost(sh, key, o)
	o.calls.add(ckPrepay, now)
	o.state = wxpay.TradeStateNotPay
	o.prepayID, o.prepayExpire = st.newPrepayID(now), now.Add(DefaultPrepayTTL)
	sh.orders[key] = o
	st.idxMu.Lock()
	st.byPrepay[o.prepayID] = o
	st.idxMu.Unlock()
	s.stats.orders.Add(1)
	return o.prepayID, nil
}

// newPrepayID returns wx + yyyyMMddHHmmss + 20 hex digits (36 characters, as
// WeChat's).
func (st *store) newPrepayID(now time.Time) string {
	b := make([]byte, 0, 36)
	b = append(b, "wx"...)
	b = now.In(beijing).AppendFormat(b, "20060102150405")
	return string(appendHex(b, st.seq.Add(1)^uint64(now.UnixNano())<<20, 20))
}

// newTransactionID returns a 28-digit id like WeChat's 4200...: 4200 +
// yyyyMMdd + 16 digits.
func (st *store) newTransactionID(now time.Time) string {
	b := make([]byte, 0, 28)
	b = append(b, "4200"...)
	b = now.In(beijing).AppendFormat(b, "20060102")
	return string(appendDigits(b, st.seq.Add(1), 16))
}

// newRefundID returns a 29-digit id like WeChat's 5030...
func (st *store) newRefundID(now time.Time) string {
	b := make([]byte, 0, 29)
	b = append(b, "50300"...)
	b = now.In(beijing).AppendFormat(b, "20060102")
	return string(appendDigits(b, st.seq.Add(1), 16))
}

func appendHex(b []byte, v uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		if i < 16 {
			b = append(b, hexDigits[(v>>(4*uint(i)))&0xf])
		} else {
			b = append(b, '0')
		}
	}
	return b
}

func appendDigits(b []byte, v uint64, n int) []byte {
	s := strconv.FormatUint(v, 10)
	for i := len(s); i < n; i++ {
		b = append(b, '0')
	}
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return append(b, s...)
}

// lookup returns the order for key with its shard locked; the caller
// unlocks. nil when absent (shard unlocked).
func (st *store) lookup(mchID, outTradeNo string) *order {
	key := orderKey(mchID, outTradeNo)
	sh := st.shardOf(key)
	sh.mu.Lock()
	o := sh.orders[key]
	if o == nil {
		sh.mu.Unlock()
	}
	return o
}

// pathParam returns the path segment after prefix (and before suffix).
func pathParam(ctx *fasthttp.RequestCtx, prefix, suffix string) string {
	p := string(ctx.Path())
	p = strings.TrimPrefix(p, prefix)
	return strings.TrimSuffix(p, suffix)
}

// query serves GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=.
func (s *Server) query(r *v3req) (int, []byte, *apiError) {
	otn := pathParam(r.ctx, pathQueryPrefix, "")
	mchID := string(r.ctx.QueryArgs().Peek("mchid"))
	if e := s.checkPathAndMchID(otn, mchID, r.mchID, "query"); e != nil {
		return 0, nil, e
	}
	o := s.store.lookup(mchID, otn)
	if o == nil {
		s.store.recordCall(mchID, otn, ckQuery, r.now)
		return 0, nil, errNotFound
	}
	o.calls.add(ckQuery, r.now)
	o.expireIfDue(r.now, &s.stats)
	body := o.transactionJSON(make([]byte, 0, 512))
	o.sh.mu.Unlock()
	return 200, body, nil
}

// queryByID serves GET /v3/pay/transactions/id/{transaction_id}?mchid=
// (paid orders only: an unpaid order has no transaction_id).
func (s *Server) queryByID(r *v3req) (int, []byte, *apiError) {
	txn := pathParam(r.ctx, pathQueryByIDPrefix, "")
	mchID := string(r.ctx.QueryArgs().Peek("mchid"))
	if e := s.checkPathAndMchID("TXNID0", mchID, r.mchID, "query"); e != nil {
		return 0, nil, e
	}
	if txn == "" || len(txn) > 32 || !allDigits(txn) {
		e := paramError("/transaction_id", txn, "须为32位以内的数字")
		e.detail.Location = "path"
		return 0, nil, e
	}
	st := s.store
	st.idxMu.RLock()
	t := st.byTxn[txn]
	st.idxMu.RUnlock()
	if t == nil || t.mchID != mchID {
		return 0, nil, errNotFound
	}
	o := st.lookup(t.mchID, t.outTradeNo)
	if o == nil {
		return 0, nil, errNotFound
	}
	o.calls.add(ckQuery, r.now)
	body := o.transactionJSON(make([]byte, 0, 512))
	o.sh.mu.Unlock()
	return 200, body, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkPathAndMchID validates an out_trade_no path parameter and the mchid
// (query parameter or body field) against the Authorization's.
func (s *Server) checkPathAndMchID(otn, mchID, authMchID, where string) *apiError {
	if !wxpay.ValidOutTradeNo(otn) {
		e := paramError("/out_trade_no", otn, "长度须为6到32个字符，只能是数字、大小写字母_-|*")
		e.detail.Location = "path"
		return e
	}
	if mchID == "" {
		e := paramError("/mchid", "", "必填")
		if where == "query" {
			e.detail.Location = "query"
		}
		return e
	}
	if mchID != authMchID {
		e := paramError("/mchid", mchID, "与Http头Authorization中的mchid不一致")
		if where == "query" {
			e.detail.Location = "query"
		}
		return e
	}
	return nil
}

var tradeStateDesc = map[string]string{
	wxpay.TradeStateSuccess: "支付成功",
	wxpay.TradeStateNotPay:  "订单未支付",
	wxpay.TradeStateClosed:  "订单已关闭",
	wxpay.TradeStateRefund:  "订单发生过退款",
}

// transactionJSON appends the transaction document (query answer and
// TRANSACTION.SUCCESS resource), with the fields WeChat returns for the
// order's state, in WeChat's (alphabetical) order. Caller holds the shard.
func (o *order) transactionJSON(b []byte) []byte {
	paid := o.txnID != ""
	ob := newObj(b)
	am := ob.obj("amount")
	am.str("currency", o.currency)
	am.str("payer_currency", o.currency)
	if paid {
		am.num("payer_total", o.total)
	}
	am.num("total", o.total)
	am.end(ob)
	ob.str("appid", o.appID)
	ob.str("attach", o.attach)
	if paid {
		ob.str("bank_type", "OTHERS")
	}
	ob.str("mchid", o.mchID)
	ob.str("out_trade_no", o.outTradeNo)
	if paid {
		p := ob.obj("payer")
		p.str("openid", o.openID)
		p.end(ob)
	}
	ob.raw("promotion_detail", "[]")
	if paid {
		ob.str("success_time", rfc3339(o.successTime))
	}
	ob.str("trade_state", o.state)
	ob.str("trade_state_desc", tradeStateDesc[o.state])
	if paid {
		ob.str("trade_type", "JSAPI")
		ob.str("transaction_id", o.txnID)
	}
	return ob.done()
}

// closeBody is the JSON of the close request.
type closeBody struct {
	MchID string `json:"mchid"`
}

// closeOrder serves POST /v3/pay/transactions/out-trade-no/{no}/close:
// 204 for an unpaid or already closed order.
func (s *Server) closeOrder(r *v3req) (int, []byte, *apiError) {
	otn := pathParam(r.ctx, pathQueryPrefix, "/close")
	var b closeBody
	if e := decodeBody(r.body, &b); e != nil {
		return 0, nil, e
	}
	if e := s.checkPathAndMchID(otn, b.MchID, r.mchID, "body"); e != nil {
		return 0, nil, e
	}
	o := s.store.lookup(b.MchID, otn)
	if o == nil {
		s.store.recordCall(b.MchID, otn, ckClose, r.now)
		return 0, nil, errNotFound
	}
	defer o.sh.mu.Unlock()
	o.calls.add(ckClose, r.now)
	o.expireIfDue(r.now, &s.stats)
	switch o.state {
	case wxpay.TradeStateNotPay:
		o.state = wxpay.TradeStateClosed
		o.closedBy = "merchant"
		s.stats.closed.Add(1)
	case wxpay.TradeStateClosed:
		// Closing again is idempotent (UNCONFIRMED; WeChat documents no error for it).
	default:
		// UNCONFIRMED: APIv3's close tables list no code for a paid order;
		// ORDERPAID is APIv2's code for it (see doc.go).
		return 0, nil, newErr(400, wxpay.CodeOrderPaid, "订单已支付，不能关闭")
	}
	return fasthttp.StatusNoContent, nil, nil
}

// certificates serves GET /v3/certificates.
func (s *Server) certificates(r *v3req) (int, []byte, *apiError) {
	if s.certsBody == nil {
		return 0, nil, newErr(404, wxpay.CodeResourceNotExists, "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥")
	}
	return 200, s.certsBody, nil
}

// certificatesBody builds the /v3/certificates answer once: the platform
// certificate encrypted with the APIv3 key (AAD "certificate"). nil in
// public-key mode, where new merchants have no platform certificate.
func (s *Server) certificatesBody() ([]byte, error) {
	if s.cfg.signingMode() == ModePublicKey {
		return nil, nil
	}
	nonce := randAlnum(12)
	ct, err := s.aead.Seal(nonce, "certificate", certPEM(s.id.PlatformCert))
	if err != nil {
		return nil, err
	}
	c := s.id.PlatformCert
	resp := wxpay.CertificatesResponse{Data: []wxpay.Certificate{{
		SerialNo:      s.id.PlatformSerial,
		EffectiveTime: rfc3339(c.NotBefore),
		ExpireTime:    rfc3339(c.NotAfter),
		EncryptCertificate: wxpay.Resource{
			Algorithm: wxpay.AlgorithmAESGCM, Nonce: nonce, AssociatedData: "certificate", Ciphertext: ct,
		},
	}}}
	return json.Marshal(resp)
}

// payBody is the JSON of POST /sim/v1/pay.
type payBody struct {
	PrepayID string `json:"prepay_id"`
	OpenID   string `json:"openid"`
}

// simPay serves POST /sim/v1/pay: the buyer confirms payment.
func (s *Server) simPay(ctx *fasthttp.RequestCtx) {
	var b payBody
	if err := json.Unmarshal(ctx.PostBody(), &b); err != nil || b.PrepayID == "" || b.OpenID == "" {
		writeJSON(ctx, 400, simError{"PARAM_ERROR", "want {\"prepay_id\",\"openid\"}"})
		return
	}
	txnID, err := s.Pay(b.PrepayID, b.OpenID)
	var pe *PayError
	switch {
	case err == nil:
		writeJSON(ctx, 201, map[string]string{"transaction_id": txnID})
	case errors.As(err, &pe):
		if pe.Status == 409 {
			s.stats.payRejected.Add(1)
		}
		writeJSON(ctx, pe.Status, simError{pe.Code, pe.Message})
	default:
		writeJSON(ctx, 500, simError{wxpay.CodeSystemError, err.Error()})
	}
}

// PayError is why Pay refused: Status 404 (unknown prepay_id), 409 (the
// order cannot be paid: Code ORDER_CLOSED, ORDER_EXPIRED, ORDER_PAID,
// PREPAY_EXPIRED or OPENID_MISMATCH) or 503 (too many notifications in
// flight; wraps ErrOverloaded).
type PayError struct {
	Status  int
	Code    string
	Message string
}

func (e *PayError) Error() string { return "sim: pay: " + e.Code + ": " + e.Message }

// Unwrap returns ErrOverloaded for a 503.
func (e *PayError) Unwrap() error {
	if e.Status == 503 {
		return ErrOverloaded
	}
	return nil
}

// Pay is the buyer confirming payment of prepayID as openID, as POST
// /sim/v1/pay does: the order becomes SUCCESS and its notification is
// scheduled. It returns the transaction_id, or a *PayError.
func (s *Server) Pay(prepayID, openID string) (string, error) {
	now := s.clock.Now()
	st := s.store
	st.idxMu.RLock()
	o := st.byPrepay[prepayID]
	st.idxMu.RUnlock()
	if o == nil {
		return "", &PayError{404, "PREPAY_NOT_EXIST", "unknown prepay_id"}
	}
	o.sh.mu.Lock()
	o.expireIfDue(now, &s.stats)
	var code, msg string
	switch {
	case o.prepayID != prepayID: // replaced by a renewal
		code, msg = "PREPAY_EXPIRED", "the prepay_id was replaced by a newer one"
	case o.state == wxpay.TradeStateClosed && o.closedBy == "expired":
		code, msg = "ORDER_EXPIRED", "the order is past time_expire"
	case o.state == wxpay.TradeStateClosed:
		code, msg = "ORDER_CLOSED", "the order is closed"
	case o.state != wxpay.TradeStateNotPay:
		code, msg = "ORDER_PAID", "the order is already paid"
	case !now.Before(o.prepayExpire):
		code, msg = "PREPAY_EXPIRED", "the prepay_id is older than 2 hours"
	case o.openID != openID:
		code, msg = "OPENID_MISMATCH", "the openid is not the order's payer"
	}
	if code != "" {
		o.sh.mu.Unlock()
		return "", &PayError{409, code, msg}
	}
	if !s.notifier.reserve() {
		o.sh.mu.Unlock()
		s.stats.reject("SIM_PAY_OVERLOADED")
		return "", &PayError{503, wxpay.CodeSystemError, "notification queue full"}
	}
	o.state = wxpay.TradeStateSuccess
	o.txnID = st.newTransactionID(now)
	o.successTime = now
	txnID := o.txnID
	var n *delivery
	if o.v2 != nil {
		n = s.v2PayNotification(o, now)
	} else {
		plain := o.transactionJSON(make([]byte, 0, 512))
		n = s.newDelivery(o, wxpay.EventTransactionSuccess, wxpay.OriginalTypeTransaction, "支付成功", o.notifyURL, plain, now)
	}
	o.sh.mu.Unlock()
	st.idxMu.Lock()
	st.byTxn[txnID] = o
	st.idxMu.Unlock()
	s.stats.paid.Add(1)
	s.notifier.submit(n, now)
	return txnID, nil
}

// OrderView is the JSON of GET /sim/v1/orders/{out_trade_no}: the order's
// state and every notification with its delivery attempts.
type OrderView struct {
	MchID         string            `json:"mchid"`
	OutTradeNo    string            `json:"out_trade_no"`
	PrepayID      string            `json:"prepay_id"`
	TradeState    string            `json:"trade_state"`
	TransactionID string            `json:"transaction_id,omitempty"`
	Total         int64             `json:"total"`
	Refunded      int64             `json:"refunded"`  // sum of SUCCESS refunds
	Refunding     int64             `json:"refunding"` // sum of PROCESSING and ABNORMAL refunds
	OpenID        string            `json:"openid"`
	APIv2         bool              `json:"apiv2"`
	Refunds       []RefundView      `json:"refunds"`
	Notifications []*DeliveryRecord `json:"notifications"`
}

// RefundView is one refund in an OrderView.
type RefundView struct {
	OutRefundNo string `json:"out_refund_no"`
	RefundID    string `json:"refund_id"`
	Status      string `json:"status"`
	Amount      int64  `json:"amount"`
}

// simOrder serves GET /sim/v1/orders/{out_trade_no}[?mchid=].
func (s *Server) simOrder(ctx *fasthttp.RequestCtx, otn string) {
	mchID := string(ctx.QueryArgs().Peek("mchid"))
	if mchID == "" {
		mchID = s.id.MchID
	}
	o := s.store.lookup(mchID, otn)
	if o == nil {
		writeJSON(ctx, 404, simError{wxpay.CodeOrderNotExist, "no such order"})
		return
	}
	o.expireIfDue(s.clock.Now(), &s.stats)
	v := OrderView{
		MchID: o.mchID, OutTradeNo: o.outTradeNo, PrepayID: o.prepayID, TradeState: o.state,
		TransactionID: o.txnID, Total: o.total, Refunded: o.refunded, Refunding: o.refunding, OpenID: o.openID, APIv2: o.v2 != nil,
		Refunds: []RefundView{}, Notifications: make([]*DeliveryRecord, 0, len(o.deliveries)),
	}
	for _, rf := range o.refunds {
		v.Refunds = append(v.Refunds, RefundView{rf.outRefundNo, rf.refundID, rf.status, rf.amount})
	}
	for _, d := range o.deliveries {
		c := *d
		c.Attempts = append([]Attempt(nil), d.Attempts...)
		v.Notifications = append(v.Notifications, &c)
	}
	o.sh.mu.Unlock()
	writeJSON(ctx, 200, v)
}

// limiter is a token bucket per mchid for prepay: rate tokens per second,
// holding at most one second's worth. rate 0 disables it.
type limiter struct {
	rate    float64
	mu      sync.Mutex
	buckets map[string]*bucket // keyed by authenticated mchid: bounded by the merchants served
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate int) *limiter {
	return &limiter{rate: float64(rate), buckets: map[string]*bucket{}}
}

func (l *limiter) allow(mchID string, now time.Time) bool {
	if l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[mchID]
	if b == nil {
		b = &bucket{tokens: l.rate, last: now}
		l.buckets[mchID] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(l.rate, b.tokens+el.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
