package sink_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink/clickhouse"
	"github.com/wxpayd/wxpayd/sink/itest"
)

// docQuery is one ```sql block of docs/analytics.md.
type docQuery struct{ name, sql string }

func analyticsQueries(t *testing.T) []docQuery {
	t.Helper()
	f, err := os.Open(filepath.Join(itest.RepoRoot(t), "docs", "analytics.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		qs  []docQuery
		cur *docQuery
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sql":
			cur = &docQuery{}
		case cur != nil && strings.TrimSpace(line) == "```":
			if cur.name == "" {
				t.Fatalf("a sql block in docs/analytics.md has no '-- name:' line:\n%s", cur.sql)
			}
			qs = append(qs, *cur)
			cur = nil
		case cur != nil && strings.HasPrefix(line, "-- name:"):
			cur.name = strings.TrimSpace(strings.TrimPrefix(line, "-- name:"))
		case cur != nil:
			cur.sql += line + "\n"
		}
	}
	if len(qs) == 0 {
		t.Fatal("no queries found in docs/analytics.md")
	}
	return qs
}

// rows runs q and returns every row as strings.
func rows(t *testing.T, w *clickhouse.Writer, q string) [][]string {
	t.Helper()
	r, err := w.Conn().Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	defer r.Close()
	var out [][]string
	types := r.ColumnTypes()
	for r.Next() {
		vals := make([]any, len(types))
		for i, ct := range types {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := r.Scan(vals...); err != nil {
			t.Fatalf("scan: %v\n%s", err, q)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = fmt.Sprint(reflect.ValueOf(v).Elem().Interface())
		}
		out = append(out, row)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	return out
}

// Every query of docs/analytics.md runs against the real ClickHouse on a
// known data set, written twice (as redelivery would), and the ones with a
// known answer give it.
func TestAnalyticsQueriesInTheDoc(t *testing.T) {
	chAddr := itest.ClickHouse(t)
	db := itest.Name("wxpayd_test")
	ctx := context.Background()
	t.Cleanup(func() { (&env{chAddr: chAddr, database: db}).dropDatabase() })
	w, err := clickhouse.Open(ctx, clickhouse.Config{Addr: chAddr, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	evs, _ := events("Q", 2000)
	now := time.Now().UnixMilli()
	extra := []event.Event{
		{EventID: "Qx:1", Type: event.NotifyRejected, OutTradeNo: "Qx", Seq: 1, TimeMs: now, State: "PREPAID", Reason: "bad signature"},
		{EventID: "Qx:2", Type: event.NotifyMismatch, OutTradeNo: "Qx", Seq: 2, TimeMs: now, State: "PREPAID", Alert: "amount"},
		{EventID: "sku-0:1", Type: "sku.updated", SKU: "sku-0", Quantity: 100, Amount: 150, TimeMs: now - 1000},
		{EventID: "sku-0:2", Type: "sku.updated", SKU: "sku-0", Quantity: 90, Amount: 150, TimeMs: now},
	}
	evs = append(evs, extra...)
	for i := range evs {
		evs[i].V = event.Version
	}
	for range 2 {
		if err := w.Write(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}

	// What the known answers are, computed from the events.
	byType := map[string]int{}
	stages := map[string]map[string]bool{}
	sold := map[string][2]int64{} // units, orders
	var paid, gmv, refunded int64
	latest := map[string]event.Event{}
	for _, e := range evs {
		byType[e.Type]++
		if stages[e.OutTradeNo] == nil {
			stages[e.OutTradeNo] = map[string]bool{}
		}
		stages[e.OutTradeNo][e.Type] = true
		switch e.Type {
		case event.OrderPaid:
			paid++
			gmv += e.Amount
			s := sold[e.SKU]
			sold[e.SKU] = [2]int64{s[0] + e.Quantity, s[1] + 1}
		case event.OrderRefunded:
			refunded += e.RefundAmount
		}
		if e.OutTradeNo != "" && e.State != "" && e.Seq >= latest[e.OutTradeNo].Seq {
			latest[e.OutTradeNo] = e
		}
	}
	var funnel [4]int
	for _, st := range stages {
		if st[event.OrderCreated] {
			funnel[0]++
			for i, typ := range []string{event.OrderPrepaid, event.OrderPaid, event.OrderRefunded} {
				if st[typ] {
					funnel[i+1]++
				}
			}
		}
	}
	var typeRows [][]string
	for typ, n := range byType {
		typeRows = append(typeRows, []string{typ, fmt.Sprint(n)})
	}
	sort.Slice(typeRows, func(i, j int) bool { return typeRows[i][0] < typeRows[j][0] })
	var skuRows [][]string
	for sku, s := range sold {
		stock, price := "0", "0"
		if sku == "sku-0" {
			stock, price = "90", "150"
		}
		skuRows = append(skuRows, []string{sku, fmt.Sprint(s[0]), fmt.Sprint(s[1]), stock, price})
	}
	sort.Slice(skuRows, func(i, j int) bool { return skuRows[i][0] < skuRows[j][0] })
	states := map[string]int{}
	for _, e := range latest {
		states[e.State]++
	}
	var stateRows [][]string
	for s, n := range states {
		stateRows = append(stateRows, []string{s, fmt.Sprint(n)})
	}
	sort.Slice(stateRows, func(i, j int) bool { return stateRows[i][0] < stateRows[j][0] })

	n := fmt.Sprint(len(evs))
	want := map[string]func(t *testing.T, got [][]string){
		"event_count":    exact([][]string{{n, n}}),
		"events_by_type": exact(typeRows),
		"gmv_total":      exact([][]string{{fmt.Sprint(paid), fmt.Sprint(gmv), fmt.Sprint(refunded)}}),
		"funnel": func(t *testing.T, got [][]string) {
			exact([][]string{{fmt.Sprint(funnel[0]), fmt.Sprint(funnel[1]), fmt.Sprint(funnel[2]), fmt.Sprint(funnel[3])}})(t, [][]string{got[0][:4]})
		},
		"notify_counts": exact([][]string{{fmt.Sprint(byType[event.NotifyDuplicate]), "1", "1"}}),
		"mismatches": func(t *testing.T, got [][]string) {
			if len(got) != 1 || got[0][1] != "Qx" {
				t.Fatalf("got %v", got)
			}
		},
		"sold_vs_stock": exact(skuRows),
		"orders_by_state": func(t *testing.T, got [][]string) {
			var short [][]string
			for _, r := range got {
				short = append(short, r[:2])
			}
			exact(stateRows)(t, short)
		},
		"orders_by_state_argmax": exact(stateRows),
		"prepay_latency": func(t *testing.T, got [][]string) {
			if got[0][0] != fmt.Sprint(byType[event.OrderPrepaid]) {
				t.Fatalf("calls %v, want %d", got[0][0], byType[event.OrderPrepaid])
			}
		},
		"pay_latency": func(t *testing.T, got [][]string) {
			if got[0][0] != fmt.Sprint(paid) {
				t.Fatalf("paid_orders %v, want %d", got[0][0], paid)
			}
		},
	}
	for _, q := range analyticsQueries(t) {
		t.Run(q.name, func(t *testing.T) {
			got := rows(t, w, q.sql)
			t.Logf("%s: %d rows, first %v", q.name, len(got), first(got))
			if check := want[q.name]; check != nil {
				check(t, got)
			}
		})
	}
}

func first(rs [][]string) []string {
	if len(rs) == 0 {
		return nil
	}
	return rs[0]
}

func exact(want [][]string) func(t *testing.T, got [][]string) {
	return func(t *testing.T, got [][]string) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got\n%v\nwant\n%v", got, want)
		}
	}
}
