package client

import (
	"time"

	"github.com/valyala/fasthttp"
)

// Observer receives one report per call when it ends: the operation
// ("prepay", "query", "close", "refund.create", "refund.query",
// "certificates", "jscode2session", "bill.trade", "bill.fundflow",
// "bill.download"), the HTTP status (0 when no answer was
// read), the call's latency and its error (nil on success). It is called
// synchronously from the calling goroutine, possibly from many goroutines at
// once: it must be safe for concurrent use and fast. (A "bill.download" is
// reported when its stream ends, from the goroutine that read, closed or
// cut it.) Calls refused before
// sending (ErrInvalidRequest) are not reported.
type Observer func(op string, status int, d time.Duration, err error)

// Option sets an optional hook of a Client or LoginClient. Options are
// applied once, by the constructor.
type Option func(*options)

type options struct {
	now      func() time.Time
	dial     fasthttp.DialFunc
	observer Observer
}

func buildOptions(opts []Option) options {
	o := options{now: time.Now}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// WithClock sets the clock used for signing timestamps, for choosing the
// newest platform key and for the certificate refresh rate limit
// (default time.Now). Response freshness is checked by the wxpay.Verifier's
// own clock.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithDial sets the function that opens connections to the host (default:
// fasthttp's TCP dialer, bounded by the call's deadline). Tests pass an
// in-memory listener's Dial.
func WithDial(dial fasthttp.DialFunc) Option {
	return func(o *options) { o.dial = dial }
}

// WithObserver sets a per-call latency hook (default none).
func WithObserver(obs Observer) Option {
	return func(o *options) { o.observer = obs }
}
