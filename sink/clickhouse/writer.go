package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/wxpayd/wxpayd/actors/event"
)

// Dial opens a native-protocol connection pool to cfg.Addr with cfg.Database
// as the default database (which must exist; Open creates it). Pass
// database "" to connect to "default".
func Dial(cfg Config, database string) (driver.Conn, error) {
	cfg = cfg.withDefaults()
	if database == "" {
		database = "default"
	}
	conn, err := ch.Open(&ch.Options{
		Protocol:    ch.Native,
		Addr:        []string{cfg.Addr},
		Auth:        ch.Auth{Database: database, Username: cfg.Username, Password: cfg.Password},
		DialTimeout: cfg.DialTimeout,
		ReadTimeout: cfg.ReadTimeout,
		ClientInfo:  ch.ClientInfo{Products: []struct{ Name, Version string }{{Name: "wxpayd-sink", Version: "1"}}},
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open %s: %w", cfg.Addr, err)
	}
	return conn, nil
}

// Writer inserts events into the events table. It implements the sink
// consumer's Sink. A Writer is safe for concurrent use; each Write builds its
// own columns and does not retain the slice it is given.
type Writer struct {
	cfg    Config
	conn   driver.Conn
	insert string
	closed atomic.Bool
}

// Open connects to ClickHouse, creates the database and applies the
// migrations (see Migrate), and returns a Writer. It fails when ClickHouse
// does not answer; callers that must wait for it retry.
func Open(ctx context.Context, cfg Config) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	boot, err := Dial(cfg, "")
	if err != nil {
		return nil, err
	}
	_, err = Migrate(ctx, boot, cfg.Database)
	_ = boot.Close()
	if err != nil {
		return nil, err
	}
	conn, err := Dial(cfg, cfg.Database)
	if err != nil {
		return nil, err
	}
	return &Writer{cfg: cfg, conn: conn, insert: "INSERT INTO " + cfg.Database + ".events (" + columnList + ")"}, nil
}

// Conn is the Writer's connection pool, for queries (tests, tools).
func (w *Writer) Conn() driver.Conn { return w.conn }

// Config returns the Writer's configuration with defaults applied.
func (w *Writer) Config() Config { return w.cfg }

// columnList is the explicit column list of every insert (PrepareBatch needs
// one on 18.16). Its order is the order of the appends in writeChunk.
const columnList = "event_id, type, out_trade_no, seq, ts_ms, ts, state, sku, quantity, openid, amount, " +
	"refund_amount, refunded_total, transaction_id, out_refund_no, notification_id, prepay_latency_us, " +
	"prepay_to_paid_ms, reason, alert, v, shop_order_id, attach"

// Write inserts evs, in INSERTs of at most BatchSize rows. It returns nil
// only when ClickHouse accepted every row. On error some INSERTs may have
// landed; writing the same events again is safe (deduplicated on event_id).
func (w *Writer) Write(ctx context.Context, evs []event.Event) error {
	if w.closed.Load() {
		return ErrClosed
	}
	// ClickHouse parses and writes one INSERT mostly on one thread: split a
	// large write into up to Parallel concurrent INSERTs.
	chunk := min(w.cfg.BatchSize, max(minParallelChunk, (len(evs)+w.cfg.Parallel-1)/w.cfg.Parallel))
	if len(evs) <= chunk {
		return w.writeChunk(ctx, evs)
	}
	sem := make(chan struct{}, w.cfg.Parallel)
	errs := make(chan error, (len(evs)+chunk-1)/chunk)
	var wg sync.WaitGroup
	for len(evs) > 0 {
		n := min(len(evs), chunk)
		part := evs[:n]
		evs = evs[n:]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- w.writeChunk(ctx, part)
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// minParallelChunk is the smallest INSERT a Write splits off.
const minParallelChunk = 8192

func (w *Writer) writeChunk(ctx context.Context, evs []event.Event) (err error) {
	n := len(evs)
	str := func() []string { return make([]string, n) }
	i64 := func() []int64 { return make([]int64, n) }
	eventID, typ, otn, state, sku, openid := str(), str(), str(), str(), str(), str()
	txn, refundNo, notifyID, reason, alert := str(), str(), str(), str(), str()
	shopOrderID, attach := str(), str()
	tsMs, qty, amount, refund, refunded, prepayUs, payMs := i64(), i64(), i64(), i64(), i64(), i64(), i64()
	seq, ts, v := make([]uint64, n), make([]time.Time, n), make([]uint8, n)
	for i := range evs {
		e := &evs[i]
		eventID[i], typ[i], otn[i], seq[i], tsMs[i] = e.EventID, e.Type, e.OutTradeNo, e.Seq, e.TimeMs
		ts[i] = time.Unix(e.TimeMs/1000, 0)
		state[i], sku[i], qty[i], openid[i], amount[i] = e.State, e.SKU, e.Quantity, e.OpenID, e.Amount
		refund[i], refunded[i], txn[i] = e.RefundAmount, e.RefundedTotal, e.TransactionID
		refundNo[i], notifyID[i] = e.OutRefundNo, e.NotificationID
		prepayUs[i], payMs[i], reason[i], alert[i], v[i] = e.PrepayMicros, e.PayMillis, e.Reason, e.Alert, uint8(e.V)
		shopOrderID[i], attach[i] = e.ShopOrderID, e.Attach
	}
	batch, err := w.conn.PrepareBatch(ctx, w.insert)
	if err != nil {
		return fmt.Errorf("clickhouse: prepare insert: %w", err)
	}
	defer func() {
		if err != nil {
			_ = batch.Abort()
		}
	}()
	cols := []any{eventID, typ, otn, seq, tsMs, ts, state, sku, qty, openid, amount,
		refund, refunded, txn, refundNo, notifyID, prepayUs, payMs, reason, alert, v, shopOrderID, attach}
	for i, c := range cols {
		if err := batch.Column(i).Append(c); err != nil {
			return fmt.Errorf("clickhouse: append column %d: %w", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert %d events: %w", n, err)
	}
	return nil
}

// Close closes the connection pool. It is idempotent; it does not wait for
// Writes in flight (they fail).
func (w *Writer) Close() error {
	if !w.closed.CompareAndSwap(false, true) {
		return nil
	}
	return w.conn.Close()
}
