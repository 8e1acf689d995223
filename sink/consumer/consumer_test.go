package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink/consumer"
	"github.com/wxpayd/wxpayd/sink/embedded"
	"github.com/wxpayd/wxpayd/sink/internal/kafkautil"
	"github.com/wxpayd/wxpayd/sink/itest"
	"github.com/wxpayd/wxpayd/sink/memory"
	"github.com/wxpayd/wxpayd/sink/sinktest"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// broker starts the embedded broker for one test (no outside services).
func broker(t *testing.T) []string {
	t.Helper()
	addrs, stop, err := embedded.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addrs
}

func produce(t *testing.T, brokers []string, topic string, values ...[]byte) {
	t.Helper()
	if err := kafkautil.EnsureTopics(context.Background(), brokers, 6, 1, topic, topic+".dlq"); err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	defer w.Close()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprint(i % 17)), Value: v}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func encode(evs []event.Event) [][]byte {
	out := make([][]byte, len(evs))
	for i := range evs {
		out[i] = event.Encode(&evs[i])
	}
	return out
}

// run runs a consumer until the test ends or stop is called.
func run(t *testing.T, cfg consumer.Config, s consumer.Sink) (stop func()) {
	t.Helper()
	cfg.Logger = quiet
	cfg.RetryBackoff, cfg.MaxRetryBackoff = 10*time.Millisecond, 100*time.Millisecond
	c, err := consumer.New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitLen(t *testing.T, m *memory.Sink, n int) {
	t.Helper()
	itest.Eventually(t, time.Minute, 10*time.Millisecond, "events in the sink", func() (bool, string) {
		return m.Len() >= n, fmt.Sprint(m.Len())
	})
	if m.Len() != n {
		t.Fatalf("sink has %d events, want %d", m.Len(), n)
	}
}

func TestConsumerWritesEveryEventAndCommitsAfterTheSink(t *testing.T) {
	brokers := broker(t)
	topic, group := itest.Name("t"), itest.Name("g")
	evs := sinktest.Events("X", 3000)
	produce(t, brokers, topic, encode(evs)...)

	// A sink that always fails: nothing may be committed.
	var tries atomic.Int64
	stop := run(t, consumer.Config{Brokers: brokers, Topic: topic, GroupID: group, FlushInterval: 50 * time.Millisecond},
		consumer.SinkFunc(func(context.Context, []event.Event) error { tries.Add(1); return errors.New("down") }))
	itest.Eventually(t, time.Minute, 10*time.Millisecond, "retries", func() (bool, string) { return tries.Load() >= 3, "" })
	stop()

	// The same group with a working sink gets every event: none was committed.
	m := &memory.Sink{}
	stop = run(t, consumer.Config{Brokers: brokers, Topic: topic, GroupID: group, FlushInterval: 50 * time.Millisecond}, m)
	waitLen(t, m, len(evs))
	stop()
	got := m.Events()
	for _, e := range evs {
		if got[e.EventID] != e {
			t.Fatalf("event %s: %+v", e.EventID, got[e.EventID])
		}
	}

	// Committed now: the group starts after them.
	m2 := &memory.Sink{}
	more := sinktest.Events("Y", 10)
	produce(t, brokers, topic, encode(more)...)
	run(t, consumer.Config{Brokers: brokers, Topic: topic, GroupID: group, FlushInterval: 50 * time.Millisecond}, m2)
	waitLen(t, m2, len(more))
}

func TestConsumerBatchesBySizeAndTime(t *testing.T) {
	brokers := broker(t)
	topic := itest.Name("t")
	var mu sync.Mutex
	var sizes []int
	m := &memory.Sink{}
	sink := consumer.SinkFunc(func(ctx context.Context, evs []event.Event) error {
		mu.Lock()
		sizes = append(sizes, len(evs))
		mu.Unlock()
		return m.Write(ctx, evs)
	})
	produce(t, brokers, topic, encode(sinktest.Events("S", 1000))...)
	run(t, consumer.Config{Brokers: brokers, Topic: topic, GroupID: itest.Name("g"), BatchSize: 100, FlushInterval: time.Hour}, sink)
	waitLen(t, m, 1000)
	mu.Lock()
	for _, n := range sizes {
		if n != 100 {
			t.Fatalf("batch of %d events with BatchSize 100 and no time limit: %v", n, sizes)
		}
	}
	mu.Unlock()

	// A lone event with a huge BatchSize goes out after FlushInterval.
	m2 := &memory.Sink{}
	topic2 := itest.Name("t")
	produce(t, brokers, topic2, encode(sinktest.Events("L", 1))...)
	t0 := time.Now()
	run(t, consumer.Config{Brokers: brokers, Topic: topic2, GroupID: itest.Name("g"), BatchSize: 1 << 20,
		FlushInterval: 200 * time.Millisecond}, m2)
	waitLen(t, m2, 1)
	t.Logf("a lone event took %v (group join included)", time.Since(t0))
}

func TestConsumerDeadLettersWhatItCannotDecode(t *testing.T) {
	brokers := broker(t)
	topic := itest.Name("t")
	good := sinktest.Events("G", 100)
	values := encode(good)
	poison := [][]byte{[]byte(`{"v":9,"event_id":"n:1","type":"order.paid","ts_ms":5}`), []byte("\x00garbage")}
	values = append(append(values[:50:50], poison...), values[50:]...)
	produce(t, brokers, topic, values...)
	m := &memory.Sink{}
	run(t, consumer.Config{Brokers: brokers, Topic: topic, GroupID: itest.Name("g"), FlushInterval: 50 * time.Millisecond}, m)
	waitLen(t, m, len(good))

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic + ".dlq", GroupID: itest.Name("dlq"),
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]string{}
	for len(seen) < len(poison) {
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("DLQ: %v (have %v)", err, seen)
		}
		h := map[string]string{}
		for _, x := range msg.Headers {
			h[x.Key] = string(x.Value)
		}
		if h["wxpayd-dlq-topic"] != topic || h["wxpayd-dlq-offset"] == "" || h[consumer.DLQReasonHeader] == "" {
			t.Fatalf("DLQ headers %v", h)
		}
		seen[string(msg.Value)] = h[consumer.DLQReasonHeader]
	}
	if r := seen[string(poison[0])]; r != "event: unknown schema version: v=9" {
		t.Fatalf("reason for v=9: %q", r)
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := consumer.New(consumer.Config{}, &memory.Sink{}); !errors.Is(err, consumer.ErrConfig) {
		t.Fatalf("no brokers: %v", err)
	}
	if _, err := consumer.New(consumer.Config{Brokers: []string{"x:1"}, Topic: "a", DLQTopic: "a"}, &memory.Sink{}); !errors.Is(err, consumer.ErrConfig) {
		t.Fatalf("DLQ = topic: %v", err)
	}
	if _, err := consumer.New(consumer.Config{Brokers: []string{"x:1"}}, nil); !errors.Is(err, consumer.ErrConfig) {
		t.Fatalf("nil sink: %v", err)
	}
}

func TestTwoConsumersShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := consumer.New(consumer.Config{Brokers: []string{"x:1"}, Registerer: reg}, &memory.Sink{}); err != nil {
			t.Fatal(err)
		}
	}
}
