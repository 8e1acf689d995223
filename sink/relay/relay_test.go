package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/sink/embedded"
	"github.com/wxpayd/wxpayd/sink/itest"
	"github.com/wxpayd/wxpayd/sink/relay"
)

func openStore(t testing.TB, noSync bool) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{NoSync: noSync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// commit writes n events into st as order actors do: one durable Write per
// event, concurrently.
func commit(t testing.TB, st *store.Store, prefix string, n int) []event.Event {
	t.Helper()
	evs := make([]event.Event, n)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				otn := fmt.Sprintf("%s%07d", prefix, i/3)
				seq := uint64(i%3) + 1
				ev := event.Event{EventID: event.ID(otn, seq), Type: event.OrderCreated, OutTradeNo: otn, Seq: seq,
					TimeMs: time.Now().UnixMilli(), State: "CREATED", Amount: int64(i)}
				wr := st.NewWrite()
				wr.AddEvent(&ev)
				if err := wr.Commit(); err != nil {
					errs <- err
					return
				}
				evs[i] = ev
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return evs
}

// consumeAll reads topic from the start until want distinct event ids were
// seen, checking each message's key is its out_trade_no.
func consumeAll(t testing.TB, brokers []string, topic string, want []event.Event) {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: itest.Name("check"), Topic: topic,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond, MaxBytes: 8 << 20})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seen := map[string]bool{}
	for len(seen) < len(want) {
		m, err := r.FetchMessage(ctx) // no per-message commit
		if err != nil {
			t.Fatalf("read after %d of %d: %v", len(seen), len(want), err)
		}
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Key) != e.OutTradeNo {
			t.Fatalf("key %q for out_trade_no %q", m.Key, e.OutTradeNo)
		}
		seen[e.EventID] = true
	}
	for _, e := range want {
		if !seen[e.EventID] {
			t.Fatalf("event %s never published", e.EventID)
		}
	}
}

func start(t testing.TB, cfg relay.Config, st *store.Store) *relay.Relay {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	r, err := relay.New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

func waitDrained(t testing.TB, st *store.Store, timeout time.Duration) {
	t.Helper()
	itest.Eventually(t, timeout, 10*time.Millisecond, "outbox drained", func() (bool, string) {
		return st.OutboxBacklog() == 0, fmt.Sprintf("backlog %d", st.OutboxBacklog())
	})
}

func testPublishesEverything(t *testing.T, brokers []string) {
	st := openStore(t, true)
	topic := itest.Name("wxpayd_test_relay")
	before := commit(t, st, "B", 3000) // committed before the relay starts
	reg := prometheus.NewRegistry()
	start(t, relay.Config{Brokers: brokers, Topic: topic, Registerer: reg}, st)
	after := commit(t, st, "A", 3000) // and while it runs
	t0 := time.Now()
	waitDrained(t, st, time.Minute)
	t.Logf("drained in %v", time.Since(t0))
	consumeAll(t, brokers, topic, append(before, after...))
	t.Logf("consumed in %v", time.Since(t0))

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch {
		case m.Counter != nil:
			got[mf.GetName()] = m.Counter.GetValue()
		case m.Gauge != nil:
			got[mf.GetName()] = m.Gauge.GetValue()
		case m.Histogram != nil:
			got[mf.GetName()] = float64(m.Histogram.GetSampleCount())
		}
	}
	if got["wxpayd_relay_published_total"] != 6000 || got["wxpayd_outbox_backlog"] != 0 ||
		got["wxpayd_outbox_oldest_unsent_age_seconds"] != 0 || got["wxpayd_relay_publish_seconds"] == 0 {
		t.Fatalf("metrics %v", got)
	}
}

func TestRelayPublishesEveryEventKeyedByOrderEmbedded(t *testing.T) {
	addrs, stop, err := embedded.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	testPublishesEverything(t, addrs)
}

func TestRelayPublishesEveryEventKeyedByOrderKafka(t *testing.T) {
	testPublishesEverything(t, []string{itest.Kafka(t)})
}

// With the broker gone, commits go on and the backlog grows; the relay
// retries the same batch and the outbox drains when a broker is back.
func TestRelayWaitsForTheBrokerAndDrains(t *testing.T) {
	dir := t.TempDir()
	addrs, stop, err := embedded.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	port := addrs[0][len("127.0.0.1:"):]
	st := openStore(t, true)
	topic := itest.Name("wxpayd_test_relay")
	r := start(t, relay.Config{Brokers: addrs, Topic: topic, RetryBackoff: 20 * time.Millisecond,
		MaxRetryBackoff: 200 * time.Millisecond, MaxAttempts: 1}, st)
	first := commit(t, st, "F", 1000)
	waitDrained(t, st, time.Minute)

	stop() // the broker is gone
	t0 := time.Now()
	second := commit(t, st, "S", 1000)
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("1000 commits took %v with the broker down", d)
	}
	time.Sleep(300 * time.Millisecond)
	if b := st.OutboxBacklog(); b != 1000 {
		t.Fatalf("backlog %d with the broker down, want 1000", b)
	}
	if age := r.OldestUnsentAge(); age <= 0 {
		t.Fatalf("oldest unsent age %v with the broker down", age)
	}

	var p int
	fmt.Sscan(port, &p)
	addrs2, stop2, err := embedded.StartOn(dir, p) // back on the same port, same data
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	waitDrained(t, st, time.Minute)
	consumeAll(t, addrs2, topic, append(first, second...))
}

func TestOutTradeNoAndTimeAreReadWithoutDecoding(t *testing.T) {
	for _, e := range []event.Event{
		{EventID: "x:1", Type: "order.paid", OutTradeNo: "T123", Seq: 1, TimeMs: 1700000000123},
		{EventID: "x:1", Type: "order.paid", OutTradeNo: `we"ird\name`, Seq: 1, TimeMs: 42},
		{EventID: "x:1", Type: "sku.updated", TimeMs: 7},
	} {
		b := event.Encode(&e)
		if k := string(relay.OutTradeNo(b)); k != e.OutTradeNo {
			t.Errorf("OutTradeNo(%s) = %q", b, k)
		}
		if ts := relay.TimeMs(b); ts != e.TimeMs {
			t.Errorf("TimeMs(%s) = %d", b, ts)
		}
	}
}
