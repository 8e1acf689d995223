package reconcile_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/reconcile"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/sink/clickhouse"
	"github.com/wxpayd/wxpayd/sink/itest"
	"github.com/wxpayd/wxpayd/wxpay"
)

// BenchmarkReconcileMillionRows reconciles a large merchant's day: a
// synthetic ALL trade bill of RECONCILE_BENCH_ROWS rows (default 1,000,000:
// 900,000 payments and 100,000 refunds) downloaded from wxpaysim (gzip),
// digest-checked, parsed, spilled, matched against a store holding the
// same orders and refunds, and, with CLICKHOUSE_ADDR set, loaded into
// ClickHouse. Every order agrees with the bill, so the run finds no
// discrepancy (any would fail the benchmark). It reports the rows per
// second and the process's peak RSS (VmHWM: the simulator rendering the
// bill included). Setup (the orders) is outside the timer.
//
//	CLICKHOUSE_ADDR=127.0.0.1:19000 go test ./actors/reconcile -run '^$' -bench ReconcileMillionRows -benchtime 1x
func BenchmarkReconcileMillionRows(b *testing.B) {
	rows := 1_000_000
	if v := os.Getenv("RECONCILE_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		rows = n
	}
	var loader reconcile.Loader
	if addr := os.Getenv(itest.EnvClickHouse); addr != "" {
		db := itest.Name("wxpayd_bench")
		l, err := clickhouse.OpenBillLoader(context.Background(), clickhouse.Config{Addr: addr, Database: db})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			conn, err := clickhouse.Dial(clickhouse.Config{Addr: addr}, "")
			if err == nil {
				_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
				_ = conn.Close()
			}
			_ = l.Close()
		})
		loader = benchLoader{l}
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := newStack(b, stackOpts{noRun: true, loader: loader})
		date := wxpay.BillDate(time.Now().AddDate(0, 0, -1))
		c, err := s.sim.SyntheticBill(date, rows)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		preload(b, s.st, date, c.Payments, c.Refunds)
		b.Logf("setup: %d orders written in %v", c.Payments, time.Since(t0).Round(time.Millisecond))
		b.StartTimer()
		start := time.Now()
		run, err := s.rec.RunDate(context.Background(), date)
		took := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if run.Status != reconcile.StatusDone || run.BillRows != int64(rows) || run.Found != 0 || run.Matched != int64(c.Payments) {
			b.Fatalf("run %+v", run)
		}
		if loader != nil && !run.Loaded {
			b.Fatalf("not loaded: %s", run.LoadError)
		}
		b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
		b.ReportMetric(took.Seconds(), "s/run")
		b.ReportMetric(peakRSS(b), "peak-RSS-MiB")
		b.Logf("%d rows reconciled in %v (loaded into ClickHouse: %v); peak RSS %.0f MiB", rows,
			took.Round(time.Millisecond), loader != nil, peakRSS(b))
		b.StartTimer()
	}
}

// preload writes the orders and refunds of the synthetic bill (see
// bench/sim SyntheticBill: payment i of 100 + i mod 9900 fen at day + i ×
// 86400 s / pays; refund j of half of payment 9j mod pays, 3 s later).
func preload(b *testing.B, st *store.Store, date string, pays, refunds int) {
	b.Helper()
	day, _ := wxpay.ParseBillDate(date)
	ymd := day.Format("20060102")
	id := func(prefix string, n, width int) string {
		s := strconv.Itoa(n)
		return prefix + ymd + strings.Repeat("0", width-len(s)) + s
	}
	at := func(i int) int64 { return day.Add(time.Duration(int64(i)*86400/int64(pays)) * time.Second).UnixMilli() }
	refundOf := map[int]int{} // payment → refund j
	for j := range refunds {
		refundOf[(9*j)%pays] = j
	}
	w := st.NewWrite()
	for i := range pays {
		total := int64(100 + i%9900)
		o := store.Order{OutTradeNo: id("SYN", i, 10), Seq: 3, State: store.StatePaid, OpenID: "oSynthetic", SKU: "syn",
			Quantity: 1, Total: total, Currency: "CNY", TransactionID: id("4200", i, 16), CreatedMs: at(i), PaidMs: at(i),
			ExpiresMs: at(i)}
		evs := []event.Event{{Type: event.OrderPaid, OutTradeNo: o.OutTradeNo, TimeMs: o.PaidMs}}
		if j, ok := refundOf[i]; ok {
			amount := max(1, total/2)
			created := o.PaidMs + 1000
			o.State, o.RefundedFen = store.StateRefunded, amount
			o.Refunds = []store.Refund{{OutRefundNo: id("SYNR", j, 10), Amount: amount, Status: wxpay.RefundStatusSuccess,
				RefundID: id("50300", j, 16), CreatedMs: created, DoneMs: created + 2000}}
			evs = append(evs, event.Event{Type: event.OrderRefundRequested, OutTradeNo: o.OutTradeNo, TimeMs: created})
		}
		w.PutOrder(&o)
		for k := range evs {
			w.IndexDay(&evs[k])
		}
		if w.Len() > 4<<20 {
			if err := w.CommitRelaxed(); err != nil {
				b.Fatal(err)
			}
			w = st.NewWrite()
		}
	}
	if err := w.Commit(); err != nil {
		b.Fatal(err)
	}
}

// peakRSS is the process's peak resident set (VmHWM), MiB.
func peakRSS(b *testing.B) float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// benchLoader adapts a BillLoader to reconcile.Loader (cmd/wxpayd's
// chLoader does the same).
type benchLoader struct{ l *clickhouse.BillLoader }

func (b benchLoader) LoadBill(ctx context.Context, date string, rows []wxpay.TradeBillRow) error {
	return b.l.LoadTrades(ctx, date, rows)
}

func (b benchLoader) LoadDiscrepancies(ctx context.Context, date string, ds []reconcile.Discrepancy) error {
	out := make([]clickhouse.Discrepancy, len(ds))
	for i, d := range ds {
		out[i] = clickhouse.Discrepancy{Key: d.Key, Class: d.Class, Status: d.Status, OutTradeNo: d.OutTradeNo,
			OutRefundNo: d.OutRefundNo, Detail: d.Detail, FoundMs: d.FoundMs, UpdatedMs: d.UpdatedMs}
	}
	return b.l.LoadDiscrepancies(ctx, date, out)
}
