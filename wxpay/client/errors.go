package client

import "errors"

// Sentinel errors. Every failure a caller branches on wraps one of these (or
// a wxpay sentinel, or both); check with errors.Is. Returned errors read
// "wxpay client: <op>: <sentinel>: <detail>" and carry the operation, HTTP
// status, WeChat's code and message, serials and request ids, never keys,
// Authorization values, app secrets or bodies.
var (
	// ErrInvalidRequest: the call was rejected before anything was sent
	// (an invalid out_trade_no or out_refund_no, a missing field, an empty
	// or oversized login code). Fix the input; retrying cannot help.
	ErrInvalidRequest = errors.New("invalid request")

	// ErrInvalidConfig: a Config or LoginConfig field is invalid, or New was
	// given a nil signer or verifier.
	ErrInvalidConfig = errors.New("invalid configuration")

	// ErrClosed: the client was shut down; nothing was sent.
	ErrClosed = errors.New("closed")

	// ErrOverloaded: every pooled connection stayed busy for
	// MaxConnWaitTimeout. Nothing was sent, so retrying later is safe.
	ErrOverloaded = errors.New("overloaded, no free connection")

	// ErrTimeout: no answer arrived before the deadline (the call's Timeout
	// or the context's deadline, whichever came first). For a POST the
	// outcome at WeChat is unknown: retry with the same out_trade_no or
	// out_refund_no (WeChat treats those idempotently) or query.
	ErrTimeout = errors.New("timeout")

	// ErrTransport: the request could not be sent or the answer could not
	// be read (dial, TLS, connection reset, malformed HTTP, an unexpected
	// HTTP status from the login API). As with ErrTimeout, the outcome of a
	// POST is unknown.
	ErrTransport = errors.New("transport failure")

	// ErrResponseTooLarge: the answer's body exceeded MaxResponseBodySize
	// and was not read.
	ErrResponseTooLarge = errors.New("response body too large")

	// ErrUnsignedResponse: an answer lacks a valid WeChat signature: the
	// Wechatpay-* headers are missing, or verification failed. The error
	// also wraps the wxpay cause (wxpay.ErrMissingHeader, ErrExpired,
	// ErrUnknownSerial, ErrBadSignature, ...). Such an answer is never
	// trusted; for a non-2xx answer the decoded *wxpay.APIError is wrapped
	// as well, as advisory information only.
	ErrUnsignedResponse = errors.New("response signature not valid")

	// ErrBadResponse: a verified answer cannot be decoded, lacks a required
	// field, or does not match the request (another order, a certificate
	// whose serial differs from serial_no).
	ErrBadResponse = errors.New("unexpected response")

	// ErrRefreshLimited: a certificate download was asked for within
	// MinRefreshInterval of the previous one; nothing was downloaded.
	ErrRefreshLimited = errors.New("certificate refresh rate-limited")
)

// jscode2session errcode sentinels; a *LoginError matches the one for its
// Code with errors.Is.
var (
	// ErrLoginBusy: errcode -1, WeChat is busy; retry after a short pause.
	ErrLoginBusy = errors.New("wxpay client: jscode2session busy (-1)")
	// ErrInvalidCode: errcode 40029, the code is invalid or expired, or was
	// issued to another AppID.
	ErrInvalidCode = errors.New("wxpay client: jscode2session invalid code (40029)")
	// ErrCodeUsed: errcode 40163, the code was already used (codes are
	// single-use).
	ErrCodeUsed = errors.New("wxpay client: jscode2session code already used (40163)")
	// ErrLoginRateLimited: errcode 45011, more than 100 logins per user per
	// minute.
	ErrLoginRateLimited = errors.New("wxpay client: jscode2session rate limited (45011)")
	// ErrHighRisk: errcode 40226, WeChat blocked a high-risk user's login.
	ErrHighRisk = errors.New("wxpay client: jscode2session high-risk user (40226)")
)

// redactedError carries a message already cleared of secrets while keeping
// the causes reachable for errors.Is and errors.As.
type redactedError struct {
	msg  string
	errs []error
}

func (e *redactedError) Error() string   { return e.msg }
func (e *redactedError) Unwrap() []error { return e.errs }
