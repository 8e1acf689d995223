package client

import (
	"fmt"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Defaults applied to a zero Config or LoginConfig field.
const (
	// DefaultBaseURL is WeChat Pay's API host.
	DefaultBaseURL = "https://api.mch.weixin.qq.com"
	// DefaultLoginBaseURL is the host of jscode2session.
	DefaultLoginBaseURL = "https://api.weixin.qq.com"
	// DefaultTimeout bounds one call, from signing to the decoded answer.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxConns bounds the connections to one host.
	DefaultMaxConns = 64
	// DefaultMaxConnWaitTimeout is how long a call waits for a free pooled
	// connection before failing with ErrOverloaded.
	DefaultMaxConnWaitTimeout = time.Second
	// DefaultMaxResponseBodySize bounds an answer's body (1 MiB).
	DefaultMaxResponseBodySize = 1 << 20
)

// Config configures a Client. The zero value is valid: every zero field
// takes its default. A Config is a plain value; it is copied by New.
type Config struct {
	// BaseURL is the API root: http or https, a host with an optional port
	// and path prefix, no query or fragment. http is allowed so that tests
	// and the local simulator can be used. Default DefaultBaseURL.
	BaseURL string
	// Timeout bounds each call (signing, sending, waiting, reading,
	// verifying); the context's deadline applies when earlier.
	// Default DefaultTimeout (10 s).
	Timeout time.Duration
	// MaxConns bounds the pooled connections to the host.
	// Default DefaultMaxConns (64).
	MaxConns int
	// MaxConnWaitTimeout is how long a call waits for a free connection when
	// MaxConns are busy; then it fails with ErrOverloaded.
	// Default DefaultMaxConnWaitTimeout (1 s).
	MaxConnWaitTimeout time.Duration
	// UserAgent is sent on every request. Default
	// "wxpayd/<version> (<GOOS>) Go/<Go version>".
	UserAgent string
	// MaxResponseBodySize bounds an answer's body, in bytes; larger answers
	// fail with ErrResponseTooLarge. Default DefaultMaxResponseBodySize (1 MiB).
	MaxResponseBodySize int
}

// Validate reports the first invalid field. Zero fields are valid.
func (c Config) Validate() error {
	if c.BaseURL != "" {
		if _, err := parseBaseURL(c.BaseURL); err != nil {
			return err
		}
	}
	return validateCommon(c.Timeout, c.MaxConns, c.MaxConnWaitTimeout, c.UserAgent, c.MaxResponseBodySize)
}

// withDefaults is the one place where Config defaults are applied.
func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
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
	if c.UserAgent == "" {
		c.UserAgent = defaultUserAgent()
	}
	if c.MaxResponseBodySize == 0 {
		c.MaxResponseBodySize = DefaultMaxResponseBodySize
	}
	return c
}

func validateCommon(timeout time.Duration, maxConns int, wait time.Duration, ua string, maxBody int) error {
	switch {
	case timeout < 0:
		return fmt.Errorf("wxpay client: %w: Timeout %v is negative", ErrInvalidConfig, timeout)
	case maxConns < 0:
		return fmt.Errorf("wxpay client: %w: MaxConns %d is negative", ErrInvalidConfig, maxConns)
	case wait < 0:
		return fmt.Errorf("wxpay client: %w: MaxConnWaitTimeout %v is negative", ErrInvalidConfig, wait)
	case strings.ContainsAny(ua, "\r\n\x00"):
		return fmt.Errorf("wxpay client: %w: UserAgent contains a control character", ErrInvalidConfig)
	case maxBody < 0:
		return fmt.Errorf("wxpay client: %w: MaxResponseBodySize %d is negative", ErrInvalidConfig, maxBody)
	}
	return nil
}

// baseURL is a parsed Config.BaseURL.
type baseURL struct {
	tls    bool
	host   string // Host header value, as given
	addr   string // host:port to dial
	prefix string // escaped path prefix without a trailing slash; part of the signed URL
	root   string // scheme://host + prefix
}

func parseBaseURL(s string) (baseURL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return baseURL{}, fmt.Errorf("wxpay client: %w: BaseURL is not a URL", ErrInvalidConfig)
	}
	var b baseURL
	switch u.Scheme {
	case "https":
		b.tls = true
	case "http":
	default:
		return baseURL{}, fmt.Errorf("wxpay client: %w: BaseURL scheme %q is not http or https", ErrInvalidConfig, u.Scheme)
	}
	switch {
	case u.Host == "" || u.Opaque != "":
		return baseURL{}, fmt.Errorf("wxpay client: %w: BaseURL has no host", ErrInvalidConfig)
	case u.User != nil:
		return baseURL{}, fmt.Errorf("wxpay client: %w: BaseURL must not carry user information", ErrInvalidConfig)
	case u.RawQuery != "" || u.ForceQuery:
		return baseURL{}, fmt.Errorf("wxpay client: %w: BaseURL must not have a query", ErrInvalidConfig)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return baseURL{}, fmt.Errorf("wxpay client: %w: BaseURL must not have a fragment", ErrInvalidConfig)
	}
	b.host = u.Host
	b.addr = u.Host
	if u.Port() == "" {
		if b.tls {
			b.addr = strings.TrimSuffix(u.Host, ":") + ":443"
		} else {
			b.addr = strings.TrimSuffix(u.Host, ":") + ":80"
		}
	}
	b.prefix = strings.TrimRight(u.EscapedPath(), "/")
	b.root = u.Scheme + "://" + u.Host + b.prefix
	return b, nil
}

const modulePath = "github.com/wxpayd/wxpayd"

// defaultUserAgent is "wxpayd/<version> (<GOOS>) Go/<Go version>"; the
// version comes from the build information ("dev" for local builds).
var defaultUserAgent = sync.OnceValue(func() string {
	v := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path == modulePath {
			v = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == modulePath {
				v = d.Version
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	return "wxpayd/" + v + " (" + runtime.GOOS + ") Go/" + strings.TrimPrefix(runtime.Version(), "go")
})
