package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/wxpayd/wxpayd/actors/store"
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

// TestPayerClientIPSurvivesRacesFailuresAndRestarts: buyers race one
// Idempotency-Key from sixteen IPs while WeChat answers 429, times out and
// loses an answer after acting; the order is one, its IP is one of the
// sixteen, and every prepay sends that one. The process then stops with
// the order still CREATED and starts again on the same store: the replay,
// from yet another IP, sends the same IP, read back from disk.
func TestPayerClientIPSurvivesRacesFailuresAndRestarts(t *testing.T) {
	t.Parallel()
	wc := &scriptedWeChat{state: map[string]string{}}
	wc.prepayErr = func(_ string, n int64) error {
		switch n {
		case 1:
			return &wxpay.APIError{Status: 429, Code: wxpay.CodeFrequencyLimited}
		case 2:
			return context.DeadlineExceeded // the answer did not come in time
		case 3:
			return &wxpay.APIError{Status: 500, Code: wxpay.CodeSystemError} // it acted; its answer was lost
		}
		if n < 10 {
			return &wxpay.APIError{Status: 500, Code: wxpay.CodeSystemError}
		}
		return nil
	}
	rec := &recordingWeChat{scriptedWeChat: wc}
	dir := t.TempDir()
	h := newRecordingHarness(t, dir, rec, nil)
	h.putSKU(t, "tea", 10, 0)
	const otn = "01IPRACE001"
	msg := func(ip string) *Prepay {
		return &Prepay{OutTradeNo: otn, OpenID: "buyer", SKU: "tea", Quantity: 1, IdemKey: "k", ClientIP: ip}
	}
	ips := map[string]bool{}
	var wg sync.WaitGroup
	for i := range 16 {
		ip := fmt.Sprintf("203.0.113.%d", i+1)
		ips[ip] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := h.sys.Request(context.Background(), msg(ip))
			if err == nil && r.Order.OutTradeNo != otn {
				t.Errorf("%s: answered order %q", ip, r.Order.OutTradeNo)
			}
		}()
	}
	wg.Wait()
	o := h.order(t, otn)
	won := o.PayerClientIP
	if !ips[won] || o.State != store.StateCreated {
		t.Fatalf("after the race: state %s, payer_client_ip %q", o.State, won)
	}
	sentAll := func(when string) {
		t.Helper()
		reqs := rec.prepaysOf(otn)
		if len(reqs) == 0 {
			t.Fatalf("%s: no prepay sent", when)
		}
		for i, p := range reqs {
			if p.SceneInfo == nil || p.SceneInfo.PayerClientIP != won {
				t.Fatalf("%s: prepay %d of %d sent %+v, want %s", when, i+1, len(reqs), p.SceneInfo, won)
			}
		}
	}
	sentAll("racing")
	if n, err := h.st.CountOrders(); err != nil || n != 1 {
		t.Fatalf("%d orders (%v)", n, err)
	}

	h.close() // stopped with the order CREATED and its last outcome unknown
	h = newRecordingHarness(t, dir, rec, h.clk)
	for i := 0; ; i++ {
		r, err := h.sys.Request(context.Background(), msg("198.51.100.77"))
		if err == nil && r.Order.State == store.StatePrepaid {
			if r.Order.PayerClientIP != won {
				t.Fatalf("after the restart: payer_client_ip %q, want %q", r.Order.PayerClientIP, won)
			}
			break
		}
		if i == 20 {
			t.Fatalf("not prepaid after %d replays: %+v %v", i, r.Order, err)
		}
	}
	sentAll("after the restart")
	if n := len(rec.prepaysOf(otn)); n < 10 {
		t.Fatalf("%d prepays: the scripted failures were not all met", n)
	}
	held := 0
	if err := h.st.Reservations("tea", func(string, store.Reservation) error { held++; return nil }); err != nil || held != 1 {
		t.Fatalf("%d reservations of tea (%v), want the order's one", held, err)
	}
}
