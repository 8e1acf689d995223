package event

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
	"unicode/utf8"
)

// sameAsMarshal fails unless Encode writes what encoding/json writes.
func sameAsMarshal(t *testing.T, e Event) {
	t.Helper()
	got := Encode(&e) // sets e.V
	want, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode:\n%s\nencoding/json:\n%s", got, want)
	}
	back, err := Decode(got)
	if err != nil && e.EventID != "" && e.Type != "" && e.TimeMs > 0 {
		t.Fatalf("Decode of %s: %v", got, err)
	}
	if err == nil && !reflect.DeepEqual(back, e) && utf8Clean(e) {
		t.Fatalf("round trip: %+v, want %+v", back, e)
	}
}

// utf8Clean: strings with invalid UTF-8 do not round-trip (both encoders
// replace the bad bytes), so the round trip is checked only without them.
func utf8Clean(e Event) bool {
	v := reflect.ValueOf(e)
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.String && !utf8.ValidString(f.String()) {
			return false
		}
	}
	return true
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	full := Event{EventID: "o:1", Type: OrderPaid, OutTradeNo: "o", Seq: 1, TimeMs: 1, State: "PAID", SKU: "s<&>",
		Quantity: 2, OpenID: "oid", Amount: 3, RefundAmount: 4, RefundedTotal: 5, TransactionID: "tx",
		OutRefundNo: "r", NotificationID: "n", PrepayMicros: -6, PayMillis: 7, Reason: "退货\n\"x\"", Alert: "a\u2028",
		ShopOrderID: "shop-1", Attach: "{\"cart\":7}"}
	sameAsMarshal(t, full)
	sameAsMarshal(t, Event{})
	sameAsMarshal(t, Event{Reason: "bad \xff utf8"})
	rnd := rand.New(rand.NewSource(1))
	f := func(e Event) bool { sameAsMarshal(t, e); return true }
	if err := quick.Check(f, &quick.Config{MaxCount: 2000, Rand: rnd}); err != nil {
		t.Fatal(err)
	}
}

func FuzzEncode(f *testing.F) {
	f.Add("o:1", "order.paid", "o", uint64(1), int64(1), "PAID", int64(-1), "\xff<")
	f.Fuzz(func(t *testing.T, id, typ, otn string, seq uint64, ts int64, state string, n int64, reason string) {
		sameAsMarshal(t, Event{EventID: id, Type: typ, OutTradeNo: otn, Seq: seq, TimeMs: ts, State: state,
			Quantity: n, Amount: n, Reason: reason, OpenID: reason})
	})
}
