package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/wxpay"
)

// Defaults and bounds of Config.
const (
	DefaultAt          = 10*time.Hour + 30*time.Minute
	DefaultCatchUpDays = 7
	// MaxDays is how far back a date may be reconciled: WeChat keeps
	// bills for three months.
	MaxDays = 90
	// DefaultRetryAfter is the wait after WeChat said the bill is being
	// generated (its FAQ: retry every half hour).
	DefaultRetryAfter = 30 * time.Minute
	// DefaultRepairWorkers bounds the repairs in flight.
	DefaultRepairWorkers = 4
	// DefaultLoadBatch is the bill rows of one Loader.LoadBill call.
	DefaultLoadBatch = 50_000
)

// WeChat is the part of the WeChat Pay client a reconciliation calls.
// *client.Client implements it.
type WeChat interface {
	TradeBill(ctx context.Context, date string, billType wxpay.BillType, gzip bool) (wxpay.BillInfo, error)
	DownloadBill(ctx context.Context, info wxpay.BillInfo) (io.ReadCloser, error)
	QueryByOutTradeNo(ctx context.Context, outTradeNo string) (wxpay.Transaction, error)
	QueryRefund(ctx context.Context, outRefundNo string) (wxpay.Refund, error)
}

// Orders carries repairs to the order actors: *actors.System, or the
// cluster's router (ingress.Router).
type Orders interface {
	Request(ctx context.Context, msg actors.OrderMessage) (actors.Reply, error)
}

// Loader loads a reconciliation's results into an analytics store
// (ClickHouse: sink/clickhouse.BillLoader through cmd/wxpayd). Loading the
// same rows again must change nothing. Nil: nothing is loaded.
type Loader interface {
	// LoadBill loads rows of date's trade bill (a batch; called until every
	// row is loaded). The rows are owned by the caller after the call.
	LoadBill(ctx context.Context, date string, rows []wxpay.TradeBillRow) error
	// LoadDiscrepancies loads every discrepancy of date as it stands.
	LoadDiscrepancies(ctx context.Context, date string, ds []Discrepancy) error
}

// Config configures a Reconciler. The zero value takes the defaults.
type Config struct {
	// At is the Beijing time of day after which the previous day's bill is
	// reconciled (default 10:30; WeChat generates bills from about 10:00).
	At time.Duration
	// CatchUpDays is how many days back, yesterday included, the job
	// reconciles every day that has no finished reconciliation: on start
	// (days missed while down) and every day (default 7, at most MaxDays).
	CatchUpDays int
	// Skip reports the out_trade_no of bill rows this node does not
	// reconcile: another node's shard (cluster mode). Nil skips none. A
	// row not skipped whose order this store lacks is an unknown_order
	// discrepancy (another system's order).
	Skip func(outTradeNo string) bool
	// Plain downloads the bill uncompressed (default: gzip).
	Plain bool
	// RetryAfter is the wait before asking again for a bill WeChat is
	// still generating (default DefaultRetryAfter); other failures back
	// off from 1 minute to RetryAfter.
	RetryAfter time.Duration
	// RepairWorkers bounds the repairs in flight (default 4).
	RepairWorkers int
	// RepairTimeout bounds one repair, the order's WeChat query included
	// (default 30 s).
	RepairTimeout time.Duration
	// LoadBatch is the bill rows per Loader.LoadBill (default 50000).
	LoadBatch int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Registerer registers the wxpayd_reconcile_* metrics (nil: none).
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.At == 0 {
		c.At = DefaultAt
	}
	if c.CatchUpDays == 0 {
		c.CatchUpDays = DefaultCatchUpDays
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.RepairWorkers <= 0 {
		c.RepairWorkers = DefaultRepairWorkers
	}
	if c.RepairTimeout <= 0 {
		c.RepairTimeout = 30 * time.Second
	}
	if c.LoadBatch <= 0 {
		c.LoadBatch = DefaultLoadBatch
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.At < 0 || c.At >= 24*time.Hour:
		return fmt.Errorf("reconcile: At %s is not a time of day", c.At)
	case c.CatchUpDays < 1 || c.CatchUpDays > MaxDays:
		return fmt.Errorf("reconcile: CatchUpDays %d: want 1 to %d", c.CatchUpDays, MaxDays)
	}
	return nil
}

// ParseTimeOfDay parses "HH:MM" (24-hour) into the time since midnight.
func ParseTimeOfDay(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, errors.New("want HH:MM, 24-hour")
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}
