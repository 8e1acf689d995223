package sink_test

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/sink/clickhouse"
	"github.com/wxpayd/wxpayd/sink/consumer"
	"github.com/wxpayd/wxpayd/sink/embedded"
	"github.com/wxpayd/wxpayd/sink/internal/itest"
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
	b.ResetTimer()
	start := time.Now()
	stop := e.runSink(e.config())
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
