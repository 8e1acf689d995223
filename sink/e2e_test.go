package sink_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxpayd/wxpayd/sink/consumer"
)

// N events in → exactly N distinct events in ClickHouse, with the right
// amounts; undecodable messages and unknown versions go to the DLQ with a
// reason and do not block their partition.
func TestSinkDeliversEveryEventOnce(t *testing.T) {
	e := newEnv(t)
	evs, enc := events("A", 20000)
	poison := [][]byte{
		[]byte(`{"v":2,"event_id":"future:1","type":"order.paid","out_trade_no":"future","seq":1,"ts_ms":1700000000000}`),
		[]byte(`not json`),
		[]byte(`{"v":1,"type":"order.paid","ts_ms":1700000000000}`), // no event_id
	}
	mixed := append(append(append([][]byte(nil), enc[:10000]...), poison...), enc[10000:]...)
	e.produce(mixed)
	// and again: redelivery of everything must not change the result
	e.produce(enc[:5000])
	e.runSink(e.config())
	e.waitExactly(evs, 2*time.Minute)

	dlq := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, GroupID: e.group + "-dlq-check", Topic: e.topic + ".dlq",
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer dlq.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reasons := map[string]string{}
	for range poison {
		m, err := dlq.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading the DLQ: %v (got %v)", err, reasons)
		}
		for _, h := range m.Headers {
			if h.Key == consumer.DLQReasonHeader {
				reasons[string(m.Value)] = string(h.Value)
			}
		}
	}
	for _, p := range poison {
		if reasons[string(p)] == "" {
			t.Errorf("DLQ lacks %s with a reason (got %v)", p, reasons)
		}
	}
	if r := reasons[string(poison[0])]; !strings.Contains(r, "unknown schema version") {
		t.Errorf("unknown version dead-lettered with reason %q", r)
	}
}
