package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// transport is the fasthttp plumbing shared by Client and LoginClient: one
// bounded HostClient, deadlines, context cancellation, error mapping and the
// count of calls and goroutines in flight that Close waits for.
type transport struct {
	hc       *fasthttp.HostClient
	base     baseURL
	timeout  time.Duration
	ua       string
	now      func() time.Time
	observer Observer
	// redact clears secrets from transport error text (nil: nothing to clear).
	redact func(string) string

	mu     sync.Mutex // guards closed and orders wg.Add before wg.Wait
	closed bool
	wg     sync.WaitGroup // calls and goroutines in flight
}

type transportConfig struct {
	base     baseURL
	timeout  time.Duration
	maxConns int
	wait     time.Duration
	maxBody  int
	ua       string
	attempts int // fasthttp attempts for idempotent (GET) requests
}

func newTransport(tc transportConfig, o options) *transport {
	hc := &fasthttp.HostClient{
		Addr:                      tc.base.addr,
		IsTLS:                     tc.base.tls,
		Dial:                      o.dial,
		MaxConns:                  tc.maxConns,
		MaxConnWaitTimeout:        tc.wait,
		MaxResponseBodySize:       tc.maxBody,
		MaxIdemponentCallAttempts: tc.attempts,
		Name:                      tc.ua,
		NoDefaultUserAgentHeader:  true,
		// The URL is signed exactly as built; fasthttp must send it as is.
		DisablePathNormalizing: true,
		// Keep response bytes out of fasthttp's parse errors.
		SecureErrorLogMessage: true,
	}
	if tc.base.tls {
		hc.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &transport{
		hc:       hc,
		base:     tc.base,
		timeout:  tc.timeout,
		ua:       tc.ua,
		now:      o.now,
		observer: o.observer,
	}
}

// enter counts a call in; it fails once Close has started.
func (t *transport) enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

func (t *transport) leave() { t.wg.Done() }

// spawn runs fn in a counted goroutine; false once Close has started.
func (t *transport) spawn(fn func()) bool {
	if !t.enter() {
		return false
	}
	go func() {
		defer t.leave()
		fn()
	}()
	return true
}

// close refuses new calls, closes idle connections and waits for calls and
// goroutines in flight until ctx ends.
func (t *transport) close(ctx context.Context) error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	done := make(chan struct{})
	go func() { // not counted: it only waits for the counted ones
		t.wg.Wait()
		close(done)
	}()
	defer t.hc.CloseIdleConnections()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wxpay client: shutdown: %w", ctx.Err())
	}
}

// deadline is the earlier of now+Timeout and ctx's deadline; fromCtx
// tells which one it is.
func (t *transport) deadline(ctx context.Context) (d time.Time, fromCtx bool) {
	d = time.Now().Add(t.timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd, true
	}
	return d, false
}

// exchange is one request in flight. When the caller leaves early (its
// context ended) the goroutine still running the request releases req and
// resp; otherwise the caller does. left decides who was last.
type exchange struct {
	req  *fasthttp.Request
	resp *fasthttp.Response
	err  error
	done chan struct{}
	left atomic.Bool
}

// roundTrip sends req and reads resp until deadline. A context that cannot
// be cancelled runs on the caller's goroutine. Otherwise the request runs in
// a counted goroutine so that a cancelled ctx returns at once: then
// owned is false and req and resp belong to that goroutine, which releases
// them when fasthttp returns (by the deadline at the latest).
func (t *transport) roundTrip(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) (owned bool, err error) {
	if ctx.Done() == nil {
		return true, t.hc.DoDeadline(req, resp, deadline)
	}
	x := &exchange{req: req, resp: resp, done: make(chan struct{})}
	t.wg.Add(1) // the caller is counted, so the counter is positive here
	go func() {
		defer t.wg.Done()
		x.err = t.hc.DoDeadline(x.req, x.resp, deadline)
		close(x.done)
		if x.left.Swap(true) { // the caller has gone
			fasthttp.ReleaseRequest(x.req)
			fasthttp.ReleaseResponse(x.resp)
		}
	}()
	select {
	case <-x.done:
		return true, x.err
	case <-ctx.Done():
		if x.left.Swap(true) { // finished meanwhile: the caller still owns them
			<-x.done
			return true, ctxError(ctx)
		}
		return false, ctxError(ctx)
	}
}

// ctxError wraps ctx.Err(), and ErrTimeout too when the deadline passed.
func ctxError(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// transportError maps a fasthttp error to the package's sentinels.
// fromCtx says the deadline was the context's.
func (t *transport) transportError(ctx context.Context, op string, err error, fromCtx bool) error {
	if ctx.Err() != nil { // the context ended: report that, not fasthttp's view
		return fmt.Errorf("wxpay client: %s: %w", op, ctxError(ctx))
	}
	switch {
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return fmt.Errorf("wxpay client: %s: %w (%d connections busy)", op, ErrOverloaded, t.hc.MaxConns)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fmt.Errorf("wxpay client: %s: %w (limit %d bytes)", op, ErrResponseTooLarge, t.hc.MaxResponseBodySize)
	case isTimeout(err) && fromCtx:
		// fasthttp's timer may fire just before the context's.
		return fmt.Errorf("wxpay client: %s: %w: %w", op, ErrTimeout, context.DeadlineExceeded)
	case isTimeout(err):
		return fmt.Errorf("wxpay client: %s: %w after %v", op, ErrTimeout, t.timeout)
	}
	msg := err.Error()
	if t.redact != nil {
		msg = t.redact(msg)
	}
	return &redactedError{
		msg:  "wxpay client: " + op + ": " + ErrTransport.Error() + ": " + msg,
		errs: []error{ErrTransport, err},
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) ||
		errors.Is(err, fasthttp.ErrTLSHandshakeTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// observe reports a finished call to the observer, if any.
func (t *transport) observe(op string, status int, start time.Time, err error) {
	if t.observer != nil {
		t.observer(op, status, time.Since(start), err)
	}
}
