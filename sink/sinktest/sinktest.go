// Package sinktest is the contract every consumer.Sink passes: the in-memory
// sink and the ClickHouse writer run the same tests and benchmark, tuned by
// Features.
package sinktest

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink/consumer"
)

// Features says what a sink under test can do.
type Features struct {
	// MaxEvents is the largest single Write the suite makes (default 10000).
	MaxEvents int
	// HonoursCancel: Write with a cancelled context fails.
	HonoursCancel bool
	// Concurrent: concurrent Writes are safe.
	Concurrent bool
}

// Harness is one fresh, empty sink and a way to read back what it stored.
type Harness struct {
	Sink consumer.Sink
	// Stored returns the deduplicated contents: one event per event_id.
	Stored func(ctx context.Context) (map[string]event.Event, error)
}

// NewHarness makes a fresh, empty sink for one test.
type NewHarness func(t testing.TB) Harness

// Events returns n distinct, fully populated v1 events of several types, as
// the consumer would decode them (V set). seed varies the ids.
func Events(seed string, n int) []event.Event {
	types := []string{event.OrderCreated, event.OrderPrepaid, event.OrderPaid, event.OrderRefunded, event.NotifyDuplicate}
	base := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).UnixMilli()
	out := make([]event.Event, n)
	for i := range out {
		otn := fmt.Sprintf("%s%08d", seed, i/len(types))
		seq := uint64(i%len(types)) + 1
		out[i] = event.Event{
			V: event.Version, EventID: event.ID(otn, seq), Type: types[i%len(types)], OutTradeNo: otn, Seq: seq,
			TimeMs: base + int64(i), State: "PAID", SKU: fmt.Sprintf("sku-%d", i%7), Quantity: int64(1 + i%3),
			OpenID: "o_" + otn, Amount: int64(100 + i), RefundAmount: int64(i % 11), RefundedTotal: int64(i % 13),
			TransactionID: "42000" + otn, OutRefundNo: "R" + otn, NotificationID: fmt.Sprintf("n-%d", i),
			PrepayMicros: int64(1000 + i), PayMillis: int64(2000 + i), Reason: "r", Alert: "a",
		}
		if i/len(types)%3 == 0 { // a shop's checkout order
			out[i].SKU, out[i].Quantity = "", 0
			out[i].ShopOrderID, out[i].Attach = "shop-"+otn, "cart:"+otn
		}
	}
	return out
}

// Run runs the contract suite.
func Run(t *testing.T, f Features, newHarness NewHarness) {
	if f.MaxEvents <= 0 {
		f.MaxEvents = 10000
	}
	ctx := context.Background()
	check := func(t *testing.T, h Harness, want []event.Event) {
		t.Helper()
		got, err := h.Stored(ctx)
		if err != nil {
			t.Fatalf("Stored: %v", err)
		}
		wantByID := map[string]event.Event{}
		for _, e := range want {
			wantByID[e.EventID] = e
		}
		if len(got) != len(wantByID) {
			t.Fatalf("stored %d distinct events, want %d", len(got), len(wantByID))
		}
		for id, w := range wantByID {
			g, ok := got[id]
			if !ok {
				t.Fatalf("event %s missing", id)
			}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("event %s stored as\n%+v\nwant\n%+v", id, g, w)
			}
		}
	}

	t.Run("a write stores every event with every field", func(t *testing.T) {
		h := newHarness(t)
		evs := Events("A", 500)
		if err := h.Sink.Write(ctx, evs); err != nil {
			t.Fatal(err)
		}
		check(t, h, evs)
	})
	t.Run("an empty write succeeds", func(t *testing.T) {
		h := newHarness(t)
		if err := h.Sink.Write(ctx, nil); err != nil {
			t.Fatal(err)
		}
		check(t, h, nil)
	})
	t.Run("writing events again stores each event_id once", func(t *testing.T) {
		h := newHarness(t)
		evs := Events("B", 300)
		for _, part := range [][]event.Event{evs[:200], evs[100:], evs, evs[:1]} {
			if err := h.Sink.Write(ctx, part); err != nil {
				t.Fatal(err)
			}
		}
		check(t, h, evs)
	})
	t.Run("duplicates inside one write count once", func(t *testing.T) {
		h := newHarness(t)
		evs := Events("C", 50)
		if err := h.Sink.Write(ctx, append(append([]event.Event(nil), evs...), evs...)); err != nil {
			t.Fatal(err)
		}
		check(t, h, evs)
	})
	t.Run("a large write lands whole", func(t *testing.T) {
		h := newHarness(t)
		evs := Events("D", f.MaxEvents)
		if err := h.Sink.Write(ctx, evs); err != nil {
			t.Fatal(err)
		}
		check(t, h, evs)
	})
	t.Run("the sink does not keep the slice", func(t *testing.T) {
		h := newHarness(t)
		evs := Events("E", 10)
		want := append([]event.Event(nil), evs...)
		if err := h.Sink.Write(ctx, evs); err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			evs[i].Amount = -1
		}
		check(t, h, want)
	})
	if f.HonoursCancel {
		t.Run("a write with a cancelled context fails", func(t *testing.T) {
			h := newHarness(t)
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if err := h.Sink.Write(cctx, Events("F", 10)); err == nil {
				t.Fatal("Write with a cancelled context succeeded")
			}
		})
	}
	if f.Concurrent {
		t.Run("concurrent writes all land", func(t *testing.T) {
			h := newHarness(t)
			evs := Events("G", 4000)
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- h.Sink.Write(ctx, evs[w*1000:(w+1)*1000])
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			check(t, h, evs)
		})
	}
}

// Bench measures Write throughput in batches of batchSize events; it
// reports events/s.
func Bench(b *testing.B, batchSize int, newHarness NewHarness) {
	h := newHarness(b)
	evs := Events("bench", batchSize)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range evs {
			evs[j].EventID = fmt.Sprintf("b%d:%d", i, j)
		}
		b.StartTimer()
		if err := h.Sink.Write(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "events/s")
}
