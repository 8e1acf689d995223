package store

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"testing"
	"testing/quick"
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
		NotifyIDs: []string{"a", "b\xff"}, Alerts: []string{"\u2028"}}
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
