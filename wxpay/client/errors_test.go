package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

func TestOutcome(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("wxpay client: refund.create: %w", err) }
	unsigned := func(e *wxpay.APIError) error {
		return fmt.Errorf("wxpay client: prepay: %w (%w: %w)", e, ErrUnsignedResponse, wxpay.ErrBadSignature)
	}
	for _, tc := range []struct {
		name       string
		err        error
		code       string
		definitive bool
	}{
		{"success is known", nil, "", true},
		{"a signed 400 is WeChat's refusal", wrap(&wxpay.APIError{Status: 400, Code: "INVALID_REQUEST"}), "INVALID_REQUEST", true},
		{"a signed 403 is WeChat's refusal", wrap(&wxpay.APIError{Status: 403, Code: "NO_AUTH"}), "NO_AUTH", true},
		{"a signed 429 refused this request", wrap(&wxpay.APIError{Status: 429, Code: wxpay.CodeFrequencyLimited}), wxpay.CodeFrequencyLimited, true},
		{"a signed 404 without a code is named by its status", wrap(&wxpay.APIError{Status: 404}), "HTTP_404", true},
		{"a signed 500 is unknown", wrap(&wxpay.APIError{Status: 500, Code: "SYSTEM_ERROR"}), "SYSTEM_ERROR", false},
		{"a signed 503 is unknown", wrap(&wxpay.APIError{Status: 503}), "HTTP_503", false},
		{"an unsigned 400 is unknown", unsigned(&wxpay.APIError{Status: 400, Code: "ORDER_CLOSED"}), "ORDER_CLOSED", false},
		{"an unsigned 2xx is unknown", fmt.Errorf("wxpay client: prepay: HTTP 200: %w: %w", ErrUnsignedResponse, wxpay.ErrMissingHeader), OutcomeUnsigned, false},
		{"an invalid request was not sent", wrap(fmt.Errorf("%w: out_refund_no", ErrInvalidRequest)), OutcomeNotSent, true},
		{"an overloaded pool sent nothing", wrap(ErrOverloaded), OutcomeNotSent, true},
		{"a closed client sent nothing", wrap(ErrClosed), OutcomeNotSent, true},
		{"a timeout is unknown", wrap(ErrTimeout), OutcomeTimeout, false},
		{"the context's deadline is unknown", wrap(fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded)), OutcomeTimeout, false},
		{"a bare deadline is unknown", context.DeadlineExceeded, OutcomeTimeout, false},
		{"a cancelled context is unknown", wrap(context.Canceled), OutcomeCanceled, false},
		{"a transport failure is unknown", &redactedError{msg: "x", errs: []error{ErrTransport, net.ErrClosed}}, OutcomeTransport, false},
		{"an undecodable verified answer is unknown", wrap(fmt.Errorf("%w: %w", ErrBadResponse, wxpay.ErrMalformed)), OutcomeBadResponse, false},
		{"an answer too large to read is unknown", wrap(ErrResponseTooLarge), OutcomeBadResponse, false},
		{"any other error is unknown", errors.New("disk on fire"), OutcomeUnknown, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, definitive := Outcome(tc.err)
			if code != tc.code || definitive != tc.definitive {
				t.Fatalf("Outcome(%v) = %q, %v; want %q, %v", tc.err, code, definitive, tc.code, tc.definitive)
			}
		})
	}
}

// TestOutcomeOfClientErrors classifies what the client really returns.
func TestOutcomeOfClientErrors(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := newTestClient(t, f, Config{Timeout: 300 * time.Millisecond}, nil)
	answer := func(no string, status int, body string, o answerOpts) {
		f.setRoute("POST", pathOutTradeNo+no+"/close", func(*recorded) (int, []byte, answerOpts) {
			return status, []byte(body), o
		})
	}
	answer("ORDER000401", 400, `{"code":"ORDER_CLOSED","message":"订单已关闭"}`, answerOpts{})
	answer("ORDER000402", 400, `{"code":"ORDER_CLOSED","message":"订单已关闭"}`, answerOpts{unsigned: true})
	answer("ORDER000500", 500, `{"code":"SYSTEM_ERROR","message":"系统错误"}`, answerOpts{})
	answer("ORDER000204", 204, ``, answerOpts{unsigned: true})
	f.setRoute("POST", pathOutTradeNo+"ORDER000999/close", func(*recorded) (int, []byte, answerOpts) {
		f.block()
		return 204, nil, answerOpts{}
	})
	for _, tc := range []struct {
		name       string
		no         string
		code       string
		definitive bool
	}{
		{"a signed refusal", "ORDER000401", "ORDER_CLOSED", true},
		{"an unsigned refusal", "ORDER000402", "ORDER_CLOSED", false},
		{"a system error", "ORDER000500", "SYSTEM_ERROR", false},
		{"an unsigned success", "ORDER000204", OutcomeUnsigned, false},
		{"no answer in time", "ORDER000999", OutcomeTimeout, false},
		{"an invalid out_trade_no", "bad", OutcomeNotSent, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.CloseOrder(context.Background(), tc.no)
			if code, definitive := Outcome(err); code != tc.code || definitive != tc.definitive {
				t.Fatalf("Outcome(%v) = %q, %v; want %q, %v", err, code, definitive, tc.code, tc.definitive)
			}
		})
	}
	t.Run("a client that was shut down", func(t *testing.T) {
		closed := newTestClient(t, f, Config{}, nil)
		if err := closed.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		err := closed.CloseOrder(context.Background(), "ORDER000401")
		if code, definitive := Outcome(err); code != OutcomeNotSent || !definitive {
			t.Fatalf("Outcome(%v) = %q, %v", err, code, definitive)
		}
	})
}
