package store

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"

	"github.com/wxpayd/wxpayd/actors/jsonw"
)

// sameJSON fails unless the appender wrote what encoding/json writes for v.
func sameJSON(t *testing.T, got []byte, v any) {
	t.Helper()
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("appender:\n%s\nencoding/json:\n%s", got, want)
	}
}

func TestRecordEncodersMatchEncodingJSON(t *testing.T) {
	full := Order{OutTradeNo: "o<1>", Seq: 9, State: StateRefunded, OpenID: "id", SKU: "s", Description: "手机 \"x\"",
		Quantity: 1, Total: 1999, Currency: "CNY", IdemKey: "k", PrepayID: "wx", PrepayMicros: 3, FailCode: "F",
		TransactionID: "t", CreatedMs: 1, PrepaidMs: 2, PaidMs: 3, ClosedMs: 4, ExpiresMs: 5, NextTickMs: 6, Queries: 7,
		RefundedFen: 8, Refunds: []Refund{{OutRefundNo: "r", Amount: 1, Reason: "退货", Status: "SUCCESS", RefundID: "x", CreatedMs: 1, DoneMs: 2}, {}},
		NotifyIDs: []string{"a", "b\xff"}, Alerts: []string{"\u2028"}, ShopOrderID: "shop-1", Attach: "<a&b>",
		LineItems: []LineItem{{SKU: "tea", Name: "绿茶 \"x\"", Quantity: 2, UnitPrice: -3}, {}}, RequestHash: "h"}
	sameJSON(t, appendOrder(nil, &full), &full)
	sameJSON(t, appendOrder(nil, &Order{}), &Order{})
	r := Reservation{OpenID: "o&", Quantity: -1, Sold: true, HeldMs: 4}
	sameJSON(t, appendReservation(nil, &r), &r)
	k := SKU{SKU: "s", Description: "d", Price: 1, Stock: 2, PerBuyerLimit: 3, UpdatedMs: 4}
	sameJSON(t, appendSKU(nil, &k), &k)

	cfg := &quick.Config{MaxCount: 1000, Rand: rand.New(rand.NewSource(1))}
	if err := quick.Check(func(o Order) bool { sameJSON(t, appendOrder([]byte{}, &o), &o); return true }, cfg); err != nil {
		t.Fatal(err)
	}
	if err := quick.Check(func(r Reservation) bool { sameJSON(t, appendReservation(nil, &r), &r); return true }, cfg); err != nil {
		t.Fatal(err)
	}
	if err := quick.Check(func(k SKU) bool { sameJSON(t, appendSKU(nil, &k), &k); return true }, cfg); err != nil {
		t.Fatal(err)
	}
}

// sameAsUnmarshal fails unless decodeOrder reads b exactly as json.Unmarshal
// does: the same record, or an error for both.
func sameAsUnmarshal(t *testing.T, b []byte) {
	t.Helper()
	var got, want Order
	gotErr, wantErr := decodeOrder(b, &got), json.Unmarshal(b, &want)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%s: decodeOrder error %v, json.Unmarshal error %v", b, gotErr, wantErr)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\ndecodeOrder  %+v\njson.Unmarshal %+v", b, got, want)
	}
}

func TestDecodeOrderMatchesEncodingJSON(t *testing.T) {
	plain := Order{OutTradeNo: "01ABC", Seq: 3, State: StatePaid, OpenID: "o", SKU: "s", Description: "手机",
		Quantity: 1, Total: 1999, Currency: "CNY", PrepayID: "wx1", TransactionID: "42", CreatedMs: 1, PrepaidMs: 2,
		PaidMs: 3, ExpiresMs: 4, Queries: 2, NotifyIDs: []string{"n1", "n2"}, Alerts: []string{"a"}}
	b := appendOrder(nil, &plain)
	if !jsonw.ScanFlat(b, func(key []byte, v jsonw.Value) bool { return new(Order).setField(key, v) }) {
		t.Fatalf("the fast path refused a record appendOrder wrote: %s", b)
	}
	sameAsUnmarshal(t, b)
	for _, s := range []string{
		`{}`, `{"seq":-1}`, `{"seq":18446744073709551615}`, `{"seq":18446744073709551616}`,
		`{"quantity":-9223372036854775808}`, `{"quantity":9223372036854775808}`, `{"quantity":1.5}`,
		`{"quantity":1e3}`, `{"quantity":01}`, `{"quantity":-0}`, `{"queries":"1"}`, `{"notify_ids":[]}`,
		`{"notify_ids":["a","b"],"notify_ids":["c"]}`, `{"STATE":"PAID"}`, `{"unknown":1}`, `{"state":null}`,
		`{"description":"a\"b"}`, `{"description":"\u00e9"}`, "{\"description\":\"\xff\"}", `{"sku":"s" }`,
		`{"sku":"s"}x`, `{"sku":"s",}`, `{"refunds":[{"out_refund_no":"r","amount":1,"status":"SUCCESS","created_ms":1}]}`,
		`{"sku":true}`, `{"alerts":[1]}`, `[]`, ``, `{`, `{"sku":"s"`, `{"a":tru}`,
	} {
		sameAsUnmarshal(t, []byte(s))
	}
	cfg := &quick.Config{MaxCount: 1000, Rand: rand.New(rand.NewSource(2))}
	if err := quick.Check(func(o Order) bool { sameAsUnmarshal(t, appendOrder(nil, &o)); return true }, cfg); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeOrder(f *testing.F) {
	f.Add([]byte(`{"out_trade_no":"o","seq":1,"state":"PAID","notify_ids":["x"]}`))
	f.Add([]byte(`{"quantity":-12,"refunded":0,"alerts":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) { sameAsUnmarshal(t, b) })
}

// TestEveryOrderFieldIsSpeltThreeTimesAlike: each field of Order is spelt
// in its struct tag, in appendOrder and in setField. The quick check above
// holds appendOrder to the tags for random values of every field; this
// holds setField to them: a record with every field set (refunds and line
// items aside: records with them take encoding/json on purpose) must take
// the fast path and read back equal. A field added to Order and forgotten in either
// place fails here.
func TestEveryOrderFieldIsSpeltThreeTimesAlike(t *testing.T) {
	var o Order
	v := reflect.ValueOf(&o).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.String:
			f.SetString("v-" + name)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Uint64:
			f.SetUint(uint64(i + 1))
		case reflect.Slice:
			if name == "Refunds" || name == "LineItems" {
				continue
			}
			f.Set(reflect.ValueOf([]string{"v-" + name}))
		default:
			t.Fatalf("field %s of kind %s: teach this test and setField about it", name, f.Kind())
		}
	}
	b := appendOrder(nil, &o)
	var back Order
	if !jsonw.ScanFlat(b, func(key []byte, v jsonw.Value) bool { return back.setField(key, v) }) {
		t.Fatalf("setField refused a field appendOrder wrote (add its case): %s", b)
	}
	if !reflect.DeepEqual(back, o) {
		t.Fatalf("read back\n%+v\nwrote\n%+v", back, o)
	}
	sameJSON(t, b, &o)
}
