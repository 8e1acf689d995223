package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
)

// API paths, relative to Config.BaseURL.
const (
	pathPrepay       = "/v3/pay/transactions/jsapi"
	pathOutTradeNo   = "/v3/pay/transactions/out-trade-no/"
	pathRefunds      = "/v3/refund/domestic/refunds"
	pathCertificates = "/v3/certificates"
)

// Client calls the WeChat Pay merchant APIv3: it signs every request with
// the merchant key and verifies every answer with WeChat's keys. A Client
// is safe for concurrent use; it holds a bounded connection pool, so build
// one per process and share it. Close releases it.
type Client struct {
	t         *transport
	signer    *wxpay.Signer
	verifier  *wxpay.Verifier
	refresher atomic.Pointer[CertRefresher]
}

// New returns a Client for cfg (validated, zero fields defaulted) that signs
// with signer and verifies answers with verifier. Options set the clock,
// the dialer and an Observer.
func New(cfg Config, signer *wxpay.Signer, verifier *wxpay.Verifier, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if signer == nil {
		return nil, fmt.Errorf("wxpay client: %w: nil signer", ErrInvalidConfig)
	}
	if verifier == nil || verifier.Keys() == nil {
		return nil, fmt.Errorf("wxpay client: %w: nil verifier or key set", ErrInvalidConfig)
	}
	cfg = cfg.withDefaults()
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	t := newTransport(transportConfig{
		base:     base,
		timeout:  cfg.Timeout,
		maxConns: cfg.MaxConns,
		wait:     cfg.MaxConnWaitTimeout,
		maxBody:  cfg.MaxResponseBodySize,
		ua:       cfg.UserAgent,
		attempts: 2, // one retry of a GET on a stale keep-alive connection
	}, buildOptions(opts))
	return &Client{t: t, signer: signer, verifier: verifier}, nil
}

// Close refuses new calls (they fail with ErrClosed), waits until ctx
// ends for the calls and goroutines in flight (each bounded by its
// deadline), and closes idle connections. It is idempotent and safe for
// concurrent use. (CloseOrder is the WeChat API that closes an order.)
func (c *Client) Close(ctx context.Context) error { return c.t.close(ctx) }

// Prepay creates a JSAPI / Mini Program order: POST
// /v3/pay/transactions/jsapi. An empty req.MchID takes the signer's; another
// one is refused. req is not modified. The prepay_id is valid for 2 hours;
// calling again with the same parameters returns the order's current one.
func (c *Client) Prepay(ctx context.Context, req *wxpay.PrepayRequest) (wxpay.PrepayResponse, error) {
	const op = "prepay"
	if err := c.checkPrepay(req); err != nil {
		return wxpay.PrepayResponse{}, fmt.Errorf("wxpay client: %s: %w", op, err)
	}
	r := *req
	r.MchID = c.signer.MchID()
	body, err := json.Marshal(&r)
	if err != nil {
		return wxpay.PrepayResponse{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
	}
	var out wxpay.PrepayResponse
	err = c.do(ctx, &call{op: op, method: fasthttp.MethodPost, path: pathPrepay, body: body, refresh: true,
		decode: func(_ int, _ *wxpay.Headers, b []byte) error {
			var doc wxpay.PrepayResponse
			if json.Unmarshal(b, &doc) != nil {
				return fmt.Errorf("%w: %w: prepay answer", ErrBadResponse, wxpay.ErrMalformed)
			}
			if doc.PrepayID == "" {
				return fmt.Errorf("%w: %w: prepay_id", ErrBadResponse, wxpay.ErrMissingField)
			}
			out = doc
			return nil
		}})
	return out, err
}

func (c *Client) checkPrepay(r *wxpay.PrepayRequest) error {
	switch {
	case r == nil:
		return fmt.Errorf("%w: nil prepay request", ErrInvalidRequest)
	case r.MchID != "" && r.MchID != c.signer.MchID():
		return fmt.Errorf("%w: mchid differs from the signer's", ErrInvalidRequest)
	case !wxpay.ValidOutTradeNo(r.OutTradeNo):
		return fmt.Errorf("%w: out_trade_no %.40q", ErrInvalidRequest, r.OutTradeNo)
	case r.AppID == "":
		return fmt.Errorf("%w: appid is required", ErrInvalidRequest)
	case r.Description == "":
		return fmt.Errorf("%w: description is required", ErrInvalidRequest)
	case r.NotifyURL == "":
		return fmt.Errorf("%w: notify_url is required", ErrInvalidRequest)
	case r.Payer.OpenID == "":
		return fmt.Errorf("%w: payer.openid is required", ErrInvalidRequest)
	case r.Amount.Total <= 0:
		return fmt.Errorf("%w: amount.total must be positive", ErrInvalidRequest)
	}
	return nil
}

// QueryByOutTradeNo returns an order's transaction: GET
// /v3/pay/transactions/out-trade-no/{no}?mchid={mchid}. An invalid
// out_trade_no is refused before sending. The answer must be for this order
// and merchant.
func (c *Client) QueryByOutTradeNo(ctx context.Context, outTradeNo string) (wxpay.Transaction, error) {
	const op = "query"
	if !wxpay.ValidOutTradeNo(outTradeNo) {
		return wxpay.Transaction{}, fmt.Errorf("wxpay client: %s: %w: out_trade_no %.40q", op, ErrInvalidRequest, outTradeNo)
	}
	mchID := c.signer.MchID()
	path := pathOutTradeNo + url.PathEscape(outTradeNo) + "?mchid=" + url.QueryEscape(mchID)
	var out wxpay.Transaction
	err := c.do(ctx, &call{op: op, method: fasthttp.MethodGet, path: path, refresh: true,
		decode: func(_ int, _ *wxpay.Headers, b []byte) error {
			t, err := wxpay.DecodeTransaction(b)
			if err != nil {
				return fmt.Errorf("%w: %w", ErrBadResponse, err)
			}
			if t.OutTradeNo != outTradeNo || t.MchID != mchID {
				return fmt.Errorf("%w: answer is for another order or merchant", ErrBadResponse)
			}
			out = t
			return nil
		}})
	return out, err
}

// CloseOrder closes an unpaid order: POST
// /v3/pay/transactions/out-trade-no/{no}/close with {"mchid":...}. WeChat
// answers 204 with an empty, signed body; any verified 2xx is success.
func (c *Client) CloseOrder(ctx context.Context, outTradeNo string) error {
	const op = "close"
	if !wxpay.ValidOutTradeNo(outTradeNo) {
		return fmt.Errorf("wxpay client: %s: %w: out_trade_no %.40q", op, ErrInvalidRequest, outTradeNo)
	}
	body, err := json.Marshal(wxpay.CloseRequest{MchID: c.signer.MchID()})
	if err != nil {
		return fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
	}
	path := pathOutTradeNo + url.PathEscape(outTradeNo) + "/close"
	return c.do(ctx, &call{op: op, method: fasthttp.MethodPost, path: path, body: body, refresh: true})
}

// CreateRefund asks for a refund: POST /v3/refund/domestic/refunds. Give
// TransactionID or OutTradeNo; reuse OutRefundNo when retrying so WeChat
// refunds once. An empty Amount.Currency is sent as CNY. req is not
// modified. A 200 means accepted: Status is usually PROCESSING.
func (c *Client) CreateRefund(ctx context.Context, req *wxpay.RefundRequest) (wxpay.Refund, error) {
	const op = "refund.create"
	if err := checkRefund(req); err != nil {
		return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w", op, err)
	}
	r := *req
	if r.Amount.Currency == "" {
		r.Amount.Currency = "CNY"
	}
	body, err := json.Marshal(&r)
	if err != nil {
		return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
	}
	var out wxpay.Refund
	err = c.do(ctx, &call{op: op, method: fasthttp.MethodPost, path: pathRefunds, body: body, refresh: true,
		decode: refundDecoder("", r.OutRefundNo, &out)})
	return out, err
}

func checkRefund(r *wxpay.RefundRequest) error {
	switch {
	case r == nil:
		return fmt.Errorf("%w: nil refund request", ErrInvalidRequest)
	case !wxpay.ValidOutRefundNo(r.OutRefundNo):
		return fmt.Errorf("%w: out_refund_no %.70q", ErrInvalidRequest, r.OutRefundNo)
	case r.TransactionID == "" && r.OutTradeNo == "":
		return fmt.Errorf("%w: transaction_id or out_trade_no is required", ErrInvalidRequest)
	case r.OutTradeNo != "" && !wxpay.ValidOutTradeNo(r.OutTradeNo):
		return fmt.Errorf("%w: out_trade_no %.40q", ErrInvalidRequest, r.OutTradeNo)
	case r.Amount.Refund <= 0 || r.Amount.Total <= 0 || r.Amount.Refund > r.Amount.Total:
		return fmt.Errorf("%w: amount must satisfy 0 < refund <= total", ErrInvalidRequest)
	}
	return nil
}

// QueryRefund returns a refund: GET /v3/refund/domestic/refunds/{no}.
func (c *Client) QueryRefund(ctx context.Context, outRefundNo string) (wxpay.Refund, error) {
	const op = "refund.query"
	if !wxpay.ValidOutRefundNo(outRefundNo) {
		return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: out_refund_no %.70q", op, ErrInvalidRequest, outRefundNo)
	}
	var out wxpay.Refund
	err := c.do(ctx, &call{op: op, method: fasthttp.MethodGet, path: pathRefunds + "/" + url.PathEscape(outRefundNo),
		refresh: true, decode: refundDecoder("", outRefundNo, &out)})
	return out, err
}

// Bounds on the plain bank fields of an abnormal refund. (WeChat documents
// bank_type as string(16) and the encrypted fields as string(1024); the
// bounds on the plain card number and name are ours.)
const (
	maxBankTypeLen = 16
	maxBankField   = 128
)

// ApplyAbnormalRefund completes a refund whose status is ABNORMAL (the
// buyer's card was closed or frozen) another way: POST
// /v3/refund/domestic/refunds/{refund_id}/apply-abnormal-refund, refundID
// being WeChat's refund_id. Type AbnormalRefundUserBankCard pays the buyer's
// debit card and needs BankType, BankAccount and RealName; the last two are
// encrypted (wxpay.EncryptSensitive) with the newest WeChat key of the
// verifier's key set, which the request names in Wechatpay-Serial, and so
// need one. AbnormalRefundMerchantBankCard pays the merchant's bank account
// and takes no bank fields. Invalid input fails with ErrInvalidRequest
// before anything is sent; req is not modified. The answer is the refund,
// decoded and checked as CreateRefund's (and it must be refundID's).
func (c *Client) ApplyAbnormalRefund(ctx context.Context, refundID string, req *wxpay.AbnormalRefundRequest) (wxpay.Refund, error) {
	const op = "refund.abnormal"
	if err := checkAbnormalRefund(refundID, req); err != nil {
		return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w", op, err)
	}
	r := *req
	cl := &call{op: op, method: fasthttp.MethodPost, refresh: true,
		path: pathRefunds + "/" + url.PathEscape(refundID) + "/apply-abnormal-refund"}
	if r.Type == wxpay.AbnormalRefundUserBankCard {
		k, ok := c.verifier.Keys().Newest(c.t.now())
		if !ok || k.RSA() == nil {
			return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: no WeChat key to encrypt the bank fields with", op, ErrInvalidRequest)
		}
		var err error
		if r.BankAccount, err = wxpay.EncryptSensitive(k.RSA(), r.BankAccount); err != nil {
			return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: bank_account: %w", op, ErrInvalidRequest, err)
		}
		if r.RealName, err = wxpay.EncryptSensitive(k.RSA(), r.RealName); err != nil {
			return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: real_name: %w", op, ErrInvalidRequest, err)
		}
		cl.serial = k.Serial
	}
	body, err := json.Marshal(&r)
	if err != nil {
		return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
	}
	cl.body = body
	var out wxpay.Refund
	cl.decode = refundDecoder(refundID, r.OutRefundNo, &out)
	err = c.do(ctx, cl)
	return out, err
}

// checkAbnormalRefund validates an abnormal refund without naming the bank
// account or the name in its errors.
func checkAbnormalRefund(refundID string, r *wxpay.AbnormalRefundRequest) error {
	if !wxpay.ValidRefundID(refundID) {
		return fmt.Errorf("%w: refund_id %.40q must be 1 to 32 letters or digits", ErrInvalidRequest, refundID)
	}
	switch {
	case r == nil:
		return fmt.Errorf("%w: nil abnormal refund request", ErrInvalidRequest)
	case !wxpay.ValidOutRefundNo(r.OutRefundNo):
		return fmt.Errorf("%w: out_refund_no %.70q", ErrInvalidRequest, r.OutRefundNo)
	}
	switch r.Type {
	case wxpay.AbnormalRefundUserBankCard:
		switch {
		case r.BankType == "" || len(r.BankType) > maxBankTypeLen || !bankTypeChars(r.BankType):
			return fmt.Errorf("%w: bank_type %.20q must be 1 to %d characters of [A-Z0-9_]", ErrInvalidRequest, r.BankType, maxBankTypeLen)
		case !bankField(r.BankAccount):
			return fmt.Errorf("%w: bank_account must be 1 to %d bytes without control characters", ErrInvalidRequest, maxBankField)
		case !bankField(r.RealName):
			return fmt.Errorf("%w: real_name must be 1 to %d bytes without control characters", ErrInvalidRequest, maxBankField)
		}
	case wxpay.AbnormalRefundMerchantBankCard:
		if r.BankType != "" || r.BankAccount != "" || r.RealName != "" {
			return fmt.Errorf("%w: bank_type, bank_account and real_name are for %s only", ErrInvalidRequest, wxpay.AbnormalRefundUserBankCard)
		}
	default:
		return fmt.Errorf("%w: type %.40q is neither %s nor %s", ErrInvalidRequest, r.Type,
			wxpay.AbnormalRefundUserBankCard, wxpay.AbnormalRefundMerchantBankCard)
	}
	return nil
}

func bankTypeChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func bankField(s string) bool {
	if s == "" || len(s) > maxBankField || !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// refundDecoder decodes a refund answer, requires refund_id, status and the
// requested out_refund_no (and refund_id, when given), and normalises the
// status spelling.
func refundDecoder(refundID, outRefundNo string, out *wxpay.Refund) func(int, *wxpay.Headers, []byte) error {
	return func(_ int, _ *wxpay.Headers, b []byte) error {
		var r wxpay.Refund
		if json.Unmarshal(b, &r) != nil {
			return fmt.Errorf("%w: %w: refund answer", ErrBadResponse, wxpay.ErrMalformed)
		}
		switch {
		case r.RefundID == "":
			return fmt.Errorf("%w: %w: refund_id", ErrBadResponse, wxpay.ErrMissingField)
		case r.Status == "":
			return fmt.Errorf("%w: %w: status", ErrBadResponse, wxpay.ErrMissingField)
		case r.OutRefundNo != outRefundNo, refundID != "" && r.RefundID != refundID:
			return fmt.Errorf("%w: answer is for another refund", ErrBadResponse)
		}
		r.Status = wxpay.NormalizeRefundStatus(r.Status)
		*out = r
		return nil
	}
}

// call describes one signed APIv3 exchange.
type call struct {
	op     string
	method string
	path   string // escaped path and query, after BaseURL's path prefix
	body   []byte // nil: no body
	// refresh lets an unknown Wechatpay-Serial trigger the CertRefresher.
	refresh bool
	// bootstrap accepts an unknown serial while the key set is empty; decode
	// is then told (unverified) and must establish trust itself.
	bootstrap bool
	// decode handles a verified 2xx answer; body is valid during the call only.
	decode func(status int, h *wxpay.Headers, body []byte) error
	// unverified is set for decode when bootstrap skipped verification.
	unverified bool
	// serial is the Wechatpay-Serial to send: the key that encrypted
	// sensitive fields of body. Empty: the key set's newest key.
	serial string
}

// do signs and sends cl, verifies the answer and decodes it.
func (c *Client) do(ctx context.Context, cl *call) (err error) {
	start := time.Now()
	status := 0
	defer func() { c.t.observe(cl.op, status, start, err) }()
	if !c.t.enter() {
		return fmt.Errorf("wxpay client: %s: %w", cl.op, ErrClosed)
	}
	defer c.t.leave()
	if ctx.Err() != nil {
		return fmt.Errorf("wxpay client: %s: %w", cl.op, ctxError(ctx))
	}
	deadline, fromCtx := c.t.deadline(ctx)

	now := c.t.now()
	nonce := wxpay.NewNonce()
	auth, err := c.signer.Authorization(cl.method, c.t.base.prefix+cl.path, cl.body, now.Unix(), nonce)
	if err != nil {
		return fmt.Errorf("wxpay client: %s: sign request: %w", cl.op, err)
	}

	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	owned := true
	defer func() {
		if owned {
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}
	}()
	req.SetRequestURI(c.t.base.root + cl.path)
	req.Header.SetMethod(cl.method)
	req.Header.Set(wxpay.HeaderAuthorization, auth)
	req.Header.Set(fasthttp.HeaderAccept, "application/json")
	req.Header.SetUserAgent(c.t.ua)
	if cl.serial != "" {
		req.Header.Set(wxpay.HeaderSerial, cl.serial)
	} else if k, ok := c.verifier.Keys().Newest(now); ok {
		req.Header.Set(wxpay.HeaderSerial, k.Serial)
	}
	if cl.body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(cl.body)
	}

	owned, err = c.t.roundTrip(ctx, req, resp, deadline)
	if err != nil {
		return c.t.transportError(ctx, cl.op, err, fromCtx)
	}
	status = resp.StatusCode()
	body := resp.Body()
	h := responseHeaders(&resp.Header)
	verr := c.verify(ctx, cl, &h, body)
	if status < 200 || status > 299 {
		apiErr := decodeAPIError(status, &h, body)
		if verr != nil || cl.unverified {
			if verr == nil {
				verr = fmt.Errorf("%w: %.64q (bootstrap)", wxpay.ErrUnknownSerial, h.Serial)
			}
			return fmt.Errorf("wxpay client: %s: %w (%w: %w)", cl.op, apiErr, ErrUnsignedResponse, verr)
		}
		return fmt.Errorf("wxpay client: %s: %w", cl.op, apiErr)
	}
	if verr != nil {
		return fmt.Errorf("wxpay client: %s: HTTP %d: %w: %w", cl.op, status, ErrUnsignedResponse, verr)
	}
	if cl.decode != nil {
		if err := cl.decode(status, &h, body); err != nil {
			return fmt.Errorf("wxpay client: %s: %w", cl.op, err)
		}
	}
	return nil
}

// verify checks an answer's signature. An unknown serial asks the attached
// CertRefresher for one (rate-limited) download and verifies again; during
// a bootstrap download it is left to the decoder (cl.unverified).
func (c *Client) verify(ctx context.Context, cl *call, h *wxpay.Headers, body []byte) error {
	err := c.verifier.Verify(h, body)
	if err == nil || !errors.Is(err, wxpay.ErrUnknownSerial) {
		return err
	}
	if cl.bootstrap && c.verifier.Keys().Len() == 0 {
		cl.unverified = true
		return nil
	}
	r := c.refresher.Load()
	if !cl.refresh || r == nil {
		return err
	}
	if rerr := r.RefreshNow(ctx); rerr != nil {
		return fmt.Errorf("%w (certificate refresh: %w)", err, rerr)
	}
	return c.verifier.Verify(h, body)
}

func responseHeaders(rh *fasthttp.ResponseHeader) wxpay.Headers {
	return wxpay.Headers{
		Timestamp:     string(rh.Peek(wxpay.HeaderTimestamp)),
		Nonce:         string(rh.Peek(wxpay.HeaderNonce)),
		Signature:     string(rh.Peek(wxpay.HeaderSignature)),
		Serial:        string(rh.Peek(wxpay.HeaderSerial)),
		SignatureType: string(rh.Peek(wxpay.HeaderSignatureType)),
		RequestID:     clip(string(rh.Peek(wxpay.HeaderRequestID)), 128),
	}
}

// Bounds on the text taken from an error answer into errors.
const (
	maxCodeLen    = 64
	maxMessageLen = 256
	maxDetailLen  = 256
)

// decodeAPIError decodes a non-2xx answer. A body that is not WeChat's error
// JSON leaves Code and Message empty; nothing else of the body is kept.
func decodeAPIError(status int, h *wxpay.Headers, body []byte) *wxpay.APIError {
	e := &wxpay.APIError{Status: status, RequestID: h.RequestID}
	var doc struct {
		Code    string             `json:"code"`
		Message string             `json:"message"`
		Detail  *wxpay.ErrorDetail `json:"detail"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return e
	}
	e.Code = wxpay.NormalizeCode(clip(doc.Code, maxCodeLen))
	e.Message = clip(doc.Message, maxMessageLen)
	if d := doc.Detail; d != nil {
		d.Field = clip(d.Field, maxDetailLen)
		d.Issue = clip(d.Issue, maxDetailLen)
		d.Location = clip(d.Location, maxCodeLen)
		if len(d.Value) > maxDetailLen {
			d.Value = nil
		}
		e.Detail = d
	}
	return e
}

// clip bounds s to n bytes at a rune boundary and replaces control
// characters, so that text from an answer cannot forge log lines.
func clip(s string, n int) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if clean && len(s) <= n {
		return s
	}
	b := make([]byte, 0, min(len(s), n))
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		if len(b)+utf8.RuneLen(r) > n {
			break
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}
