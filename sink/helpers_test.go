package sink_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink"
	"github.com/wxpayd/wxpayd/sink/clickhouse"
	"github.com/wxpayd/wxpayd/sink/consumer"
	"github.com/wxpayd/wxpayd/sink/internal/kafkautil"
	"github.com/wxpayd/wxpayd/sink/itest"
)

// env is one test's private corner of the real services: its own topic,
// DLQ topic, consumer group and ClickHouse database.
type env struct {
	t        testing.TB
	brokers  []string
	chAddr   string
	topic    string
	group    string
	database string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{
		t:        t,
		brokers:  []string{itest.Kafka(t)},
		chAddr:   itest.ClickHouse(t),
		topic:    itest.Name("wxpayd_test_events"),
		group:    itest.Name("wxpayd_test_sink"),
		database: itest.Name("wxpayd_test"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafkautil.EnsureTopics(ctx, e.brokers, 6, 1, e.topic, e.topic+".dlq"); err != nil {
		t.Fatalf("create topics: %v", err)
	}
	t.Cleanup(func() { e.dropDatabase() })
	return e
}

func (e *env) dropDatabase() {
	conn, err := clickhouse.Dial(clickhouse.Config{Addr: e.chAddr}, "")
	if err != nil {
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+e.database)
}

func (e *env) config() sink.Config {
	return sink.Config{
		Brokers: e.brokers,
		Consumer: consumer.Config{Topic: e.topic, GroupID: e.group, RetryBackoff: 50 * time.Millisecond,
			MaxRetryBackoff: time.Second},
		ClickHouse: clickhouse.Config{Addr: e.chAddr, Database: e.database, FlushInterval: 200 * time.Millisecond},
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}
}

// runSink runs sink.Run in the background until the test ends (or stop is
// called).
func (e *env) runSink(cfg sink.Config) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := sink.Run(ctx, cfg); err != nil {
			e.t.Errorf("sink.Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	e.t.Cleanup(stop)
	return stop
}

// events returns n encoded events of a realistic mix: per order created,
// prepaid, paid (and every fifth refunded), plus notification events.
func events(prefix string, n int) ([]event.Event, [][]byte) {
	evs := make([]event.Event, 0, n)
	base := time.Now().Add(-time.Minute).UnixMilli()
	for o := 0; len(evs) < n; o++ {
		otn := fmt.Sprintf("%s%09d", prefix, o)
		amount := int64(100 + o%1000)
		seq := uint64(0)
		add := func(typ, state string, fill func(*event.Event)) {
			if len(evs) == n {
				return
			}
			seq++
			ev := event.Event{EventID: event.ID(otn, seq), Type: typ, OutTradeNo: otn, Seq: seq,
				TimeMs: base + int64(len(evs)%60000), State: state, SKU: fmt.Sprintf("sku-%d", o%5), Quantity: 1 + int64(o%2),
				OpenID: "o" + otn, Amount: amount}
			if fill != nil {
				fill(&ev)
			}
			evs = append(evs, ev)
		}
		add(event.OrderCreated, "CREATED", nil)
		add(event.OrderPrepaid, "PREPAID", func(e *event.Event) { e.PrepayMicros = int64(1000 + o%500) })
		add(event.OrderPaid, "PAID", func(e *event.Event) { e.TransactionID = "4200" + otn; e.PayMillis = int64(3000 + o%700) })
		if o%5 == 0 {
			add(event.NotifyDuplicate, "PAID", func(e *event.Event) { e.NotificationID = "n" + otn })
			add(event.OrderRefunded, "REFUNDED", func(e *event.Event) { e.RefundAmount = amount; e.RefundedTotal = amount })
		}
	}
	enc := make([][]byte, len(evs))
	for i := range evs {
		enc[i] = event.Encode(&evs[i])
	}
	return evs, enc
}

func sumPaid(evs []event.Event) (n int, fen int64) {
	for _, e := range evs {
		if e.Type == event.OrderPaid {
			n++
			fen += e.Amount
		}
	}
	return n, fen
}

// produce publishes encoded events keyed by out_trade_no, acks=all.
func (e *env) produce(enc [][]byte) {
	e.t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(e.brokers...), Topic: e.topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchSize: 5000, BatchBytes: 1 << 20, BatchTimeout: 5 * time.Millisecond,
		Compression: kafka.Lz4, Transport: &kafka.Transport{}}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const chunk = 20000
	for i := 0; i < len(enc); i += chunk {
		part := enc[i:min(i+chunk, len(enc))]
		msgs := make([]kafka.Message, len(part))
		for j, v := range part {
			ev, err := event.Decode(v)
			key := []byte(ev.OutTradeNo)
			if err != nil {
				key = nil
			}
			msgs[j] = kafka.Message{Key: key, Value: v}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			e.t.Fatalf("produce: %v", err)
		}
	}
}

// counts is what ClickHouse holds: rows (duplicates included), rows after
// FINAL, distinct event ids, and paid orders and fen after FINAL.
type counts struct {
	Rows, Final, Distinct, Paid uint64
	PaidFen                     int64
}

func (e *env) counts() (counts, error) {
	conn, err := clickhouse.Dial(clickhouse.Config{Addr: e.chAddr, ReadTimeout: 20 * time.Second}, "")
	if err != nil {
		return counts{}, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var c counts
	if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM "+e.database+".events").Scan(&c.Rows, &c.Distinct); err != nil {
		return c, err
	}
	err = conn.QueryRow(ctx, "SELECT count(), countIf(type = 'order.paid'), sumIf(amount, type = 'order.paid') FROM "+
		e.database+".events FINAL").Scan(&c.Final, &c.Paid, &c.PaidFen)
	return c, err
}

// waitExactly waits until ClickHouse holds exactly the n distinct events
// of evs with their amounts, then checks no more arrive.
func (e *env) waitExactly(evs []event.Event, timeout time.Duration) counts {
	e.t.Helper()
	paid, fen := sumPaid(evs)
	var last counts
	itest.Eventually(e.t, timeout, 500*time.Millisecond, "exactly N events in ClickHouse", func() (bool, string) {
		c, err := e.counts()
		if err != nil {
			return false, err.Error()
		}
		last = c
		return c.Distinct >= uint64(len(evs)), fmt.Sprintf("%+v", c)
	})
	if last.Distinct != uint64(len(evs)) || last.Final != uint64(len(evs)) || last.Paid != uint64(paid) || last.PaidFen != fen {
		e.t.Fatalf("ClickHouse holds %+v, want %d distinct/final, %d paid, %d fen", last, len(evs), paid, fen)
	}
	return last
}

// buildSink builds cmd/wxpaysink into a temporary directory.
func buildSink(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wxpaysink")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/wxpaysink")
	cmd.Dir = itest.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/wxpaysink: %v\n%s", err, out)
	}
	return bin
}

// services runs deploy/local/<script> <verb> (start, stop).
func services(t testing.TB, script, verb string) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join("deploy", "local", script), verb)
	cmd.Dir = itest.RepoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, verb, err, out)
	}
	t.Logf("%s %s: %s", script, verb, strings.TrimSpace(string(out)))
}
