package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
)

// APIv2 paths, relative to V2Config.BaseURL (SecureBaseURL for refunds).
const (
	pathV2UnifiedOrder = "/pay/unifiedorder"
	pathV2OrderQuery   = "/pay/orderquery"
	pathV2CloseOrder   = "/pay/closeorder"
	pathV2Refund       = "/secapi/pay/refund"
	pathV2RefundQuery  = "/pay/refundquery"
)

// DefaultV2ClientIP is the spbill_create_ip of a prepay that names no
// buyer IP when V2Config.ClientIP is empty.
const DefaultV2ClientIP = "127.0.0.1"

// V2Config configures a V2Client. The zero value is valid except that
// refunds need ClientCert; the embedded Config's fields mean what they
// mean for Client (BaseURL is where /pay/* goes).
type V2Config struct {
	Config
	// SecureBaseURL is where /secapi/pay/refund goes, over TLS with
	// ClientCert (default: BaseURL; WeChat serves both on one host).
	SecureBaseURL string
	// ClientCert is the merchant's API client certificate and key
	// (apiclient_cert.pem and apiclient_key.pem, or the .p12), which
	// WeChat requires for refunds. Nil: CreateRefund fails with
	// ErrInvalidRequest, nothing sent.
	ClientCert *tls.Certificate
	// RootCAs verifies WeChat's server certificates (default: the system
	// roots). Tests and wxpaysim's TLS listener pass its CA.
	RootCAs *x509.CertPool
	// ClientIP is the spbill_create_ip of a prepay that carries no
	// scene_info.payer_client_ip (default DefaultV2ClientIP). Set it to the
	// server's public IP.
	ClientIP string
	// RefundNotifyURL, when set, is the notify_url of every refund
	// (wxpayd's /wxpay/v2/refund-notify), whatever the request says; APIv2
	// notifies payments and refunds in different forms, so they go to
	// different routes.
	RefundNotifyURL string
}

// V2Client calls the WeChat Pay merchant APIv2 with the order model of
// APIv3: it has Client's Prepay, QueryByOutTradeNo, Close, CreateRefund,
// QueryRefund and ApplyAbnormalRefund, so the order actors use either.
// Requests and replies are wxpay.V2Merchant's signed XML; every reply's
// sign is verified before anything in it is believed; return_code (the
// exchange) and result_code (the business) are told apart, and refusals
// become the *wxpay.APIError an APIv3 answer would have been
// (wxpay.V2APIError), so Outcome classifies them the same way:
//
//   - a reply whose sign verifies with result_code FAIL: the translated
//     APIError (SYSTEMERROR is status 500, an unknown outcome;
//     FREQUENCY_LIMITED is 429; ORDERPAID, ORDERNOTEXIST ... are
//     definitive refusals);
//   - return_code FAIL (unsigned, a refusal before processing): the
//     APIError of wxpay.V2ReturnError;
//   - a reply whose sign is missing or wrong: ErrUnsignedResponse wrapping
//     the wxpay cause, never believed (unknown);
//   - an HTTP status other than 200 (a proxy's 502): an APIError with that
//     status wrapped with ErrUnsignedResponse (unknown);
//   - an unreadable or unexpected reply: ErrBadResponse.
//
// Refunds go to SecureBaseURL over TLS with the client certificate. A
// V2Client is safe for concurrent use; Close releases it.
type V2Client struct {
	m         *wxpay.V2Merchant
	t         *transport // /pay/*
	secure    *transport // /secapi/*; nil without a client certificate
	clientIP  string
	refundURL string
}

// NewV2 returns a V2Client for cfg (validated, zero fields defaulted) that
// signs and verifies with m. Options set the clock, the dialer and an
// Observer (reported operations: prepay, query, close, refund.create,
// refund.query).
func NewV2(cfg V2Config, m *wxpay.V2Merchant, opts ...Option) (*V2Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("wxpay client: %w: nil APIv2 merchant", ErrInvalidConfig)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("wxpay client: %w: %w", ErrInvalidConfig, err)
	}
	cfg.Config = cfg.withDefaults()
	if cfg.SecureBaseURL == "" {
		cfg.SecureBaseURL = cfg.BaseURL
	}
	if cfg.ClientIP == "" {
		cfg.ClientIP = DefaultV2ClientIP
	}
	if len(cfg.ClientIP) > 64 {
		return nil, fmt.Errorf("wxpay client: %w: ClientIP longer than 64 bytes", ErrInvalidConfig)
	}
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	c := &V2Client{m: m, clientIP: cfg.ClientIP, refundURL: cfg.RefundNotifyURL}
	c.t = newV2Transport(cfg, base, o, nil)
	if cfg.ClientCert != nil {
		sb, err := parseBaseURL(cfg.SecureBaseURL)
		if err != nil {
			return nil, fmt.Errorf("%w (SecureBaseURL)", err)
		}
		if !sb.tls {
			return nil, fmt.Errorf("wxpay client: %w: SecureBaseURL must be https: the client certificate needs TLS", ErrInvalidConfig)
		}
		c.secure = newV2Transport(cfg, sb, o, cfg.ClientCert)
	}
	return c, nil
}

func newV2Transport(cfg V2Config, base baseURL, o options, cert *tls.Certificate) *transport {
	t := newTransport(transportConfig{
		base:     base,
		timeout:  cfg.Timeout,
		maxConns: cfg.MaxConns,
		wait:     cfg.MaxConnWaitTimeout,
		maxBody:  cfg.MaxResponseBodySize,
		ua:       cfg.UserAgent,
		attempts: 1, // every APIv2 call is a POST
	}, o)
	if base.tls {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		t.hc.TLSConfig = tc
	}
	return t
}

// Close refuses new calls, waits until ctx ends for the calls in flight
// and closes idle connections; see (*Client).Close.
func (c *V2Client) Close(ctx context.Context) error {
	errs := []error{c.t.close(ctx)}
	if c.secure != nil {
		errs = append(errs, c.secure.close(ctx))
	}
	return errors.Join(errs...)
}

// Prepay creates a JSAPI order: POST /pay/unifiedorder
// (wxpay.V2Merchant.UnifiedOrder). The answer's prepay_id is valid for 2
// hours; calling again with the same parameters returns the order's
// current one.
func (c *V2Client) Prepay(ctx context.Context, req *wxpay.PrepayRequest) (wxpay.PrepayResponse, error) {
	const op = "prepay"
	body, err := c.m.UnifiedOrder(req, c.clientIP, wxpay.NewNonce())
	if err != nil {
		return wxpay.PrepayResponse{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
	}
	p, err := c.do(ctx, c.t, op, pathV2UnifiedOrder, body)
	if err != nil {
		return wxpay.PrepayResponse{}, err
	}
	r, err := wxpay.DecodeV2Prepay(p)
	if err != nil {
		return wxpay.PrepayResponse{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrBadResponse, err)
	}
	return r, nil
}

// QueryByOutTradeNo returns an order's transaction in the APIv3 model:
// POST /pay/orderquery (wxpay.DecodeV2OrderQuery). The answer must be for
// this order.
func (c *V2Client) QueryByOutTradeNo(ctx context.Context, outTradeNo string) (wxpay.Transaction, error) {
	const op = "query"
	body, err := c.m.OrderQuery(outTradeNo, wxpay.NewNonce())
	if err != nil {
		return wxpay.Transaction{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
	}
	p, err := c.do(ctx, c.t, op, pathV2OrderQuery, body)
	if err != nil {
		return wxpay.Transaction{}, err
	}
	t, err := wxpay.DecodeV2OrderQuery(p)
	if err != nil {
		return wxpay.Transaction{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrBadResponse, err)
	}
	if t.OutTradeNo != outTradeNo {
		return wxpay.Transaction{}, fmt.Errorf("wxpay client: %s: %w: answer is for another order", op, ErrBadResponse)
	}
	if t.AppID == "" {
		t.AppID = c.m.AppID
	}
	if t.MchID == "" {
		t.MchID = c.m.MchID
	}
	return t, nil
}

// CloseOrder closes an unpaid order: POST /pay/closeorder. ORDERPAID and
// ORDERCLOSED come back as the APIErrors of APIv3 (CodeOrderPaid,
// CodeOrderClosed).
func (c *V2Client) CloseOrder(ctx context.Context, outTradeNo string) error {
	const op = "close"
	body, err := c.m.CloseOrder(outTradeNo, wxpay.NewNonce())
	if err != nil {
		return fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
	}
	_, err = c.do(ctx, c.t, op, pathV2CloseOrder, body)
	return err
}

// CreateRefund asks for a refund: POST /secapi/pay/refund over TLS with the
// client certificate. Reuse OutRefundNo when retrying so WeChat refunds
// once. The refund's notify_url is V2Config.RefundNotifyURL when set. A
// successful answer means accepted: Status is PROCESSING.
func (c *V2Client) CreateRefund(ctx context.Context, req *wxpay.RefundRequest) (wxpay.Refund, error) {
	const op = "refund.create"
	if c.secure == nil {
		return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: no API client certificate configured", op, ErrInvalidRequest)
	}
	if req == nil {
		return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: nil refund request", op, ErrInvalidRequest)
	}
	r := *req
	if c.refundURL != "" {
		r.NotifyURL = c.refundURL
	}
	body, err := c.m.Refund(&r, wxpay.NewNonce())
	if err != nil {
		return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
	}
	p, err := c.do(ctx, c.secure, op, pathV2Refund, body)
	if err != nil {
		return wxpay.Refund{}, err
	}
	out, err := wxpay.DecodeV2Refund(p)
	if err != nil {
		return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrBadResponse, err)
	}
	if out.OutRefundNo != r.OutRefundNo {
		return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: answer is for another refund", op, ErrBadResponse)
	}
	return out, nil
}

// QueryRefund returns a refund by its out_refund_no: POST /pay/refundquery
// (wxpay.DecodeV2RefundQuery). REFUNDNOTEXIST is APIv3's
// RESOURCE_NOT_EXISTS.
func (c *V2Client) QueryRefund(ctx context.Context, outRefundNo string) (wxpay.Refund, error) {
	const op = "refund.query"
	body, err := c.m.RefundQuery(outRefundNo, wxpay.NewNonce())
	if err != nil {
		return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
	}
	p, err := c.do(ctx, c.t, op, pathV2RefundQuery, body)
	if err != nil {
		return wxpay.Refund{}, err
	}
	out, err := wxpay.DecodeV2RefundQuery(p, outRefundNo)
	if err != nil {
		return wxpay.Refund{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrBadResponse, err)
	}
	return out, nil
}

// ApplyAbnormalRefund has no APIv2 counterpart: an ABNORMAL (CHANGE)
// refund of an APIv2 merchant is completed in the merchant portal. It
// fails with ErrV2Unsupported without sending anything.
func (c *V2Client) ApplyAbnormalRefund(context.Context, string, *wxpay.AbnormalRefundRequest) (wxpay.Refund, error) {
	return wxpay.Refund{}, fmt.Errorf("wxpay client: refund.abnormal: %w (complete the refund in the merchant portal)", ErrV2Unsupported)
}

// do posts body to path on t and returns the reply's parameters once
// wxpay.V2Merchant.Reply accepted it; every failure is classified as the
// V2Client doc says.
func (c *V2Client) do(ctx context.Context, t *transport, op, path string, body []byte) (p map[string]string, err error) {
	start := time.Now()
	status := 0
	defer func() { t.observe(op, status, start, err) }()
	if !t.enter() {
		return nil, fmt.Errorf("wxpay client: %s: %w", op, ErrClosed)
	}
	defer t.leave()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("wxpay client: %s: %w", op, ctxError(ctx))
	}
	deadline, fromCtx := t.deadline(ctx)
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	owned := true
	defer func() {
		if owned {
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}
	}()
	req.SetRequestURI(t.base.root + path)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("text/xml; charset=utf-8")
	req.Header.Set(fasthttp.HeaderAccept, "text/xml, application/xml")
	req.Header.SetUserAgent(t.ua)
	req.SetBodyRaw(body)

	owned, err = t.roundTrip(ctx, req, resp, deadline)
	if err != nil {
		return nil, t.transportError(ctx, op, err, fromCtx)
	}
	status = resp.StatusCode()
	if status != fasthttp.StatusOK {
		// APIv2 answers everything with 200: anything else is not WeChat's
		// word (a proxy, a load balancer).
		apiErr := &wxpay.APIError{Status: status}
		return nil, fmt.Errorf("wxpay client: %s: %w (%w: HTTP %d from an APIv2 endpoint)", op, apiErr, ErrUnsignedResponse, status)
	}
	p, err = c.m.Reply(resp.Body())
	var apiErr *wxpay.APIError
	switch {
	case err == nil:
		return p, nil
	case errors.As(err, &apiErr):
		return nil, fmt.Errorf("wxpay client: %s: %w", op, err)
	case errors.Is(err, wxpay.ErrV2BadSign), errors.Is(err, wxpay.ErrV2MissingSign),
		errors.Is(err, wxpay.ErrV2UnsupportedSignType):
		return nil, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrUnsignedResponse, err)
	}
	return nil, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrBadResponse, err)
}
