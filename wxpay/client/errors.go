package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/wxpayd/wxpayd/wxpay"
)

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

	// ErrV2Unsupported: the call has no APIv2 counterpart (V2Client's
	// ApplyAbnormalRefund); nothing was sent. It wraps ErrInvalidRequest,
	// so Outcome calls it definitive (OutcomeNotSent).
	ErrV2Unsupported = fmt.Errorf("%w: not available in APIv2", ErrInvalidRequest)
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

// Codes Outcome gives errors that carry no WeChat code.
const (
	// OutcomeNotSent: the call was refused before anything was sent
	// (ErrInvalidRequest, ErrOverloaded, ErrClosed).
	OutcomeNotSent = "NOT_SENT"
	// OutcomeTimeout: no answer before the deadline (ErrTimeout).
	OutcomeTimeout = "TIMEOUT"
	// OutcomeCanceled: the caller's context was cancelled.
	OutcomeCanceled = "CANCELED"
	// OutcomeTransport: the request or its answer was lost (ErrTransport).
	OutcomeTransport = "TRANSPORT"
	// OutcomeUnsigned: a 2xx answer without a valid WeChat signature
	// (ErrUnsignedResponse).
	OutcomeUnsigned = "UNSIGNED"
	// OutcomeBadResponse: a verified 2xx answer that could not be used
	// (ErrBadResponse), or an answer too large to read
	// (ErrResponseTooLarge).
	OutcomeBadResponse = "BAD_RESPONSE"
	// OutcomeUnknown: an error this package does not produce.
	OutcomeUnknown = "UNKNOWN"
)

// Outcome tells, for an error returned by a Client call, a definitive
// answer from an unknown outcome: whether the caller may act as if the
// request did not take effect at WeChat (fail an order, give stock back),
// or must assume it may have (retry with the same out_trade_no or
// out_refund_no, which WeChat treats idempotently, or query).
//
// definitive is true for:
//   - nil: the call succeeded; code is empty.
//   - a WeChat refusal: a *wxpay.APIError whose answer verified, with an
//     HTTP status below 500. code is WeChat's (ORDER_CLOSED, NO_AUTH,
//     FREQUENCY_LIMITED, ...; "HTTP_<status>" when the answer had none).
//     FREQUENCY_LIMITED refused this request, yet the same request may
//     succeed later.
//   - nothing sent: ErrInvalidRequest, ErrOverloaded or ErrClosed; code
//     OutcomeNotSent.
//
// Everything else is unknown (definitive false): an answer that did not
// verify, even a 4xx (WeChat's unverified code, or OutcomeUnsigned for a
// 2xx); a status of 500 or more (WeChat's code, e.g. SYSTEM_ERROR); a
// timeout (OutcomeTimeout) or a cancelled context (OutcomeCanceled), which
// may end a call after its request left; a transport failure
// (OutcomeTransport); a verified 2xx answer that could not be used
// (OutcomeBadResponse); and any other error (OutcomeUnknown).
func Outcome(err error) (code string, definitive bool) {
	if err == nil {
		return "", true
	}
	var we *wxpay.APIError
	if errors.As(err, &we) {
		code = we.Code
		if code == "" {
			code = "HTTP_" + strconv.Itoa(we.Status)
		}
		return code, we.Status < 500 && !errors.Is(err, ErrUnsignedResponse)
	}
	switch {
	case errors.Is(err, ErrInvalidRequest), errors.Is(err, ErrOverloaded), errors.Is(err, ErrClosed):
		return OutcomeNotSent, true
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout, false
	case errors.Is(err, context.Canceled):
		return OutcomeCanceled, false
	case errors.Is(err, ErrUnsignedResponse):
		return OutcomeUnsigned, false
	case errors.Is(err, ErrBadResponse), errors.Is(err, ErrResponseTooLarge):
		return OutcomeBadResponse, false
	case errors.Is(err, ErrTransport):
		return OutcomeTransport, false
	}
	return OutcomeUnknown, false
}

// redactedError carries a message already cleared of secrets while keeping
// the causes reachable for errors.Is and errors.As.
type redactedError struct {
	msg  string
	errs []error
}

func (e *redactedError) Error() string   { return e.msg }
func (e *redactedError) Unwrap() []error { return e.errs }
