package clickhouse_test

import (
	"context"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink/clickhouse"
	"github.com/wxpayd/wxpayd/sink/itest"
	"github.com/wxpayd/wxpayd/sink/sinktest"
)

// open creates a fresh database on the real server, dropped at cleanup.
func open(t testing.TB, cfg clickhouse.Config) *clickhouse.Writer {
	t.Helper()
	cfg.Addr = itest.ClickHouse(t)
	if cfg.Database == "" {
		cfg.Database = itest.Name("wxpayd_test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() { DropDatabase(t, cfg) })
	w, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// DropDatabase drops cfg.Database.
func DropDatabase(t testing.TB, cfg clickhouse.Config) {
	conn, err := clickhouse.Dial(cfg, "")
	if err != nil {
		t.Logf("drop database %s: %v", cfg.Database, err)
		return
	}
	defer conn.Close()
	if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database); err != nil {
		t.Logf("drop database %s: %v", cfg.Database, err)
	}
}

// Stored reads events FINAL back into events.
func Stored(ctx context.Context, w *clickhouse.Writer) (map[string]event.Event, error) {
	rows, err := w.Conn().Query(ctx, "SELECT event_id, type, out_trade_no, seq, ts_ms, state, sku, quantity, openid, amount, "+
		"refund_amount, refunded_total, transaction_id, out_refund_no, notification_id, prepay_latency_us, prepay_to_paid_ms, "+
		"reason, alert, v, shop_order_id, attach FROM events FINAL")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]event.Event{}
	for rows.Next() {
		var e event.Event
		var v uint8
		if err := rows.Scan(&e.EventID, &e.Type, &e.OutTradeNo, &e.Seq, &e.TimeMs, &e.State, &e.SKU, &e.Quantity, &e.OpenID,
			&e.Amount, &e.RefundAmount, &e.RefundedTotal, &e.TransactionID, &e.OutRefundNo, &e.NotificationID,
			&e.PrepayMicros, &e.PayMillis, &e.Reason, &e.Alert, &v, &e.ShopOrderID, &e.Attach); err != nil {
			return nil, err
		}
		e.V = int(v)
		out[e.EventID] = e
	}
	return out, rows.Err()
}

func harness(cfg clickhouse.Config) sinktest.NewHarness {
	return func(t testing.TB) sinktest.Harness {
		w := open(t, cfg)
		return sinktest.Harness{Sink: w, Stored: func(ctx context.Context) (map[string]event.Event, error) { return Stored(ctx, w) }}
	}
}

func TestContract(t *testing.T) {
	// A small BatchSize so the large write is split into several INSERTs.
	sinktest.Run(t, sinktest.Features{MaxEvents: 20000, HonoursCancel: true, Concurrent: true},
		harness(clickhouse.Config{BatchSize: 7000}))
}

func TestMigrationsAreAppliedOnceAndRecorded(t *testing.T) {
	w := open(t, clickhouse.Config{})
	ctx := context.Background()
	ms, err := clickhouse.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 4 {
		t.Fatalf("%d migrations embedded", len(ms))
	}
	applied, err := clickhouse.AppliedVersions(ctx, w.Conn(), w.Config().Database)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if !applied[m.Version] {
			t.Errorf("migration %03d_%s not recorded", m.Version, m.Name)
		}
	}
	again, err := clickhouse.Migrate(ctx, w.Conn(), w.Config().Database)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Migrate applied %d (err %v), want 0", len(again), err)
	}
	var n uint64
	if err := w.Conn().QueryRow(ctx, "SELECT count() FROM schema_migrations").Scan(&n); err != nil || n != uint64(len(ms)) {
		t.Fatalf("schema_migrations has %d rows (err %v), want %d", n, err, len(ms))
	}
	for _, table := range []string{"events", "orders", "sku_stock", "gmv_per_minute", "funnel_per_minute",
		"prepay_latency_per_minute", "pay_latency_per_minute", "notify_counts_per_minute", "sku_sold", "sold_vs_stock"} {
		if err := w.Conn().Exec(ctx, "SELECT * FROM "+table+" LIMIT 1"); err != nil {
			t.Errorf("%s: %v", table, err)
		}
	}
}

func TestOrdersTableKeepsTheLatestState(t *testing.T) {
	w := open(t, clickhouse.Config{})
	ctx := context.Background()
	evs := []event.Event{
		{V: 1, EventID: "o1:1", Type: event.OrderCreated, OutTradeNo: "o1", Seq: 1, TimeMs: 1_700_000_000_000, State: "CREATED", SKU: "s", Quantity: 2, Amount: 300},
		{V: 1, EventID: "o1:3", Type: event.OrderPaid, OutTradeNo: "o1", Seq: 3, TimeMs: 1_700_000_002_000, State: "PAID", SKU: "s", Quantity: 2, Amount: 300, TransactionID: "t1"},
		{V: 1, EventID: "o1:2", Type: event.OrderPrepaid, OutTradeNo: "o1", Seq: 2, TimeMs: 1_700_000_001_000, State: "PREPAID", SKU: "s", Quantity: 2, Amount: 300},
	}
	for _, e := range evs { // out of order, one per insert, and again
		if err := w.Write(ctx, []event.Event{e, e}); err != nil {
			t.Fatal(err)
		}
	}
	var state, last, txn string
	var seq uint64
	var n uint64
	if err := w.Conn().QueryRow(ctx, "SELECT count() FROM orders FINAL").Scan(&n); err != nil || n != 1 {
		t.Fatalf("orders FINAL has %d rows (err %v)", n, err)
	}
	if err := w.Conn().QueryRow(ctx, "SELECT state, last_event, transaction_id, seq FROM orders FINAL WHERE out_trade_no = 'o1'").
		Scan(&state, &last, &txn, &seq); err != nil {
		t.Fatal(err)
	}
	if state != "PAID" || last != event.OrderPaid || txn != "t1" || seq != 3 {
		t.Fatalf("orders row = %s %s %s %d", state, last, txn, seq)
	}
}

func BenchmarkWrite(b *testing.B) {
	sinktest.Bench(b, 50000, harness(clickhouse.Config{}))
}
