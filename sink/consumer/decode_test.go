package consumer_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink/consumer"
	"github.com/wxpayd/wxpayd/sink/sinktest"
)

// sameAsEventDecode checks Decode against event.Decode, the reference.
func sameAsEventDecode(t *testing.T, b []byte) {
	t.Helper()
	want, werr := event.Decode(b)
	got, gerr := consumer.Decode(b)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("Decode(%q) error %v, event.Decode %v", b, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(%q) =\n%+v\nevent.Decode =\n%+v", b, got, want)
	}
}

var decodeSeeds = []string{
	`{"v":1,"event_id":"a:1","type":"order.paid","out_trade_no":"a","seq":1,"ts_ms":1700000000000,"amount":100}`,
	` {"v":1, "event_id" : "a:1","type":"order.paid","ts_ms":1} `,
	`{"v":2,"event_id":"a:1","type":"order.paid","ts_ms":1}`,
	`{"v":1,"event_id":"","type":"order.paid","ts_ms":1}`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":0}`,
	`{"v":1,"event_id":"a\"b","type":"t","ts_ms":5}`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":5,"extra":"x"}`,
	`{"v":1,"EVENT_ID":"a","type":"t","ts_ms":5}`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":5.0}`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":05}`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":-5}`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":5,"seq":-1}`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":5,"seq":-0}`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":5,"seq":18446744073709551615}`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":9223372036854775808}`,
	`{"v":1,"event_id":"\xff","type":"t","ts_ms":5}`,
	`{"v":1,"event_id":"é","type":"t","ts_ms":5}`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":5,"sku":null}`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":5,"amount":"5"}`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":5}x`,
	`{"v":1,"event_id":"a","type":"t","ts_ms":5,}`,
	`{"v":1,"event_id":"a","event_id":"b","type":"t","ts_ms":5}`,
	`{}`, ``, `[]`, `not json`, `{"v":1`,
}

func TestDecodeMatchesEventDecode(t *testing.T) {
	for _, s := range decodeSeeds {
		sameAsEventDecode(t, []byte(s))
	}
	for _, e := range sinktest.Events("D", 50) {
		b := event.Encode(&e)
		if _, ok := consumer.DecodeFast(b); !ok {
			t.Fatalf("fast path refused what event.Encode wrote: %s", b)
		}
		sameAsEventDecode(t, b)
	}
	if _, err := consumer.Decode([]byte(decodeSeeds[2])); !errors.Is(err, event.ErrUnknownVersion) {
		t.Fatalf("v=2: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameAsEventDecode(t, b) })
}

func BenchmarkDecode(b *testing.B) {
	e := sinktest.Events("B", 1)[0]
	enc := event.Encode(&e)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for i := 0; i < b.N; i++ {
			if _, err := consumer.Decode(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("event.Decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for i := 0; i < b.N; i++ {
			if _, err := event.Decode(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
