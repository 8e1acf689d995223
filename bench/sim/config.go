package sim

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

// Signing modes: which of WeChat's keys signs answers and notifications.
const (
	// ModePublicKey signs with the WeChat Pay public key's private half,
	// Wechatpay-Serial PUB_KEY_ID_... (new merchants; the default).
	ModePublicKey = "publickey"
	// ModeCertificate signs with the platform certificate's key,
	// Wechatpay-Serial = the certificate serial (older merchants).
	ModeCertificate = "certificate"
	// ModeMixed is WeChat's 7-day migration: an API answer is signed with
	// the public key when the request's Wechatpay-Serial names its id
	// (PUB_KEY_ID_...), else with the certificate; notifications switch over
	// gradually, a share MixedPublicKeyShare of them signed with the public
	// key and the rest with the certificate.
	ModeMixed = "mixed"
)

// Defaults, in one place. Config's zero values mean these.
const (
	DefaultListen        = "127.0.0.1:9090"
	DefaultSigningMode   = ModePublicKey
	DefaultRateLimit     = 600 // prepay requests per second per mchid
	DefaultMaxOrders     = 2_000_000
	DefaultMaxPending    = 200_000 // scheduled notification deliveries and refund completions
	DefaultNotifyWorkers = 64
	DefaultNotifyTimeout = 5 * time.Second // WeChat waits 5 s for a 2xx
	DefaultRefundDelay   = time.Second
	DefaultMixedShare    = 0.5
	DefaultMaxLoginCodes = 1_000_000
	DefaultRequestWindow = 5 * time.Minute // skew allowed on merchant timestamps
	DefaultPrepayTTL     = 2 * time.Hour   // validity of a prepay_id
	DefaultOrderTTL      = 7 * 24 * time.Hour
	MaxOrderTTL          = 90 * 24 * time.Hour
	MinOrderTTL          = time.Minute
	DefaultStaleAge      = 10 * time.Minute // age of the timestamp on stale copies
	DefaultDupDelay      = time.Second      // spacing of delayed duplicate copies
	DefaultSlowDelay     = 12 * time.Second // slow faults: longer than wxpayd's call timeouts
	MaxSlowDelay         = 10 * time.Minute
	// DefaultBillReadyAfter is when a day's bills can be had, after the end
	// of the day in Beijing time: WeChat generates them by about 10:00.
	DefaultBillReadyAfter = 10 * time.Hour
	MaxBillReadyAfter     = 48 * time.Hour
)

// BillReadyNow makes a day's bills available as soon as the day has ended
// (Config.BillReadyAfter; the --bill-ready-after 0 of the command line), so
// tests can ask for yesterday's bill at any hour.
const BillReadyNow time.Duration = -1

// RateLimitOff disables the prepay rate limit (the --rate-limit 0 of the
// command line).
const RateLimitOff = -1

// RetrySchedule is WeChat's notification retry schedule: the wait after the
// first failed delivery, then after each later one. After the last a
// notification is given up (15 retries, 16 deliveries, about 24 h 4 m).
var RetrySchedule = [...]time.Duration{
	15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute,
	10 * time.Minute, 20 * time.Minute, 30 * time.Minute, 30 * time.Minute,
	30 * time.Minute, 60 * time.Minute, 3 * time.Hour, 3 * time.Hour,
	3 * time.Hour, 6 * time.Hour, 6 * time.Hour,
}

// Config configures a simulator. The zero value of every field means its
// default; Validate checks the rest. A Config is read once by New.
type Config struct {
	// KeysDir is the directory keygen wrote (sim.json and the key files).
	// Required unless Identity is set.
	KeysDir string
	// Identity, if set, is used instead of loading KeysDir (tests, benchmarks).
	Identity *Identity
	// Listen is the TCP address to serve on (default DefaultListen; port 0
	// picks a free port, see Server.Addr).
	Listen string
	// TLSListen is the address of the TLS listener that serves APIv2's
	// /secapi/ (client certificates issued by the identity's CA required);
	// the same handler answers every other path there too. TLSListenOff
	// disables it. Default: the address keygen wrote (Identity.TLSAddr,
	// DefaultTLSListen unless --sim-tls-addr said otherwise), where a
	// failure to listen (the port is busy) is logged and leaves the TLS
	// listener off; for an identity without one, a free port on Listen's
	// host (see Server.TLSAddr). A TLSListen that is set must listen.
	TLSListen string
	// Latency is added to every WeChat API answer (not to /sim/ answers).
	Latency time.Duration
	// SigningMode is ModePublicKey (default), ModeCertificate or ModeMixed.
	SigningMode string
	// MixedPublicKeyShare is, in ModeMixed, the share of notifications
	// signed with the public key (0..1; default 0.5). API answers do not
	// use it: they follow the request's Wechatpay-Serial.
	MixedPublicKeyShare float64
	// RateLimit is the prepay rate per mchid per second beyond which prepay
	// answers 429 FREQUENCY_LIMITED (default DefaultRateLimit; RateLimitOff
	// disables it). The bucket holds one second's worth.
	RateLimit int
	// NotifySpeedup divides the retry schedule, the refund delay and the
	// duplicate spacing (default 1; 60 makes 15 s into 250 ms).
	NotifySpeedup float64
	// DupRate is the probability (0..1) that a notification gets an extra,
	// correctly signed copy: half at once, half DefaultDupDelay later.
	DupRate float64
	// TamperRate is the probability that a notification gets an extra copy
	// whose Wechatpay-Signature starts with WECHATPAY/SIGNTEST/.
	TamperRate float64
	// StaleRate is the probability that a notification gets an extra copy
	// signed with a timestamp DefaultStaleAge old.
	StaleRate float64
	// DropRate is the probability that a WeChat API request is processed
	// but its answer is lost (the connection is closed without a reply).
	DropRate float64
	// Faults is the --faults SPEC of API faults per endpoint (see
	// ParseFaults; default none). PUT /sim/v1/faults replaces it at run time.
	Faults string
	// SlowDelay is how long a slow fault delays its answer (default
	// DefaultSlowDelay, at most MaxSlowDelay; not divided by NotifySpeedup).
	SlowDelay time.Duration
	// RefundOutcomes is the --refund-outcomes SPEC2 of how refunds end (see
	// ParseRefundOutcomes; default DefaultRefundOutcomes). PUT
	// /sim/v1/faults replaces it at run time.
	RefundOutcomes string
	// MaxOrders bounds the orders kept (default DefaultMaxOrders); a prepay
	// beyond it answers 503 SYSTEM_ERROR.
	MaxOrders int
	// MaxPending bounds scheduled deliveries and refund completions (default
	// DefaultMaxPending); a payment or refund beyond it answers 503.
	MaxPending int
	// NotifyWorkers is the number of concurrent notification deliveries
	// (default DefaultNotifyWorkers).
	NotifyWorkers int
	// NotifyTimeout is how long a delivery waits for the merchant's answer
	// (default DefaultNotifyTimeout, WeChat's 5 s).
	NotifyTimeout time.Duration
	// RefundDelay is how long a refund stays PROCESSING before it ends
	// (SUCCESS, CLOSED or ABNORMAL, see RefundOutcomes) and is notified
	// (default DefaultRefundDelay, divided by NotifySpeedup).
	RefundDelay time.Duration
	// MaxLoginCodes bounds the remembered jscode2session codes (default
	// DefaultMaxLoginCodes).
	MaxLoginCodes int
	// Backend signs and verifies (default wxpay.GoBackend; the command
	// chooses OpenSSL when it loads).
	Backend wxpay.Backend
	// Clock is the time source (default the system clock). Tests pass a
	// FakeClock to drive the retry schedule and code expiry.
	Clock Clock
	// Logger receives start, stop and delivery-failure logs (default
	// slog.Default()).
	Logger *slog.Logger
	// BillReadyAfter is how long after the end of a day (Beijing time) its
	// bills can be requested; before that the bill APIs answer 400
	// STATEMENT_CREATING (default DefaultBillReadyAfter, 10 h; BillReadyNow
	// or any negative value: at once; at most MaxBillReadyAfter).
	BillReadyAfter time.Duration
	// Seed, if non-zero, makes fault injection, refund outcomes and
	// mixed-mode choices reproducible (as far as the order of concurrent
	// requests allows).
	Seed uint64
}

func (c *Config) listen() string      { return cmp.Or(c.Listen, DefaultListen) }
func (c *Config) signingMode() string { return cmp.Or(c.SigningMode, DefaultSigningMode) }
func (c *Config) maxOrders() int      { return cmp.Or(c.MaxOrders, DefaultMaxOrders) }
func (c *Config) maxPending() int     { return cmp.Or(c.MaxPending, DefaultMaxPending) }
func (c *Config) notifyWorkers() int  { return cmp.Or(c.NotifyWorkers, DefaultNotifyWorkers) }
func (c *Config) maxLoginCodes() int  { return cmp.Or(c.MaxLoginCodes, DefaultMaxLoginCodes) }
func (c *Config) notifyTimeout() time.Duration {
	return cmp.Or(c.NotifyTimeout, DefaultNotifyTimeout)
}
func (c *Config) slowDelay() time.Duration { return cmp.Or(c.SlowDelay, DefaultSlowDelay) }

func (c *Config) billReadyAfter() time.Duration {
	switch {
	case c.BillReadyAfter == 0:
		return DefaultBillReadyAfter
	case c.BillReadyAfter < 0:
		return 0
	}
	return c.BillReadyAfter
}

func (c *Config) rateLimit() int {
	switch {
	case c.RateLimit == 0:
		return DefaultRateLimit
	case c.RateLimit < 0:
		return 0
	}
	return c.RateLimit
}

func (c *Config) speedup() float64 {
	if c.NotifySpeedup == 0 {
		return 1
	}
	return c.NotifySpeedup
}

func (c *Config) mixedShare() float64 {
	if c.MixedPublicKeyShare == 0 {
		return DefaultMixedShare
	}
	return c.MixedPublicKeyShare
}

// scaled divides d by the speedup.
func (c *Config) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.speedup())
}

func (c *Config) refundDelay() time.Duration {
	return c.scaled(cmp.Or(c.RefundDelay, DefaultRefundDelay))
}

func (c *Config) backend() wxpay.Backend {
	if c.Backend == nil {
		return wxpay.GoBackend
	}
	return c.Backend
}

func (c *Config) clock() Clock {
	if c.Clock == nil {
		return SystemClock
	}
	return c.Clock
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// Validate reports the first invalid field, wrapping ErrConfig.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	if c.KeysDir == "" && c.Identity == nil {
		return bad("--keys-dir is required (run wxpaysim keygen --dir DIR first)")
	}
	if _, _, err := net.SplitHostPort(c.listen()); err != nil {
		return bad("--listen %q: %v", c.Listen, err)
	}
	if c.TLSListen != "" && c.TLSListen != TLSListenOff {
		if _, _, err := net.SplitHostPort(c.TLSListen); err != nil {
			return bad("--tls-listen %q: %v", c.TLSListen, err)
		}
	}
	switch c.signingMode() {
	case ModePublicKey, ModeCertificate, ModeMixed:
	default:
		return bad("--signing-mode %q: want %s, %s or %s", c.SigningMode, ModePublicKey, ModeCertificate, ModeMixed)
	}
	if c.Latency < 0 || c.Latency > time.Minute {
		return bad("--latency %v: want 0..1m", c.Latency)
	}
	if c.RateLimit < RateLimitOff {
		return bad("--rate-limit %d: want >= 0", c.RateLimit)
	}
	if c.NotifySpeedup < 0 || c.NotifySpeedup > 1e6 {
		return bad("--notify-speedup %v: want > 0 and <= 1e6", c.NotifySpeedup)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{
		{"--dup-rate", c.DupRate}, {"--tamper-rate", c.TamperRate}, {"--stale-rate", c.StaleRate},
		{"--drop-rate", c.DropRate}, {"--mixed-share", c.MixedPublicKeyShare},
	} {
		if r.v < 0 || r.v > 1 || r.v != r.v {
			return bad("%s %v: want a probability in [0, 1]", r.name, r.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"--max-orders", c.MaxOrders}, {"--max-pending", c.MaxPending},
		{"--notify-workers", c.NotifyWorkers}, {"--max-login-codes", c.MaxLoginCodes},
	} {
		if n.v < 0 {
			return bad("%s %d: want >= 0", n.name, n.v)
		}
	}
	if c.NotifyWorkers > 10_000 {
		return bad("--notify-workers %d: want <= 10000", c.NotifyWorkers)
	}
	if c.NotifyTimeout < 0 || c.RefundDelay < 0 {
		return bad("--notify-timeout and --refund-delay must not be negative")
	}
	if c.SlowDelay < 0 || c.SlowDelay > MaxSlowDelay {
		return bad("--slow-delay %v: want 0..%v", c.SlowDelay, MaxSlowDelay)
	}
	if c.BillReadyAfter > MaxBillReadyAfter {
		return bad("--bill-ready-after %v: want at most %v", c.BillReadyAfter, MaxBillReadyAfter)
	}
	if _, err := ParseFaults(c.Faults); err != nil {
		return fmt.Errorf("%w: --faults: %w", ErrConfig, err)
	}
	if _, err := ParseRefundOutcomes(c.RefundOutcomes); err != nil {
		return fmt.Errorf("%w: --refund-outcomes: %w", ErrConfig, err)
	}
	return nil
}
