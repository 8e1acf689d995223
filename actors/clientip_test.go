package actors

import (
	"context"
	"errors"
	"testing"

	"github.com/wxpayd/wxpayd/wxpay"
)

// TestPayerClientIPGoesWithEveryPrepayOfTheOrder: the buyer's IP given
// with the request that creates an order is kept in its record and sent
// with every prepay of that order (scene_info.payer_client_ip), a retry
// after an unknown outcome included, whatever IP the retry came from; it
// is no part of what a replay must match. Without one, no scene_info.
func TestPayerClientIPGoesWithEveryPrepayOfTheOrder(t *testing.T) {
	t.Parallel()
	unknown := &wxpay.APIError{Status: 500, Code: wxpay.CodeSystemError}
	wc := &scriptedWeChat{state: map[string]string{}}
	wc.prepayErr = func(_ string, n int64) error {
		if n == 1 || n == 3 { // the first prepay of each order: outcome unknown
			return unknown
		}
		return nil
	}
	h, rec := newCheckoutHarness(t, wc)
	h.putSKU(t, "tea", 10, 0)
	ctx := context.Background()

	buy := &Prepay{OutTradeNo: "01IPBUYER01", OpenID: "buyer", SKU: "tea", Quantity: 1, IdemKey: "k1", ClientIP: "203.0.113.7"}
	if _, err := h.sys.Request(ctx, buy); !errors.Is(err, unknown) {
		t.Fatalf("first prepay: %v", err)
	}
	again := *buy
	again.ClientIP = "198.51.100.1" // the buyer's phone changed networks
	if r, err := h.sys.Request(ctx, &again); err != nil || r.Status != StatusOK || r.Order.PayerClientIP != "203.0.113.7" {
		t.Fatalf("replay from another IP: %d %+v %v", r.Status, r.Order, err)
	}

	co := checkoutMsg("01IPSHOP001")
	co.ClientIP = "2001:db8::7"
	if _, err := h.sys.Request(ctx, co); !errors.Is(err, unknown) {
		t.Fatalf("first checkout prepay: %v", err)
	}
	coAgain := *co
	coAgain.ClientIP = ""
	if r, err := h.sys.Request(ctx, &coAgain); err != nil || r.Status != StatusOK {
		t.Fatalf("checkout replay without an IP: %d %v", r.Status, err)
	}

	for otn, want := range map[string]string{"01IPBUYER01": "203.0.113.7", "01IPSHOP001": "2001:db8::7"} {
		reqs := rec.prepaysOf(otn)
		if len(reqs) != 2 {
			t.Fatalf("%s: %d prepays, want 2", otn, len(reqs))
		}
		for i, p := range reqs {
			if p.SceneInfo == nil || p.SceneInfo.PayerClientIP != want {
				t.Errorf("%s prepay %d: scene_info %+v, want payer_client_ip %s", otn, i+1, p.SceneInfo, want)
			}
		}
		if got := h.order(t, otn).PayerClientIP; got != want {
			t.Errorf("%s: record's payer_client_ip %q, want %q", otn, got, want)
		}
	}

	plain := &Prepay{OutTradeNo: "01IPNONE001", OpenID: "buyer2", SKU: "tea", Quantity: 1, IdemKey: "k2"}
	if r, err := h.sys.Request(ctx, plain); err != nil || r.Status != StatusCreated {
		t.Fatalf("prepay without an IP: %d %v", r.Status, err)
	}
	if reqs := rec.prepaysOf(plain.OutTradeNo); len(reqs) != 1 || reqs[0].SceneInfo != nil {
		t.Fatalf("without an IP: %+v", reqs)
	}
}
