package deploycheck

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink/clickhouse"
)

// expandMacros does what grafana-clickhouse-datasource's pkg/macros does
// for the macros chMacros lists, for the time range [from, to].
func expandMacros(sql string, from, to time.Time) (string, error) {
	var err error
	dt := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	dt64 := func(t time.Time) string { return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli()) }
	out := regexp.MustCompile(`\$__([A-Za-z_]+)(\(([^)]*)\))?`).ReplaceAllStringFunc(sql, func(m string) string {
		sm := regexp.MustCompile(`^\$__([A-Za-z_]+)(\(([^)]*)\))?$`).FindStringSubmatch(m)
		name, arg := sm[1], strings.TrimSpace(sm[3])
		switch name {
		case "timeFilter":
			return fmt.Sprintf("%s >= %s AND %s <= %s", arg, dt(from), arg, dt(to))
		case "timeFilter_ms":
			return fmt.Sprintf("%s >= %s AND %s <= %s", arg, dt64(from), arg, dt64(to))
		case "fromTime":
			return dt(from) + sm[2]
		case "toTime":
			return dt(to) + sm[2]
		case "fromTime_ms":
			return dt64(from) + sm[2]
		case "toTime_ms":
			return dt64(to) + sm[2]
		case "interval_s":
			return "60" + sm[2]
		}
		err = fmt.Errorf("macro $__%s not expanded", name)
		return m
	})
	return out, err
}

// TestAnalyticsQueriesRunOnClickHouse applies the sink's migrations to a
// fresh database on the real ClickHouse (deploy/local's 18.16 under make
// test), writes one order's events through the sink's own writer, and
// runs every ClickHouse dashboard query with its macros expanded as the
// plugin does: each must run, and the sales panels must see the order.
func TestAnalyticsQueriesRunOnClickHouse(t *testing.T) {
	addr := service(t, "CLICKHOUSE_ADDR")
	db := uniqueName("deploycheck")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Cleanup(func() { dropDatabase(t, addr, db) })
	w, err := clickhouse.Open(ctx, clickhouse.Config{Addr: addr, Database: db})
	if err != nil {
		t.Fatalf("open and migrate %s: %v", db, err)
	}
	defer w.Close()

	now := time.Now()
	otn := "01deploycheck" + randomHex(4)
	mk := func(seq uint64, typ, state string, offset time.Duration) event.Event {
		return event.Event{
			V: event.Version, EventID: event.ID(otn, seq), Type: typ, OutTradeNo: otn, Seq: seq,
			TimeMs: now.Add(offset).UnixMilli(), State: state, SKU: "tea", Quantity: 2, OpenID: "o-deploycheck", Amount: 1776,
		}
	}
	evs := []event.Event{mk(1, "order.created", "CREATED", -3*time.Minute), mk(2, "order.prepaid", "PREPAID", -3*time.Minute),
		mk(3, "order.paid", "PAID", -2*time.Minute)}
	evs[1].PrepayMicros = 180_000
	evs[2].PayMillis = 60_000
	evs[2].TransactionID = "4200000000000000000000000001"
	if err := w.Write(ctx, evs); err != nil {
		t.Fatalf("write events: %v", err)
	}

	from, to := now.Add(-time.Hour), now.Add(time.Minute)
	n := 0
	for _, q := range queries(t) {
		if q.DS.Type != chType {
			continue
		}
		n++
		sql, err := expandMacros(q.Text, from, to)
		if err != nil {
			t.Errorf("%s: %v", q.Where, err)
			continue
		}
		sql = regexp.MustCompile(`\bwxpayd\.`).ReplaceAllString(sql, db+".")
		rows, err := w.Conn().Query(ctx, sql)
		if err != nil {
			t.Errorf("%s: %v\n%s", q.Where, err, sql)
			continue
		}
		count := 0
		for rows.Next() {
			count++
		}
		if err := rows.Err(); err != nil {
			t.Errorf("%s: %v", q.Where, err)
		}
		rows.Close()
		for _, must := range []string{"gmv_per_minute", "funnel_per_minute", "orders FINAL", "sku_sold", "prepay_latency_per_minute", "pay_latency_per_minute"} {
			if strings.Contains(q.Text, must) && count == 0 {
				t.Errorf("%s: no rows, though an order was paid %v ago", q.Where, 2*time.Minute)
			}
		}
		t.Logf("%s: %d rows", q.Where, count)
	}
	if n == 0 {
		t.Fatal("no ClickHouse queries in the dashboards")
	}
}
