package sim

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"path"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/examples/miniprogram"
	"github.com/wxpayd/wxpayd/wxpay"
)

// The Mini Program simulator: a page that plays WeChat's client in a
// browser, so that a buyer (or a test driving Chromium) goes from wx.login
// to PAID against a real wxpayd without a phone.
//
//   GET  /sim/miniprogram/             the page (index.html, wx.js, shop.js, shop.css)
//   GET  /sim/miniprogram/lib/<m>.js   the example Mini Program's modules
//                                      (examples/miniprogram/lib), byte for byte
//   POST /sim/v1/requestPayment        what WeChat's client checks when the Mini
//                                      Program calls wx.requestPayment
//
// wx.js is the client: wx.login asks POST /sim/v1/login for a code,
// wx.request calls wxpayd (which must allow the page's origin:
// WXPAYD_CORS_ORIGINS), and wx.requestPayment has this server check the
// parameters, shows a pay sheet, and on "pay" settles through POST
// /sim/v1/pay, which notifies wxpayd like any payment.

//go:embed miniprogram
var mpPage embed.FS

const pathMiniProgram = "/sim/miniprogram/"

// ErrMsgPaySign is the detail of WeChat's client error for a paySign that
// does not verify: "requestPayment:fail 支付验证签名失败", as buyers and
// developers report it (the client's exact wording is UNCONFIRMED).
const ErrMsgPaySign = "支付验证签名失败"

// simMiniProgram serves the page and the example's modules.
func (s *Server) simMiniProgram(ctx *fasthttp.RequestCtx, p string) {
	if m := string(ctx.Method()); m != fasthttp.MethodGet && m != fasthttp.MethodHead {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		writeJSON(ctx, 405, simError{"METHOD_NOT_ALLOWED", "use GET"})
		return
	}
	if p+"/" == pathMiniProgram {
		u := pathMiniProgram
		if q := ctx.URI().QueryString(); len(q) > 0 {
			u += "?" + string(q)
		}
		ctx.Redirect(u, fasthttp.StatusMovedPermanently)
		return
	}
	name := strings.TrimPrefix(p, pathMiniProgram)
	if name == "" {
		name = "index.html"
	}
	var b []byte
	var err error
	if lib, ok := strings.CutPrefix(name, "lib/"); ok {
		b, err = fs.ReadFile(miniprogram.Lib, "lib/"+lib)
	} else {
		b, err = fs.ReadFile(mpPage, "miniprogram/"+name) // fs.ValidPath refuses "..": no escape
	}
	if err != nil {
		writeJSON(ctx, 404, simError{"NOT_FOUND", "no such file"})
		return
	}
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	// The page loads its modules with new Function (a CommonJS loader): hence
	// 'unsafe-eval'. It talks to this server and to wxpayd, wherever that is.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-eval'; "+
		"connect-src 'self' http: https:; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'")
	switch path.Ext(name) {
	case ".html":
		ctx.SetContentType("text/html; charset=utf-8")
	case ".js":
		ctx.SetContentType("text/javascript; charset=utf-8")
	case ".css":
		ctx.SetContentType("text/css; charset=utf-8")
	default:
		ctx.SetContentType("application/octet-stream")
	}
	ctx.SetBody(b)
}

// RequestPayment is what a Mini Program passes to wx.requestPayment (no
// appId: the client knows which app calls it).
type RequestPayment struct {
	TimeStamp string `json:"timeStamp"`
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"`
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
}

// requestPaymentBody is the JSON of POST /sim/v1/requestPayment: the
// parameters and the buyer the client is logged in as.
type requestPaymentBody struct {
	RequestPayment
	OpenID string `json:"openid"`
}

// PaySheet is what WeChat's pay sheet shows for a payment it accepted.
type PaySheet struct {
	PrepayID    string `json:"prepay_id"`
	MchID       string `json:"mchid"`
	Description string `json:"description"`
	Total       int64  `json:"total"`
	Currency    string `json:"currency"`
}

// CheckRequestPayment does what WeChat's client does when the Mini Program
// calls wx.requestPayment(p) for the buyer openID, before it shows the pay
// sheet: the parameters are present; paySign verifies for this app (signType
// RSA: SHA256withRSA over "appId\ntimeStamp\nnonceStr\npackage\n" with the
// merchant's certificate key; MD5 or HMAC-SHA256: APIv2 over appId,
// nonceStr, package, signType and timeStamp with the APIv2 key); the package
// names a prepay_id WeChat made, for this buyer, still payable. Nothing
// changes. A refusal is a *PayError: 400 PARAM_ERROR, 400 SIGN_ERROR
// (message ErrMsgPaySign), 404 PREPAY_NOT_EXIST, or 409 as Pay answers.
func (s *Server) CheckRequestPayment(p RequestPayment, openID string) (PaySheet, error) {
	switch {
	case p.TimeStamp == "" || p.NonceStr == "" || p.Package == "" || p.PaySign == "":
		return PaySheet{}, &PayError{400, "PARAM_ERROR", "timeStamp, nonceStr, package and paySign are required"}
	case len(p.NonceStr) > 32:
		return PaySheet{}, &PayError{400, "PARAM_ERROR", "nonceStr longer than 32 characters"}
	case strings.Trim(p.TimeStamp, "0123456789") != "":
		return PaySheet{}, &PayError{400, "PARAM_ERROR", "timeStamp must be decimal seconds"}
	}
	prepayID, ok := strings.CutPrefix(p.Package, "prepay_id=")
	if !ok || prepayID == "" {
		return PaySheet{}, &PayError{400, "PARAM_ERROR", "package must be prepay_id=<prepay_id>"}
	}
	if !s.paySignValid(p) {
		return PaySheet{}, &PayError{400, "SIGN_ERROR", ErrMsgPaySign}
	}
	now := s.clock.Now()
	st := s.store
	st.idxMu.RLock()
	o := st.byPrepay[prepayID]
	st.idxMu.RUnlock()
	if o == nil {
		return PaySheet{}, &PayError{404, "PREPAY_NOT_EXIST", "unknown prepay_id"}
	}
	o.sh.mu.Lock()
	defer o.sh.mu.Unlock()
	o.expireIfDue(now, &s.stats)
	var code, msg string
	switch { // the order of Pay's checks
	case o.prepayID != prepayID:
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
		return PaySheet{}, &PayError{409, code, msg}
	}
	return PaySheet{PrepayID: prepayID, MchID: o.mchID, Description: o.desc, Total: o.total, Currency: o.currency}, nil
}

// paySignValid verifies p.PaySign for this simulator's app.
func (s *Server) paySignValid(p RequestPayment) bool {
	switch p.SignType {
	case "RSA":
		sig, err := base64.StdEncoding.DecodeString(p.PaySign)
		if err != nil {
			return false
		}
		d := sha256.Sum256([]byte(s.id.AppID + "\n" + p.TimeStamp + "\n" + p.NonceStr + "\n" + p.Package + "\n"))
		return s.merchantPub.VerifyDigest(&d, sig) == nil
	case string(wxpay.V2SignMD5), string(wxpay.V2SignHMACSHA256):
		return s.v2.key.Verify(map[string]string{
			"appId": s.id.AppID, "timeStamp": p.TimeStamp, "nonceStr": p.NonceStr, "package": p.Package,
			"signType": p.SignType, "sign": p.PaySign,
		}, wxpay.V2SignType(p.SignType)) == nil
	}
	return false
}

// simRequestPayment serves POST /sim/v1/requestPayment: 200 with the
// PaySheet, or the *PayError's status and {"code","message"}.
func (s *Server) simRequestPayment(ctx *fasthttp.RequestCtx) {
	var b requestPaymentBody
	if err := json.Unmarshal(ctx.PostBody(), &b); err != nil || b.OpenID == "" {
		writeJSON(ctx, 400, simError{"PARAM_ERROR", "want {\"timeStamp\",\"nonceStr\",\"package\",\"signType\",\"paySign\",\"openid\"}"})
		return
	}
	sheet, err := s.CheckRequestPayment(b.RequestPayment, b.OpenID)
	if err != nil {
		var pe *PayError
		if !errors.As(err, &pe) {
			writeJSON(ctx, 500, simError{wxpay.CodeSystemError, err.Error()})
			return
		}
		writeJSON(ctx, pe.Status, simError{pe.Code, pe.Message})
		return
	}
	writeJSON(ctx, 200, sheet)
}
