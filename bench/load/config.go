package load

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/wxpayd/wxpayd/bench/sim"
)

// Scenario names.
const (
	ScenarioFlashSale   = "flash-sale"   // Buyers race for Stock units, arriving as a burst or a ramp
	ScenarioSteady      = "steady"       // a constant open-loop arrival rate of new buyers for Duration
	ScenarioNotifyStorm = "notify-storm" // payments at Rate whose notifications wxpaysim duplicates, tampers and stales
	ScenarioMixed       = "mixed"        // steady background traffic with a flash-sale burst a third of the way in
)

// Arrival modes.
const (
	ArrivalBurst = "burst" // every buyer at once when the sale opens
	ArrivalRamp  = "ramp"  // buyers spread evenly over Ramp
	ArrivalRate  = "rate"  // buyers at Rate per second
)

// Defaults, in one place. Config's zero values mean these.
const (
	DefaultTarget       = "http://127.0.0.1:8080"
	DefaultSim          = "http://127.0.0.1:9090"
	DefaultConnections  = 256
	DefaultTimeout      = 10 * time.Second
	DefaultMaxTime      = 10 * time.Minute
	DefaultRetries      = 3
	DefaultPaidTimeout  = 30 * time.Second
	DefaultPollInterval = 20 * time.Millisecond
	DefaultAuditTimeout = 90 * time.Second
	DefaultTTLGrace     = 30 * time.Second
	DefaultMaxInFlight  = 50_000
	DefaultPrice        = 100 // fen
	DefaultClickHouseDB = "wxpayd"
	DefaultTick         = time.Second
)

// Config configures one run. The zero value of a field means its default or
// the scenario's (see Defaults); Validate checks the rest. Run reads a
// Config and never writes it.
type Config struct {
	// Targets are wxpayd base URLs (default DefaultTarget). Buyer i talks to
	// Targets[i % len(Targets)].
	Targets []string
	// Sim is wxpaysim's base URL (default DefaultSim).
	Sim string
	// AdminToken is wxpayd's /admin bearer token (or read AdminTokenFile).
	AdminToken     string
	AdminTokenFile string
	// ClickHouse is ClickHouse's native address; empty skips the ClickHouse
	// audit (with a note in the report). ClickHouseDB defaults to "wxpayd".
	ClickHouse   string
	ClickHouseDB string
	// Out is the folder for results.json, report.html and summary.md
	// (empty: no files).
	Out string

	// API is the merchant API wxpayd runs, APIv3 or APIv2 (default APIv3);
	// the audit checks that every order and every wx.requestPayment
	// signature went through it (api.go).
	API string
	// Scenario is one of the Scenario* names (default flash-sale).
	Scenario string
	// Buyers is the number of flash-sale (and notify-storm) buyers (default
	// 1000).
	Buyers int
	// Stock is the flash SKU's units (0: the scenario's default: 100 for
	// flash-sale and mixed, Buyers for notify-storm, every arrival for steady).
	Stock int
	// PayShare is the share of buyers holding an order who pay (0..1;
	// negative: the scenario's default, 0.8, or 1 for notify-storm).
	PayShare float64
	// Rate is the arrival rate per second for steady, mixed's background,
	// notify-storm and ArrivalRate (default 100; 200 for notify-storm).
	Rate float64
	// Duration is how long steady and mixed arrive (default 20 s).
	Duration time.Duration
	// Connections bounds each connection pool (default DefaultConnections).
	// Every node has two pools, one for logins and prepays and one for polls
	// and the audit's reads, so a poll never queues behind prepays in the
	// generator; wxpaysim has one.
	Connections int
	// Arrival is ArrivalBurst, ArrivalRamp or ArrivalRate (default: burst for
	// flash-sale, rate for notify-storm).
	Arrival string
	// Ramp is the spread of ArrivalRamp (default 5 s).
	Ramp time.Duration
	// MaxTime bounds the whole run, audit included (default 10 min).
	MaxTime time.Duration
	// Timeout bounds one request, waiting for a connection included
	// (default 10 s).
	Timeout time.Duration
	// Retries is how often a buyer retries a prepay answered 429 or 503,
	// after its Retry-After (default 3; negative: none).
	Retries int
	// PaidTimeout is how long a buyer polls its order for PAID after paying
	// (default 30 s).
	PaidTimeout time.Duration
	// PollInterval is the first wait between polls; it doubles up to 4x
	// (default 20 ms).
	PollInterval time.Duration
	// AuditTimeout bounds the drain and the wait for ClickHouse to catch up
	// (default 90 s).
	AuditTimeout time.Duration
	// AwaitTTL makes the audit wait until every unpaid order is past its
	// TTL plus TTLGrace (within MaxTime), so "no order left PREPAID past its
	// TTL" and "reservations released" are checked for real.
	AwaitTTL bool
	// TTLGrace is how late past its TTL an unpaid order may still be open
	// (default 30 s).
	TTLGrace time.Duration
	// MaxInFlight bounds the open-loop arrivals in flight; an arrival beyond
	// it is counted as a generator error, never dropped silently (default
	// 50000).
	MaxInFlight int
	// RefundShare is the share (0..1) of paid orders the admin refunds once
	// the buyer saw PAID: half in full, half in part (10–90% of the total, at
	// least 1 fen), each through POST /admin/v1/orders/{out_trade_no}/refunds
	// with an Idempotency-Key, retried like a prepay (default 0: none).
	RefundShare float64
	// SimFaults is a wxpaysim fault SPEC (endpoint.kind=rate,..., the
	// --faults of wxpaysim serve, e.g. all.system_error=0.05,refund.lost=0.1)
	// put on the running wxpaysim through PUT /sim/v1/faults for the timed
	// window; the previous setting is restored before the audit, so wxpayd's
	// retries settle while it runs. Empty: wxpaysim's setting is left alone.
	SimFaults string
	// SimRefundOutcomes is a wxpaysim refund outcome SPEC2
	// (success=0.8,closed=0.1,abnormal=0.1, its --refund-outcomes) put on it
	// the same way. Empty: left alone.
	SimRefundOutcomes string
	// PerBuyerLimit is the SKUs' per-buyer limit (default 1; negative: none).
	PerBuyerLimit int
	// Price is the unit price in fen (default 100).
	Price int64
	// RunID names the run's SKUs and login codes (default: from the clock).
	RunID string
	// Seed makes the choice of who pays reproducible (0: from the clock).
	Seed int64
	// WatchPIDs are local processes whose CPU time the report shows (name →
	// pid), e.g. wxpayd and wxpaysim.
	WatchPIDs map[string]int
	// Progress receives the live progress lines (nil: none). ProgressTTY
	// rewrites one line in place.
	Progress    io.Writer
	ProgressTTY bool
	// Tick is the time-series resolution (default 1 s; 250 ms for
	// flash-sale and mixed, whose bursts last seconds). Progress lines are
	// printed at most once a second.
	Tick time.Duration
	// AllowRemote permits non-loopback targets (never on shared machines).
	AllowRemote bool
	// Command is the command line, recorded in the report.
	Command string
}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("load: invalid configuration")

func (c *Config) withDefaults() Config {
	d := *c
	if len(d.Targets) == 0 {
		d.Targets = []string{DefaultTarget}
	}
	d.Sim = cmp.Or(d.Sim, DefaultSim)
	d.Scenario = cmp.Or(d.Scenario, ScenarioFlashSale)
	d.API = cmp.Or(d.API, APIv3)
	d.ClickHouseDB = cmp.Or(d.ClickHouseDB, DefaultClickHouseDB)
	if d.Buyers == 0 {
		d.Buyers = 1000
	}
	if d.Rate == 0 {
		d.Rate = 100
		if d.Scenario == ScenarioNotifyStorm {
			d.Rate = 200
		}
	}
	if d.Duration == 0 {
		d.Duration = 20 * time.Second
	}
	if d.Stock == 0 {
		switch d.Scenario {
		case ScenarioNotifyStorm:
			d.Stock = d.Buyers
		case ScenarioSteady:
			d.Stock = d.arrivals()
		default:
			d.Stock = 100
		}
	}
	if d.PayShare < 0 {
		d.PayShare = 0.8
		if d.Scenario == ScenarioNotifyStorm {
			d.PayShare = 1
		}
	}
	if d.Arrival == "" {
		d.Arrival = ArrivalBurst
		if d.Scenario == ScenarioNotifyStorm {
			d.Arrival = ArrivalRate
		}
	}
	if d.Ramp == 0 {
		d.Ramp = 5 * time.Second
	}
	d.Connections = cmp.Or(d.Connections, DefaultConnections)
	d.MaxTime = cmp.Or(d.MaxTime, DefaultMaxTime)
	d.Timeout = cmp.Or(d.Timeout, DefaultTimeout)
	switch {
	case d.Retries == 0:
		d.Retries = DefaultRetries
	case d.Retries < 0:
		d.Retries = 0
	}
	d.PaidTimeout = cmp.Or(d.PaidTimeout, DefaultPaidTimeout)
	d.PollInterval = cmp.Or(d.PollInterval, DefaultPollInterval)
	d.AuditTimeout = cmp.Or(d.AuditTimeout, DefaultAuditTimeout)
	d.TTLGrace = cmp.Or(d.TTLGrace, DefaultTTLGrace)
	d.MaxInFlight = cmp.Or(d.MaxInFlight, DefaultMaxInFlight)
	switch {
	case d.PerBuyerLimit == 0:
		d.PerBuyerLimit = 1
	case d.PerBuyerLimit < 0:
		d.PerBuyerLimit = 0
	}
	if d.Price == 0 {
		d.Price = DefaultPrice
	}
	if d.RunID == "" {
		d.RunID = "wb" + strings.ToLower(fmt.Sprintf("%x", time.Now().UnixNano()/1e6))
	}
	if d.Seed == 0 {
		d.Seed = time.Now().UnixNano()
	}
	if d.Tick == 0 {
		d.Tick = DefaultTick
		if d.Scenario == ScenarioFlashSale || d.Scenario == ScenarioMixed {
			d.Tick = DefaultTick / 4 // a burst is over in seconds: finer time series
		}
	}
	return d
}

// arrivals is the number of steady (or mixed background) arrivals.
func (c *Config) arrivals() int {
	return int(c.Rate*c.Duration.Seconds() + 0.5)
}

// Validate reports the first invalid field, wrapping ErrConfig. It applies
// the defaults first.
func (c *Config) Validate() error {
	d := c.withDefaults()
	return d.validate()
}

func (d *Config) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	for _, t := range append(append([]string(nil), d.Targets...), d.Sim) {
		if err := checkURL(t, d.AllowRemote); err != nil {
			return bad("%v", err)
		}
	}
	if d.ClickHouse != "" {
		host, _, err := net.SplitHostPort(d.ClickHouse)
		if err != nil {
			return bad("--clickhouse %q: want host:port", d.ClickHouse)
		}
		if !d.AllowRemote && !loopback(host) {
			return bad("--clickhouse %q is not a loopback address", d.ClickHouse)
		}
	}
	if !validIdent(d.ClickHouseDB) {
		return bad("--clickhouse-db %q: want an identifier", d.ClickHouseDB)
	}
	if d.AdminToken == "" && d.AdminTokenFile == "" {
		return bad("--admin-token-file is required (wxpayd's WXPAYD_ADMIN_TOKEN_FILE)")
	}
	if d.API != APIv3 && d.API != APIv2 {
		return bad("--api %q: want v2 or v3", d.API)
	}
	switch d.Scenario {
	case ScenarioFlashSale, ScenarioSteady, ScenarioNotifyStorm, ScenarioMixed:
	default:
		return bad("--scenario %q: want %s, %s, %s or %s", d.Scenario,
			ScenarioFlashSale, ScenarioSteady, ScenarioNotifyStorm, ScenarioMixed)
	}
	switch d.Arrival {
	case ArrivalBurst, ArrivalRamp, ArrivalRate:
	default:
		return bad("--arrival %q: want burst, ramp or rate", d.Arrival)
	}
	switch {
	case d.Buyers < 1 || d.Buyers > 1_000_000:
		return bad("--buyers %d: want 1..1000000", d.Buyers)
	case d.Stock < 0 || d.Stock > 100_000_000:
		return bad("--stock %d: want 0..100000000", d.Stock)
	case d.PayShare > 1 || d.PayShare != d.PayShare:
		return bad("--pay-share %v: want 0..1", d.PayShare)
	case d.RefundShare < 0 || d.RefundShare > 1 || d.RefundShare != d.RefundShare:
		return bad("--refund-share %v: want 0..1", d.RefundShare)
	case d.Rate <= 0 || d.Rate > 100_000:
		return bad("--rate %v: want > 0 and <= 100000 per second", d.Rate)
	case d.Duration < 0 || d.Ramp < 0:
		return bad("--duration and --ramp must not be negative")
	case (d.Scenario == ScenarioSteady || d.Scenario == ScenarioMixed) && (d.arrivals() < 1 || d.arrivals() > 10_000_000):
		return bad("--rate x --duration = %d arrivals: want 1..10000000", d.arrivals())
	case d.Connections < 1 || d.Connections > 65_536:
		return bad("--connections %d: want 1..65536", d.Connections)
	case d.MaxTime < time.Second:
		return bad("--max-time %v: want at least 1s", d.MaxTime)
	case d.Timeout < 0 || d.PaidTimeout < 0 || d.PollInterval < 0 || d.AuditTimeout < 0 || d.TTLGrace < 0:
		return bad("durations must not be negative")
	case d.Price < 1:
		return bad("--price %d: want a positive amount in fen", d.Price)
	case len(d.RunID) > 24 || !validRunID(d.RunID):
		return bad("--run-id %q: want 1 to 24 characters of [0-9a-z]", d.RunID)
	case d.Tick < 100*time.Millisecond:
		return bad("tick %v: want at least 100ms", d.Tick)
	}
	if _, err := sim.ParseFaults(d.SimFaults); err != nil {
		return bad("--sim-faults: %v", err)
	}
	if d.SimRefundOutcomes != "" {
		if _, err := sim.ParseRefundOutcomes(d.SimRefundOutcomes); err != nil {
			return bad("--sim-refund-outcomes: %v", err)
		}
	}
	return nil
}

// adminToken returns the admin token, reading the file if needed.
func (d *Config) adminToken() (string, error) {
	if d.AdminToken != "" {
		return d.AdminToken, nil
	}
	b, err := os.ReadFile(d.AdminTokenFile)
	if err != nil {
		return "", fmt.Errorf("%w: --admin-token-file: %w", ErrConfig, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%w: --admin-token-file %s is empty", ErrConfig, d.AdminTokenFile)
	}
	return s, nil
}

func checkURL(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("%q: want http://host:port", raw)
	}
	if !allowRemote && !loopback(u.Hostname()) {
		return fmt.Errorf("%q is not a loopback address (load goes to 127.0.0.0/8 or ::1 only)", raw)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validRunID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'z') {
			return false
		}
	}
	return true
}

func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
