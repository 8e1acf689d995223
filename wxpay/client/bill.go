package client

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
)

// Bill API paths, relative to Config.BaseURL.
const (
	pathTradeBill    = "/v3/bill/tradebill"
	pathFundFlowBill = "/v3/bill/fundflowbill"
)

// DefaultBillDownloadTimeout bounds a bill download (from the request to
// the last byte) when the context has no deadline: a day's bill of a busy
// merchant is hundreds of megabytes, far beyond Config.Timeout's budget.
const DefaultBillDownloadTimeout = 10 * time.Minute

// maxDownloadErrorBody bounds what is read of a failed download's answer.
const maxDownloadErrorBody = 64 << 10

// TradeBill asks for the trade bill of date (YYYY-MM-DD, a day in Beijing
// time): GET /v3/bill/tradebill?bill_date=…&bill_type=…[&tar_type=GZIP].
// billType is wxpay.BillTypeAll, BillTypeSuccess or BillTypeRefund ("" is
// ALL, WeChat's default); gzip asks for a compressed download. The answer
// is verified like any other and checked (wxpay.BillInfo.Check); its Gzip
// field records the request's gzip. Fetch the file with DownloadBill before
// download_url expires (minutes).
//
// An invalid date or type fails with ErrInvalidRequest before anything is
// sent. WeChat refuses the rest with a *wxpay.APIError: 400
// STATEMENT_CREATING before about 10:00 Beijing time of the next day (retry
// every half hour), 400 NO_STATEMENT_EXIST for a day without trades, and a
// refusal for today, a future day or one more than three months back.
func (c *Client) TradeBill(ctx context.Context, date string, billType wxpay.BillType, gzip bool) (wxpay.BillInfo, error) {
	const op = "bill.trade"
	if billType == "" {
		billType = wxpay.BillTypeAll
	}
	if _, err := wxpay.ParseBillDate(date); err != nil {
		return wxpay.BillInfo{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
	}
	if !billType.Valid() {
		return wxpay.BillInfo{}, fmt.Errorf("wxpay client: %s: %w: bill_type %.20q is not ALL, SUCCESS or REFUND", op, ErrInvalidRequest, string(billType))
	}
	return c.billInfo(ctx, op, pathTradeBill+"?bill_date="+date+"&bill_type="+string(billType), gzip)
}

// FundFlowBill asks for the fund-flow bill of date's movements in account
// (wxpay.AccountBasic, AccountOperation or AccountFees; "" is BASIC): GET
// /v3/bill/fundflowbill?bill_date=…&account_type=…[&tar_type=GZIP]. It
// behaves as TradeBill.
func (c *Client) FundFlowBill(ctx context.Context, date string, account wxpay.AccountType, gzip bool) (wxpay.BillInfo, error) {
	const op = "bill.fundflow"
	if account == "" {
		account = wxpay.AccountBasic
	}
	if _, err := wxpay.ParseBillDate(date); err != nil {
		return wxpay.BillInfo{}, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
	}
	if !account.Valid() {
		return wxpay.BillInfo{}, fmt.Errorf("wxpay client: %s: %w: account_type %.20q is not BASIC, OPERATION or FEES", op, ErrInvalidRequest, string(account))
	}
	return c.billInfo(ctx, op, pathFundFlowBill+"?bill_date="+date+"&account_type="+string(account), gzip)
}

func (c *Client) billInfo(ctx context.Context, op, path string, gzip bool) (wxpay.BillInfo, error) {
	if gzip {
		path += "&tar_type=" + wxpay.TarTypeGzip
	}
	var out wxpay.BillInfo
	err := c.do(ctx, &call{op: op, method: fasthttp.MethodGet, path: path, refresh: true,
		decode: func(_ int, _ *wxpay.Headers, b []byte) error {
			var info wxpay.BillInfo
			if json.Unmarshal(b, &info) != nil {
				return fmt.Errorf("%w: %w: bill answer", ErrBadResponse, wxpay.ErrMalformed)
			}
			if err := info.Check(); err != nil {
				return fmt.Errorf("%w: %w", ErrBadResponse, err)
			}
			info.Gzip = gzip
			out = info
			return nil
		}})
	return out, err
}

// DownloadBill fetches the bill info describes and returns it as a stream
// of the plain bill (un-gzipped when info.Gzip), to be parsed with
// wxpay.ParseTradeBill or ParseFundFlowBill as it arrives. The request is a
// GET of download_url with an Authorization header signed over its path
// and query; download_url must be on Config.BaseURL's scheme and host (the
// merchant's signature is sent nowhere else), else ErrInvalidRequest.
// WeChat does not sign the file, so the stream checks it instead: it hashes
// the plain bytes and compares them with info.HashValue at the end.
//
// Read returns the bill's bytes, then io.EOF only if the digest matched; on
// a mismatch the last Read returns an error wrapping wxpay.ErrBillDigest
// (the bill is corrupt: discard everything read from it), and so do every
// later Read and Close. Close returns nil otherwise, also when called
// before the end (then nothing was verified). Other read errors wrap
// ErrTimeout (the deadline passed), the context's error, ErrBadResponse (a
// broken gzip stream) or ErrTransport (a cut connection); a bill is
// trusted only after io.EOF.
//
// The download's deadline is the context's, or DefaultBillDownloadTimeout
// when it has none (not Config.Timeout); when the deadline passes or the
// context ends the stream is cut. The caller must Close the stream; it
// holds a pooled connection until then, or until the end of the bill or
// the deadline, and Close waits for it. A non-2xx answer is a
// *wxpay.APIError (WeChat's JSON error; wrapped with ErrUnsignedResponse
// when it does not verify). The stream is not safe for concurrent Reads;
// Close may be called from any goroutine.
func (c *Client) DownloadBill(ctx context.Context, info wxpay.BillInfo) (rc io.ReadCloser, err error) {
	const op = "bill.download"
	start := time.Now()
	status := 0
	if err := info.Check(); err != nil {
		return nil, fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
	}
	target, err := c.downloadTarget(info.DownloadURL)
	if err != nil {
		return nil, fmt.Errorf("wxpay client: %s: %w", op, err)
	}
	if !c.t.enter() {
		return nil, fmt.Errorf("wxpay client: %s: %w", op, ErrClosed)
	}
	streaming := false
	defer func() {
		if !streaming {
			c.t.observe(op, status, start, err)
			c.t.leave()
		}
	}()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("wxpay client: %s: %w", op, ctxError(ctx))
	}
	deadline, fromCtx := time.Now().Add(DefaultBillDownloadTimeout), false
	if d, ok := ctx.Deadline(); ok {
		deadline, fromCtx = d, true
	}
	auth, err := c.signer.Authorization(fasthttp.MethodGet, target, nil, c.t.now().Unix(), wxpay.NewNonce())
	if err != nil {
		return nil, fmt.Errorf("wxpay client: %s: sign request: %w", op, err)
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	owned := true
	defer func() {
		if owned && !streaming {
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}
	}()
	req.SetRequestURI(c.t.base.scheme() + "://" + c.t.base.host + target)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.Set(wxpay.HeaderAuthorization, auth)
	req.Header.SetUserAgent(c.t.ua)
	resp.StreamBody = true

	owned, err = c.t.roundTrip(ctx, req, resp, deadline)
	if err != nil {
		err = c.t.transportError(ctx, op, err, fromCtx)
		return nil, err
	}
	status = resp.StatusCode()
	body, _ := resp.BodyStream().(fasthttp.ReadCloserWithError)
	if status < 200 || status > 299 {
		return nil, c.downloadError(op, resp, body)
	}
	if body == nil { // fasthttp streams every body; should one arrive buffered, read that
		body = bufferedStream{bytes.NewReader(resp.Body())}
	}
	s := &billStream{c: c, op: op, status: status, start: start, req: req, resp: resp, body: body, ctx: ctx}
	dr, err := wxpay.NewDigestReader(&billSource{body: body, gzip: info.Gzip}, info.HashType, info.HashValue)
	if err != nil { // Check accepted the digest: unreachable
		err = fmt.Errorf("wxpay client: %s: %w: %w", op, ErrInvalidRequest, err)
		s.release(err)
		streaming = true // released above
		return nil, err
	}
	s.r = dr
	streaming = true
	s.readMu.Lock() // the callbacks may run at once; release reads the fields under readMu
	s.stopTimer = time.AfterFunc(time.Until(deadline), func() { s.abort(errDownloadDeadline) })
	s.stopCtx = context.AfterFunc(ctx, func() { s.abort(ctx.Err()) })
	s.readMu.Unlock()
	return s, nil
}

// downloadTarget checks that raw is on the API host and returns its path
// and query as they will be sent and signed.
func (c *Client) downloadTarget(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: download_url does not parse", ErrInvalidRequest)
	}
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr = strings.TrimSuffix(u.Host, ":") + ":443"
		} else {
			addr = strings.TrimSuffix(u.Host, ":") + ":80"
		}
	}
	if (u.Scheme == "https") != c.t.base.tls || !strings.EqualFold(addr, c.t.base.addr) {
		return "", fmt.Errorf("%w: download_url is not on the API host %s", ErrInvalidRequest, c.t.base.host)
	}
	return u.RequestURI(), nil
}

// downloadError reads a failed download's answer (bounded) and decodes it
// as WeChat's JSON error, verified if it is signed.
func (c *Client) downloadError(op string, resp *fasthttp.Response, body fasthttp.ReadCloserWithError) error {
	var b []byte
	if body != nil {
		b, _ = io.ReadAll(io.LimitReader(body, maxDownloadErrorBody))
	} else if b = resp.Body(); len(b) > maxDownloadErrorBody { // not streamed (Body drains a stream: never call it first)
		b = nil
	}
	h := responseHeaders(&resp.Header)
	apiErr := decodeAPIError(resp.StatusCode(), &h, b)
	if verr := c.verifier.Verify(&h, b); verr != nil {
		return fmt.Errorf("wxpay client: %s: %w (%w: %w)", op, apiErr, ErrUnsignedResponse, verr)
	}
	return fmt.Errorf("wxpay client: %s: %w", op, apiErr)
}

// scheme returns the base URL's scheme.
func (b baseURL) scheme() string {
	if b.tls {
		return "https"
	}
	return "http"
}

var errDownloadDeadline = errors.New("download deadline passed")

// billSource is the plain bill: the body, un-gzipped when asked. The gzip
// header is read at the first Read, so that waiting for it is already
// bounded by the stream's deadline and context.
type billSource struct {
	body io.Reader
	gzip bool
	gz   *gzip.Reader
}

func (b *billSource) Read(p []byte) (int, error) {
	if !b.gzip {
		return b.body.Read(p)
	}
	if b.gz == nil {
		gz, err := gzip.NewReader(b.body)
		if err != nil {
			return 0, err
		}
		b.gz = gz
	}
	return b.gz.Read(p)
}

// bufferedStream is a body fasthttp did not stream.
type bufferedStream struct{ *bytes.Reader }

func (bufferedStream) CloseWithError(error) error { return nil }

// billStream is DownloadBill's reader. Reads are serialised by readMu;
// abort (Close, the deadline timer, the context) may run concurrently: it
// cuts the connection first, which ends a blocked Read, then takes readMu
// to release the exchange once.
type billStream struct {
	c      *Client
	op     string
	status int
	start  time.Time
	ctx    context.Context
	req    *fasthttp.Request
	resp   *fasthttp.Response
	body   fasthttp.ReadCloserWithError
	r      io.Reader // digest over (gunzip over) body

	stopTimer *time.Timer
	stopCtx   func() bool

	readMu   sync.Mutex
	done     bool  // released; guarded by readMu
	err      error // the stream's final error (io.EOF at a verified end); guarded by readMu
	finished atomic.Bool
	aborted  atomic.Pointer[error] // why abort cut the stream
}

// Read reads the plain bill; see DownloadBill.
func (s *billStream) Read(p []byte) (int, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if s.done {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		s.release(nil)
		s.err = io.EOF
		return n, io.EOF
	}
	err = s.mapErr(err)
	s.release(err)
	return n, err
}

// Close ends the stream; see DownloadBill.
func (s *billStream) Close() error {
	s.abort(nil)
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if errors.Is(s.err, wxpay.ErrBillDigest) {
		return s.err
	}
	return nil
}

// abort cuts the connection (unless the stream already ended) and
// releases the exchange. why is nil for Close.
func (s *billStream) abort(why error) {
	if why == nil {
		why = errors.New("closed before the end")
	}
	s.aborted.CompareAndSwap(nil, &why)
	if !s.finished.Load() {
		_ = s.body.CloseWithError(why) // ends a blocked Read; a no-op once released
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	if !s.done {
		s.release(s.mapErr(why))
	}
}

// mapErr turns a read error into the package's errors.
func (s *billStream) mapErr(err error) error {
	if a := s.aborted.Load(); a != nil {
		err = *a
	}
	switch {
	case errors.Is(err, wxpay.ErrBillDigest):
		return fmt.Errorf("wxpay client: %s: %w", s.op, err)
	case s.ctx.Err() != nil:
		return fmt.Errorf("wxpay client: %s: %w", s.op, ctxError(s.ctx))
	case errors.Is(err, errDownloadDeadline) || isTimeout(err) || hasTimeout(err):
		// The connection's deadline is the context's or the default's: it
		// may fire just before the context's own timer.
		return fmt.Errorf("wxpay client: %s: %w: %w", s.op, ErrTimeout, err)
	case errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || isFlateError(err):
		return fmt.Errorf("wxpay client: %s: %w: gzip: %w", s.op, ErrBadResponse, err)
	}
	return &redactedError{
		msg:  "wxpay client: " + s.op + ": " + ErrTransport.Error() + ": " + err.Error(),
		errs: []error{ErrTransport, err},
	}
}

// hasTimeout reports a timeout error that is no net.Error (fasthttp's
// in-memory pipes give one).
func hasTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

func isFlateError(err error) bool {
	var ce flate.CorruptInputError
	return errors.As(err, &ce)
}

// release ends the exchange once: stops the timers, returns the connection
// (reused only after a complete read), releases the request and response,
// reports the call and leaves the transport. Caller holds readMu.
func (s *billStream) release(err error) {
	if s.done {
		return
	}
	s.done = true
	s.err = err
	s.finished.Store(true)
	if s.stopTimer != nil {
		s.stopTimer.Stop()
	}
	if s.stopCtx != nil {
		s.stopCtx()
	}
	if err != nil {
		_ = s.body.CloseWithError(err)
	}
	fasthttp.ReleaseRequest(s.req)
	fasthttp.ReleaseResponse(s.resp) // closes the body stream: the connection is pooled after a full read
	var oerr error
	if err != nil && err != io.EOF {
		oerr = err
	}
	s.c.t.observe(s.op, s.status, s.start, oerr)
	s.c.t.leave()
}
