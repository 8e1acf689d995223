package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// MaxLoginCodeLen bounds a wx.login code accepted by Code2Session, in bytes.
const MaxLoginCodeLen = 128

// maxLoginBody bounds a jscode2session answer.
const maxLoginBody = 64 << 10

// LoginConfig configures a LoginClient. Zero fields other than AppID and
// AppSecret take their defaults. String and GoString hide AppSecret, so
// printing a LoginConfig does not leak it. A LoginConfig is a plain value,
// copied by NewLoginClient.
type LoginConfig struct {
	// BaseURL is the API root: http or https, no query. Default
	// DefaultLoginBaseURL.
	BaseURL string
	// AppID is the Mini Program's AppID. Required.
	AppID string
	// AppSecret is the Mini Program's AppSecret. Required. It is sent only
	// in the jscode2session query and never appears in errors.
	AppSecret string
	// Timeout bounds each call; the context's deadline applies when
	// earlier. Default DefaultTimeout (10 s).
	Timeout time.Duration
	// MaxConns bounds the pooled connections to the host.
	// Default DefaultMaxConns (64).
	MaxConns int
	// MaxConnWaitTimeout is how long a call waits for a free connection;
	// then it fails with ErrOverloaded. Default DefaultMaxConnWaitTimeout (1 s).
	MaxConnWaitTimeout time.Duration
}

// String describes the configuration without the AppSecret.
func (c LoginConfig) String() string {
	return fmt.Sprintf("{BaseURL:%s AppID:%s AppSecret:[redacted] Timeout:%v MaxConns:%d MaxConnWaitTimeout:%v}",
		c.BaseURL, c.AppID, c.Timeout, c.MaxConns, c.MaxConnWaitTimeout)
}

// GoString is String, for %#v.
func (c LoginConfig) GoString() string { return "client.LoginConfig" + c.String() }

// Validate reports the first invalid field; AppID and AppSecret are required.
func (c LoginConfig) Validate() error {
	if c.BaseURL != "" {
		if _, err := parseBaseURL(c.BaseURL); err != nil {
			return err
		}
	}
	switch {
	case c.AppID == "":
		return fmt.Errorf("wxpay client: %w: AppID is required", ErrInvalidConfig)
	case c.AppSecret == "":
		return fmt.Errorf("wxpay client: %w: AppSecret is required", ErrInvalidConfig)
	}
	return validateCommon(c.Timeout, c.MaxConns, c.MaxConnWaitTimeout, "", 0)
}

// withDefaults is the one place where LoginConfig defaults are applied.
func (c LoginConfig) withDefaults() LoginConfig {
	if c.BaseURL == "" {
		c.BaseURL = DefaultLoginBaseURL
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnWaitTimeout == 0 {
		c.MaxConnWaitTimeout = DefaultMaxConnWaitTimeout
	}
	return c
}

// Session is a successful jscode2session answer.
//
// SessionKey must never leave the server: it decrypts the user's data and
// signs it, so a client holding it can forge user data. It is therefore
// excluded from JSON encoding and from String. A Session is a plain value.
type Session struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"-"`
	UnionID    string `json:"unionid,omitempty"` // only when the app is bound to an Open Platform account
}

// String describes the session without the SessionKey.
func (s Session) String() string {
	return "{OpenID:" + s.OpenID + " UnionID:" + s.UnionID + " SessionKey:[redacted]}"
}

// GoString is String, for %#v.
func (s Session) GoString() string { return "client.Session" + s.String() }

// LoginError is a jscode2session errcode. It matches ErrLoginBusy (-1),
// ErrInvalidCode (40029), ErrCodeUsed (40163), ErrLoginRateLimited (45011)
// and ErrHighRisk (40226) with errors.Is. Message is WeChat's errmsg,
// bounded and cleared of the app secret. Its methods are safe for
// concurrent use.
type LoginError struct {
	Code    int
	Message string
}

// Error returns "wxpay client: jscode2session errcode N: errmsg".
func (e *LoginError) Error() string {
	return "wxpay client: jscode2session errcode " + strconv.Itoa(e.Code) + ": " + e.Message
}

// Is matches the sentinel of e's code.
func (e *LoginError) Is(target error) bool {
	switch target {
	case ErrLoginBusy:
		return e.Code == -1
	case ErrInvalidCode:
		return e.Code == 40029
	case ErrCodeUsed:
		return e.Code == 40163
	case ErrLoginRateLimited:
		return e.Code == 45011
	case ErrHighRisk:
		return e.Code == 40226
	}
	return false
}

// Retryable reports whether the same call may succeed later: busy (-1) and
// rate limited (45011). A code is single-use, so a retry needs a new code
// unless WeChat was busy.
func (e *LoginError) Retryable() bool { return e.Code == -1 || e.Code == 45011 }

// LoginClient calls jscode2session to turn a wx.login code into a session.
// It is safe for concurrent use; build one per process and share it.
type LoginClient struct {
	t      *transport
	appID  string
	secret string
}

// NewLoginClient returns a LoginClient for cfg (validated, zero fields
// defaulted). Options set the dialer and an Observer.
func NewLoginClient(cfg LoginConfig, opts ...Option) (*LoginClient, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
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
		maxBody:  maxLoginBody,
		ua:       defaultUserAgent(),
		attempts: 1, // a code is single-use: never resend it
	}, buildOptions(opts))
	secret := cfg.AppSecret
	escaped := url.QueryEscape(secret)
	t.redact = func(s string) string {
		s = strings.ReplaceAll(s, secret, "[redacted]")
		return strings.ReplaceAll(s, escaped, "[redacted]")
	}
	return &LoginClient{t: t, appID: cfg.AppID, secret: secret}, nil
}

// Close refuses new calls, waits until ctx ends for calls in flight and
// closes idle connections. It is idempotent and safe for concurrent use.
func (l *LoginClient) Close(ctx context.Context) error { return l.t.close(ctx) }

// Code2Session exchanges a wx.login code: GET
// /sns/jscode2session?appid=&secret=&js_code=&grant_type=authorization_code.
// An empty code or one longer than MaxLoginCodeLen is refused before
// sending. A non-zero errcode returns a *LoginError; an answer with an
// openid and errcode absent or 0 is success; anything else wraps
// ErrBadResponse. Codes are single-use and valid for 5 minutes.
func (l *LoginClient) Code2Session(ctx context.Context, code string) (s Session, err error) {
	const op = "jscode2session"
	if code == "" || len(code) > MaxLoginCodeLen {
		return Session{}, fmt.Errorf("wxpay client: %s: %w: code must be 1 to %d bytes, got %d", op, ErrInvalidRequest, MaxLoginCodeLen, len(code))
	}
	start := time.Now()
	status := 0
	defer func() { l.t.observe(op, status, start, err) }()
	if !l.t.enter() {
		return Session{}, fmt.Errorf("wxpay client: %s: %w", op, ErrClosed)
	}
	defer l.t.leave()
	if ctx.Err() != nil {
		return Session{}, fmt.Errorf("wxpay client: %s: %w", op, ctxError(ctx))
	}
	deadline, fromCtx := l.t.deadline(ctx)

	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	owned := true
	defer func() {
		if owned {
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}
	}()
	uri := make([]byte, 0, len(l.t.base.root)+96+len(l.appID)+3*(len(l.secret)+len(code)))
	uri = append(uri, l.t.base.root...)
	uri = append(uri, "/sns/jscode2session?appid="...)
	uri = append(uri, url.QueryEscape(l.appID)...)
	uri = append(uri, "&secret="...)
	uri = append(uri, url.QueryEscape(l.secret)...)
	uri = append(uri, "&js_code="...)
	uri = append(uri, url.QueryEscape(code)...)
	uri = append(uri, "&grant_type=authorization_code"...)
	req.SetRequestURIBytes(uri)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.Set(fasthttp.HeaderAccept, "application/json")
	req.Header.SetUserAgent(l.t.ua)

	owned, err = l.t.roundTrip(ctx, req, resp, deadline)
	if err != nil {
		return Session{}, l.t.transportError(ctx, op, err, fromCtx)
	}
	status = resp.StatusCode()
	if status != fasthttp.StatusOK {
		return Session{}, fmt.Errorf("wxpay client: %s: %w: HTTP %d", op, ErrTransport, status)
	}
	return decodeSession(resp.Body(), l.t.redact)
}

// decodeSession decodes an answer; redact clears secrets from errmsg.
func decodeSession(body []byte, redact func(string) string) (Session, error) {
	var doc struct {
		OpenID     string  `json:"openid"`
		SessionKey string  `json:"session_key"`
		UnionID    string  `json:"unionid"`
		ErrCode    *int    `json:"errcode"`
		ErrMsg     *string `json:"errmsg"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return Session{}, fmt.Errorf("wxpay client: jscode2session: %w: answer is not JSON", ErrBadResponse)
	}
	if doc.ErrCode != nil && *doc.ErrCode != 0 {
		msg := ""
		if doc.ErrMsg != nil {
			msg = clip(redact(*doc.ErrMsg), maxMessageLen)
		}
		return Session{}, &LoginError{Code: *doc.ErrCode, Message: msg}
	}
	if doc.OpenID == "" {
		return Session{}, fmt.Errorf("wxpay client: jscode2session: %w: no openid", ErrBadResponse)
	}
	return Session{OpenID: doc.OpenID, SessionKey: doc.SessionKey, UnionID: doc.UnionID}, nil
}
