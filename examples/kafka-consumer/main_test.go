package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink/itest"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	e, err := decode(event.Encode(&event.Event{EventID: "01A:3", Type: "order.paid", OutTradeNo: "01A", Seq: 3, TimeMs: 1,
		State: "PAID", Amount: 888, TransactionID: "42", ShopOrderID: "A-1", Attach: "x"}))
	if err != nil || e.V != 1 || e.EventID != "01A:3" || e.Seq != 3 || e.Amount != 888 || e.TransactionID != "42" ||
		e.ShopOrderID != "A-1" || e.Attach != "x" {
		t.Fatalf("wxpayd's encoding: %+v, %v", e, err)
	}
	if _, err := decode([]byte(`{"v":1,"event_id":"x:1","type":"order.new_kind","ts_ms":1,"field_of_tomorrow":[1]}`)); err != nil {
		t.Fatalf("a new type and field within version 1: %v", err)
	}
	for in, want := range map[string]error{
		`{"v":2,"event_id":"x:1","type":"order.paid","ts_ms":1}`: errVersion,
		`{"event_id":"x:1","type":"order.paid","ts_ms":1}`:       errVersion,
		`not json`:                                     errNotEvent,
		`{"v":1,"type":"order.paid","ts_ms":1}`:        errNotEvent,
		`{"v":1,"event_id":"x:1","ts_ms":1}`:           errNotEvent,
		`{"v":1,"event_id":"x:1","type":"order.paid"}`: errNotEvent,
	} {
		if _, err := decode([]byte(in)); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", in, err, want)
		}
	}
}

func TestSeenForgetsTheOldest(t *testing.T) {
	t.Parallel()
	s := newSeen(2)
	s.add("a")
	s.add("b")
	s.add("c")
	if s.has("a") || !s.has("b") || !s.has("c") || len(s.ids) != 2 {
		t.Fatalf("%v", s.ids)
	}
}

// recorder is a Handler that records what it handled and fails the first
// attempt of one event.
type recorder struct {
	mu      sync.Mutex
	got     []Event
	failing string // event_id whose first attempt fails
	failed  bool
}

func (r *recorder) handle(_ context.Context, e Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.EventID == r.failing && !r.failed {
		r.failed = true
		return errors.New("the shop's database is away")
	}
	r.got = append(r.got, e)
	return nil
}

func (r *recorder) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// TestEachEventHandledOnceAndCommitted runs the consumer against the real
// Kafka: three orders' events as wxpayd encodes them, some sent twice, a
// message that is no event and one without a key, on a topic of its own.
// Every event is handled once, each order's in seq order, one failed
// handling is retried before the order's next event, and every offset is
// committed. A second consumer of the group, which remembers nothing,
// then reads only what was published after.
func TestEachEventHandledOnceAndCommitted(t *testing.T) {
	addr := itest.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	topic, group := itest.Name("wxpayd_example_consumer"), itest.Name("shop")
	const partitions = 3
	admin := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	resp, err := admin.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}}})
	if err != nil || resp.Errors[topic] != nil {
		t.Fatalf("create topic: %v %v", err, resp)
	}
	t.Cleanup(func() {
		_, _ = admin.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	})
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()

	var msgs []kafka.Message
	want := map[string]bool{} // event_id: an event the shop must handle
	order := func(otn string, types ...string) {
		for i, typ := range types {
			e := event.Event{EventID: event.ID(otn, uint64(i+1)), Type: typ, OutTradeNo: otn, Seq: uint64(i + 1),
				TimeMs: time.Now().UnixMilli(), OpenID: "o-buyer", Amount: 888}
			msgs = append(msgs, kafka.Message{Key: []byte(otn), Value: event.Encode(&e)})
			want[e.EventID] = true
		}
	}
	order("01Kpaid", "order.created", "order.prepaid", "order.paid")
	order("01Kclosed", "order.created", "order.prepaid", "order.closed")
	order("01Srefunded", "order.created", "order.prepaid", "order.paid", "order.refund_requested", "order.refunded")
	sku := event.Event{EventID: "sku:tea:1", Type: "sku.updated", SKU: "tea", TimeMs: time.Now().UnixMilli()}
	msgs = append(msgs, kafka.Message{Value: event.Encode(&sku)}, kafka.Message{Key: []byte("x"), Value: []byte("no event")})
	want[sku.EventID] = true
	// The relay publishes again what it is not sure Kafka took: the same
	// key and bytes, later on the same partition.
	msgs = append(msgs, msgs[2], msgs[5], msgs[6], msgs[7])
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{Brokers: []string{addr}, Topic: topic, Group: group, Retry: 50 * time.Millisecond, Log: log}
	rec := &recorder{failing: "01Kclosed:2"}
	stop := start(t, ctx, cfg, rec.handle)
	itest.Eventually(t, time.Minute, 100*time.Millisecond, "every offset committed", func() (bool, string) {
		return committedAll(ctx, admin, topic, group, partitions)
	})
	stop()

	got := rec.events()
	count := map[string]int{}
	last := map[string]uint64{}
	for _, e := range got {
		count[e.EventID]++
		if e.OutTradeNo != "" && e.Seq <= last[e.OutTradeNo] {
			t.Errorf("%s after seq %d of its order", e.EventID, last[e.OutTradeNo])
		}
		last[e.OutTradeNo] = e.Seq
	}
	for id := range want {
		if count[id] != 1 {
			t.Errorf("%s handled %d times", id, count[id])
		}
	}
	if len(got) != len(want) || !rec.failed {
		t.Fatalf("handled %d events, want %d; the failing handling happened: %v", len(got), len(want), rec.failed)
	}

	// A new consumer of the group remembers no event_id: it can only skip
	// what the first one handled because those offsets were committed.
	later := event.Event{EventID: event.ID("01Kpaid", 4), Type: "order.refund_requested", OutTradeNo: "01Kpaid", Seq: 4,
		TimeMs: time.Now().UnixMilli()}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("01Kpaid"), Value: event.Encode(&later)}); err != nil {
		t.Fatal(err)
	}
	rec2 := &recorder{}
	stop = start(t, ctx, cfg, rec2.handle)
	itest.Eventually(t, time.Minute, 100*time.Millisecond, "the later event handled", func() (bool, string) {
		return len(rec2.events()) > 0, "nothing yet"
	})
	itest.Eventually(t, time.Minute, 100*time.Millisecond, "every offset committed again", func() (bool, string) {
		return committedAll(ctx, admin, topic, group, partitions)
	})
	stop()
	if got := rec2.events(); len(got) != 1 || got[0].EventID != later.EventID {
		t.Fatalf("the second consumer handled %d events: %+v", len(got), got)
	}
}

// start runs Run until the returned function is called; Run must then
// return nil.
func start(t *testing.T, ctx context.Context, cfg Config, h Handler) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, h) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
}

// committedAll reports whether the group's committed offset is the end of
// every partition of topic: every message was read, handled or skipped,
// and committed.
func committedAll(ctx context.Context, admin *kafka.Client, topic, group string, partitions int) (bool, string) {
	var ends []kafka.OffsetRequest
	var ids []int
	for p := 0; p < partitions; p++ {
		ends = append(ends, kafka.LastOffsetOf(p))
		ids = append(ids, p)
	}
	lo, err := admin.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: ends}})
	if err != nil {
		return false, err.Error()
	}
	of, err := admin.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		return false, err.Error()
	}
	committed := map[int]int64{}
	for _, p := range of.Topics[topic] {
		committed[p.Partition] = p.CommittedOffset
	}
	var state []string
	ok := true
	for _, p := range lo.Topics[topic] {
		state = append(state, fmt.Sprintf("p%d %d/%d", p.Partition, committed[p.Partition], p.LastOffset))
		ok = ok && p.Error == nil && committed[p.Partition] == p.LastOffset
	}
	return ok && len(lo.Topics[topic]) == partitions, strings.Join(state, ", ")
}
