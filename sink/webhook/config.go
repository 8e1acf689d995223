package webhook

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
const (
	DefaultTimeout      = 5 * time.Second
	DefaultConcurrency  = 16
	DefaultMaxBuffered  = 8192
	DefaultPageSize     = 256
	DefaultMinBackoff   = 5 * time.Second
	DefaultMaxBackoff   = time.Hour
	DefaultRetryFor     = 24 * time.Hour
	DefaultPollInterval = time.Second
	// MinSecretLen is the shortest secret accepted.
	MinSecretLen = 16
)

// Config configures a Deliverer. The zero value, with URL and Secret set,
// is the default.
type Config struct {
	// URL is the shop's endpoint, http:// or https://. Required.
	URL string
	// Secret signs every delivery (HMAC-SHA256; at least MinSecretLen
	// bytes). Required.
	Secret []byte
	// Timeout bounds one attempt: connecting, sending, and the answer's
	// status and body (default 5 s).
	Timeout time.Duration
	// Concurrency is the most attempts in flight, each for a different
	// order (default 16).
	Concurrency int
	// MaxBuffered is the most queued entries held in memory (default
	// 8192, a few MiB); the rest wait in the store until there is room.
	MaxBuffered int
	// PageSize is the most entries read from the store at once (default
	// 256).
	PageSize int
	// MinBackoff and MaxBackoff bound the delay after a failed attempt:
	// the n-th failure waits a random time between half and all of
	// min(MinBackoff·2^(n-1), MaxBackoff) (defaults 5 s and 1 h).
	MinBackoff, MaxBackoff time.Duration
	// RetryFor is how long an entry is retried, from its first attempt,
	// before the next failure parks it (default 24 h).
	RetryFor time.Duration
	// PollInterval is how often the queue is looked at when no commit
	// woke the deliverer and nothing is due sooner (default 1 s).
	PollInterval time.Duration
	// Now is the clock (default time.Now): schedules and signature
	// timestamps.
	Now func() time.Time
	// Logger receives failures (default slog.Default()).
	Logger *slog.Logger
	// Registerer, when set, gets the deliverer's metrics.
	Registerer prometheus.Registerer
}

// Validate checks the configuration.
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return fmt.Errorf("%w: URL is required", ErrConfig)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Fragment != "":
		return fmt.Errorf("%w: URL must be an http:// or https:// URL", ErrConfig)
	case len(c.Secret) < MinSecretLen:
		return fmt.Errorf("%w: Secret must be at least %d bytes", ErrConfig, MinSecretLen)
	case c.Timeout < 0, c.Concurrency < 0, c.MaxBuffered < 0, c.PageSize < 0, c.MinBackoff < 0, c.MaxBackoff < 0,
		c.RetryFor < 0, c.PollInterval < 0:
		return fmt.Errorf("%w: durations and sizes must not be negative", ErrConfig)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = DefaultMaxBuffered
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	c.PageSize = min(c.PageSize, c.MaxBuffered)
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.RetryFor == 0 {
		c.RetryFor = DefaultRetryFor
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
