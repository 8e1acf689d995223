package sink_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/sink/clickhouse"
	"github.com/wxpayd/wxpayd/sink/consumer"
	"github.com/wxpayd/wxpayd/sink/embedded"
	"github.com/wxpayd/wxpayd/sink/itest"
	"github.com/wxpayd/wxpayd/sink/memory"
	"github.com/wxpayd/wxpayd/sink/relay"
)

// benchEvents is WXPAYD_BENCH_EVENTS, or def.
func benchEvents(def int) int {
	if n, err := strconv.Atoi(os.Getenv("WXPAYD_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkSinkEndToEnd: N events are produced to Kafka first; then the
// clock runs from the sink's start until ClickHouse holds all N (consumer
// group join, fetch, decode, insert, commit). One run per invocation: use
// -benchtime=1x. Reports events/s.
//
//	WXPAYD_BENCH_EVENTS=1000000 go test -run '^$' -bench SinkEndToEnd -benchtime 1x ./sink/
func BenchmarkSinkEndToEnd(b *testing.B) {
	n := benchEvents(1_000_000)
	e := newEnv(b)
	evs, enc := events("E", n)
	t0 := time.Now()
	e.produce(enc)
	b.Logf("produced %d events in %v (%.0f/s)", n, time.Since(t0), float64(n)/time.Since(t0).Seconds())
	conn, err := clickhouse.Dial(clickhouse.Config{Addr: e.chAddr}, "")
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	cfg := e.config()
	cfg.ClickHouse.FlushInterval = 0 // the default, 1 s
	if v, err := strconv.Atoi(os.Getenv("WXPAYD_BENCH_BATCH")); err == nil && v > 0 {
		cfg.ClickHouse.BatchSize = v
	}
	if v, err := strconv.Atoi(os.Getenv("WXPAYD_BENCH_PARALLEL")); err == nil && v > 0 {
		cfg.ClickHouse.Parallel = v
	}
	b.ResetTimer()
	start := time.Now()
	stop := e.runSink(cfg)
	itest.Eventually(b, 10*time.Minute, 50*time.Millisecond, "all events in ClickHouse", func() (bool, string) {
		var rows uint64
		err := conn.QueryRow(context.Background(), "SELECT count() FROM "+e.database+".events").Scan(&rows)
		if err != nil {
			return false, err.Error()
		}
		return rows >= uint64(n), strconv.FormatUint(rows, 10)
	})
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.Logf("sink: %d events in %v", n, elapsed)
	e.waitExactly(evs, time.Minute)
}

// fillOutbox commits n events into a NoSync store, 500 per Write.
func fillOutbox(b *testing.B, n int) *store.Store {
	st, err := store.Open(b.TempDir(), store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	evs, _ := events("R", n)
	for i := 0; i < n; i += 500 {
		w := st.NewWrite()
		for j := i; j < min(i+500, n); j++ {
			w.AddEvent(&evs[j])
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

func benchRelay(b *testing.B, brokers []string, n int) {
	st := fillOutbox(b, n)
	r, err := relay.New(relay.Config{Brokers: brokers, Topic: itest.Name("wxpayd_bench_relay"),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}, st)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	itest.Eventually(b, 10*time.Minute, 5*time.Millisecond, "outbox drained", func() (bool, string) {
		return st.OutboxBacklog() == 0, ""
	})
	elapsed := time.Since(start)
	b.StopTimer()
	_ = r.Close()
	<-done
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.Logf("relay: %d events in %v (topic creation included)", n, elapsed)
}

// BenchmarkRelay: the relay drains an outbox of N events into the real
// Kafka (acks=all, lz4). Use -benchtime=1x.
func BenchmarkRelayKafka(b *testing.B) {
	benchRelay(b, []string{itest.Kafka(b)}, benchEvents(300_000))
}

// BenchmarkRelayEmbedded: the same into the embedded broker.
func BenchmarkRelayEmbedded(b *testing.B) {
	addrs, stop, err := embedded.Start(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	benchRelay(b, addrs, benchEvents(300_000))
}

var _ = event.Version

// BenchmarkConsumerToMemory: like BenchmarkSinkEndToEnd with the in-memory
// sink instead of ClickHouse: the Kafka and decoding side alone.
func BenchmarkConsumerToMemory(b *testing.B) {
	n := benchEvents(1_000_000)
	e := newEnv(b)
	_, enc := events("M", n)
	e.produce(enc)
	mem := &memory.Sink{}
	cfg := e.config()
	c, err := consumer.New(consumer.Config{Brokers: e.brokers, Topic: e.topic, GroupID: e.group, Logger: cfg.Logger}, mem)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	itest.Eventually(b, 10*time.Minute, 20*time.Millisecond, "all events consumed", func() (bool, string) {
		return mem.Len() >= n, strconv.Itoa(mem.Len())
	})
	elapsed := time.Since(start)
	b.StopTimer()
	_ = c.Close()
	<-done
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
}

// BenchmarkPipelineLag drives the whole path at the store's peak: 64
// goroutines commit events into a real (fsync'd) store as fast as it takes
// them for WXPAYD_BENCH_SECONDS (default 20), while the relay publishes to
// Kafka and the sink writes ClickHouse. wxpayd's notification path is bound
// by the same store commits, so this rate is an upper bound on its event
// rate. Reports the rate and the lag from ts (event recorded) to
// ingested_at (row written), whose resolution is one second.
//
//	go test -run '^$' -bench PipelineLag -benchtime 1x ./sink/
func BenchmarkPipelineLag(b *testing.B) {
	secs := 20
	if n, err := strconv.Atoi(os.Getenv("WXPAYD_BENCH_SECONDS")); err == nil && n > 0 {
		secs = n
	}
	e := newEnv(b)
	p := e.startRelay(false)
	e.runSink(e.config())
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	var total atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				otn := fmt.Sprintf("L%02d%09d", w, i)
				ev := event.Event{EventID: event.ID(otn, 3), Type: event.OrderPaid, OutTradeNo: otn, Seq: 3,
					TimeMs: time.Now().UnixMilli(), State: "PAID", SKU: "sku-1", Quantity: 1, Amount: 100, TransactionID: "42" + otn}
				wr := p.st.NewWrite()
				wr.AddEvent(&ev)
				if err := wr.Commit(); err != nil {
					b.Error(err)
					return
				}
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	n := total.Load()
	conn, err := clickhouse.Dial(clickhouse.Config{Addr: e.chAddr}, "")
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	itest.Eventually(b, 5*time.Minute, 100*time.Millisecond, "all events in ClickHouse", func() (bool, string) {
		var rows uint64
		if err := conn.QueryRow(context.Background(), "SELECT uniqExact(event_id) FROM "+e.database+".events").Scan(&rows); err != nil {
			return false, err.Error()
		}
		return rows >= uint64(n), strconv.FormatUint(rows, 10)
	})
	b.StopTimer()
	var maxLag, p99 float64
	if err := conn.QueryRow(context.Background(), "SELECT toFloat64(max(ingested_at - ts)), toFloat64(quantileExact(0.99)(ingested_at - ts)) FROM "+
		e.database+".events").Scan(&maxLag, &p99); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(maxLag, "max-lag-s")
	b.ReportMetric(p99, "p99-lag-s")
	b.Logf("%d events committed in %v; lag ts→ClickHouse max %.0fs p99 %.0fs (1 s resolution)", n, elapsed, maxLag, p99)
}
