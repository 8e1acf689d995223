package ingress

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/bench/sim"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

// The end-to-end suite for a merchant on APIv2 (stackOpts.api "v2"): the
// same actors, state machine, timers and stock as APIv3, reached through
// /pay/unifiedorder, /pay/orderquery, /pay/closeorder, /secapi/pay/refund
// (TLS with the merchant's client certificate) and /pay/refundquery, the
// v2 paySign, and the XML notifications at /wxpay/v2/notify and
// /wxpay/v2/refund-notify.

func v2Merchant(t testing.TB, id *sim.Identity, st wxpay.V2SignType) *wxpay.V2Merchant {
	t.Helper()
	k, err := wxpay.NewV2Key(id.APIv2Key)
	if err != nil {
		t.Fatal(err)
	}
	return &wxpay.V2Merchant{AppID: id.AppID, MchID: id.MchID, Key: k, SignType: st}
}

// v2Client is wxpayd's APIv2 client for the simulator: refunds over its TLS
// listener with the merchant's API certificate, trusting its CA.
func v2Client(t testing.TB, id *sim.Identity, m *wxpay.V2Merchant, base, secureBase, refundURL string) *client.V2Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(id.CACert)
	c, err := client.NewV2(client.V2Config{
		Config: client.Config{BaseURL: base}, SecureBaseURL: secureBase, RootCAs: roots, RefundNotifyURL: refundURL,
		ClientCert: &tls.Certificate{Certificate: [][]byte{id.MerchantCert.Raw}, PrivateKey: id.MerchantKey, Leaf: id.MerchantCert},
	}, m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkV2PaySign recomputes the paySign of p with the APIv2 key and checks
// that WeChat's client (the simulator) accepts it for the buyer.
func (s *stack) checkV2PaySign(t *testing.T, p wxpay.PayParams, st wxpay.V2SignType, openid string) {
	t.Helper()
	if p.SignType != string(st) || p.AppID != s.id.AppID || !strings.HasPrefix(p.Package, "prepay_id=") {
		t.Fatalf("payment parameters %+v", p)
	}
	ts, _ := strconv.ParseInt(p.TimeStamp, 10, 64)
	again, err := s.v2.Key.RequestPayment(p.AppID, strings.TrimPrefix(p.Package, "prepay_id="), ts, p.NonceStr, st)
	if err != nil || again.PaySign != p.PaySign {
		t.Fatalf("paySign %s does not match the documented v2 signature (%v)", p.PaySign, err)
	}
	b, _ := json.Marshal(map[string]string{"timeStamp": p.TimeStamp, "nonceStr": p.NonceStr, "package": p.Package,
		"signType": p.SignType, "paySign": p.PaySign, "openid": openid})
	resp, err := s.http.Post(s.sim.URL()+"/sim/v1/requestPayment", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("WeChat's client refused the v2 paySign: %d", resp.StatusCode)
	}
}

func (s *stack) adminOrder(otn string) adminView {
	s.t.Helper()
	_, b, _ := s.do("GET", "/admin/v1/orders/"+otn, s.admin, nil)
	var v adminView
	_ = json.Unmarshal(b, &v)
	return v
}

func TestEndToEndV2PayAndRefund(t *testing.T) {
	for _, st := range []wxpay.V2SignType{wxpay.V2SignMD5, wxpay.V2SignHMACSHA256} {
		t.Run(string(st), func(t *testing.T) {
			s := newStack(t, stackOpts{api: "v2", v2SignType: st})
			s.putSKU("tea", 3)
			tok := s.loginAs("v2alice")
			st2, c, b := s.order(tok, "tea")
			if st2 != 201 || c.State != "PREPAID" || c.Amount.Total != 1999 {
				t.Fatalf("create: %d %s", st2, b)
			}
			s.checkV2PaySign(t, c.Payment, st, s.openid(tok))
			if v := s.sku("tea"); v.Left != 2 || v.Reserved != 1 {
				t.Fatalf("after prepay: %+v", v)
			}
			if code := s.simPay(c.Payment.Package, s.openid(tok)); code != 201 {
				t.Fatalf("sim pay: %d", code)
			}
			eventually(t, "the v2 notification makes the order PAID", func() bool { return s.get(tok, c.OutTradeNo).State == "PAID" })
			if v := s.sku("tea"); v.Sold != 1 || v.Reserved != 0 {
				t.Fatalf("after payment: %+v", v)
			}
			// A partial refund, then the rest: each through /secapi/pay/refund,
			// each completed by its req_info notification.
			for i, amt := range []int64{500, 1499} {
				st3, b, _ := s.do("POST", "/admin/v1/orders/"+c.OutTradeNo+"/refunds", s.admin, map[string]any{"amount": amt, "reason": "退货"})
				if st3 != 200 {
					t.Fatalf("refund %d: %d %s", i, st3, b)
				}
				want := []int64{500, 1999}[i]
				eventually(t, "the v2 refund notification completes it", func() bool {
					g := s.get(tok, c.OutTradeNo)
					return g.State == "REFUNDED" && g.Refunded == want
				})
			}
			var types []string
			for _, e := range s.adminOrder(c.OutTradeNo).Events {
				types = append(types, e.Type)
			}
			want := "order.created,order.prepaid,order.paid,order.refund_requested,order.refunded,order.refund_requested,order.refunded"
			if strings.Join(types, ",") != want {
				t.Fatalf("history %v, want %s", types, want)
			}
			// WeChat's books agree, and every notification was APIv2's and
			// acknowledged. A refund's notification may still be on its way
			// when the order shows REFUNDED (the refund's answer can carry
			// SUCCESS first): wait for its delivery.
			var view sim.OrderView
			eventually(t, "every notification delivered and acknowledged", func() bool {
				view = sim.OrderView{}
				resp, err := s.http.Get(s.sim.URL() + "/sim/v1/orders/" + c.OutTradeNo)
				if err != nil {
					return false
				}
				_ = json.NewDecoder(resp.Body).Decode(&view)
				resp.Body.Close()
				if len(view.Notifications) != 3 {
					return false
				}
				for _, n := range view.Notifications {
					if !n.Acknowledged {
						return false
					}
				}
				return true
			})
			if !view.APIv2 || view.Refunded != 1999 {
				t.Fatalf("sim view %+v", view)
			}
			for _, n := range view.Notifications {
				if !strings.HasPrefix(n.EventType, "APIV2.") {
					t.Fatalf("notification %+v", n)
				}
			}
		})
	}
}

func TestEndToEndV2TimeoutClosesAndReleasesStock(t *testing.T) {
	s := newStack(t, stackOpts{api: "v2"})
	s.putSKU("ttl", 1)
	tok := s.loginAs("v2dave")
	st, c, b := s.order(tok, "ttl")
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	s.clock.advance(16 * time.Minute)
	eventually(t, "the order closes at its TTL (/pay/closeorder)", func() bool { return s.get(tok, c.OutTradeNo).State == "CLOSED" })
	eventually(t, "stock comes back", func() bool { return s.sku("ttl").Left == 1 })
	if code := s.simPay(c.Payment.Package, s.openid(tok)); code != 409 {
		t.Fatalf("paying a closed order: %d", code)
	}
	if l := s.simLedger(c.OutTradeNo); l.Calls.Close != 1 || l.TradeState != wxpay.TradeStateClosed {
		t.Fatalf("ledger %+v", l)
	}
}

func (s *stack) simLedger(otn string) sim.LedgerOrder {
	s.t.Helper()
	resp, err := s.http.Get(s.sim.URL() + "/sim/v1/ledger?out_trade_no=" + otn)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var l sim.Ledger
	_ = json.NewDecoder(resp.Body).Decode(&l)
	if len(l.Orders) != 1 {
		s.t.Fatalf("ledger for %s: %+v", otn, l)
	}
	return l.Orders[0]
}

func TestEndToEndV2QueryWhenNotificationsAreLost(t *testing.T) {
	s := newStack(t, stackOpts{api: "v2", deadNotifyURL: true})
	s.putSKU("q", 1)
	tok := s.loginAs("v2erin")
	st, c, b := s.order(tok, "q")
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	if code := s.simPay(c.Payment.Package, s.openid(tok)); code != 201 {
		t.Fatalf("sim pay: %d", code)
	}
	time.Sleep(100 * time.Millisecond)
	if s.get(tok, c.OutTradeNo).State != "PREPAID" {
		t.Fatal("paid without a notification or a query")
	}
	s.clock.advance(61 * time.Second)
	eventually(t, "the active query (/pay/orderquery) finds the payment", func() bool { return s.get(tok, c.OutTradeNo).State == "PAID" })
	// The refund's notification is lost too: the refund query completes it.
	if st, b, _ := s.do("POST", "/admin/v1/orders/"+c.OutTradeNo+"/refunds", s.admin, map[string]any{"amount": 1999}); st != 200 {
		t.Fatalf("refund: %d %s", st, b)
	}
	s.clock.advance(61 * time.Second)
	eventually(t, "the refund query (/pay/refundquery) completes the refund", func() bool {
		g := s.get(tok, c.OutTradeNo)
		return g.State == "REFUNDED" && g.Refunded == 1999
	})
}

// TestEndToEndV2RefundLostIsRetried: the refund's answer is lost after
// WeChat made it; wxpayd sends it again with the same out_refund_no and
// WeChat refunds once.
func TestEndToEndV2RefundLostIsRetried(t *testing.T) {
	s := newStack(t, stackOpts{api: "v2"})
	s.putSKU("lost", 1)
	tok := s.loginAs("v2lost")
	_, c, _ := s.order(tok, "lost")
	if code := s.simPay(c.Payment.Package, s.openid(tok)); code != 201 {
		t.Fatalf("sim pay: %d", code)
	}
	eventually(t, "paid", func() bool { return s.get(tok, c.OutTradeNo).State == "PAID" })
	if err := s.sim.SetFaults("refund.bad_gateway=1"); err != nil {
		t.Fatal(err)
	}
	if st, b, _ := s.do("POST", "/admin/v1/orders/"+c.OutTradeNo+"/refunds", s.admin, map[string]any{"amount": 1999}); st != 202 {
		t.Fatalf("refund with WeChat behind a failing proxy: %d %s, want 202 (pending)", st, b)
	}
	if err := s.sim.SetFaults("refund.lost=1"); err != nil {
		t.Fatal(err)
	}
	s.clock.advance(61 * time.Second)
	eventually(t, "a lost answer, refunded at WeChat", func() bool { return s.simLedger(c.OutTradeNo).Refunded == 1999 })
	_ = s.sim.SetFaults("")
	eventually(t, "the refund is complete, once", func() bool {
		g := s.get(tok, c.OutTradeNo)
		return g.State == "REFUNDED" && g.Refunded == 1999
	})
	if l := s.simLedger(c.OutTradeNo); len(l.Refunds) != 1 || l.Refunded != 1999 {
		t.Fatalf("WeChat's ledger: %+v", l)
	}
}

func TestEndToEndV2PaidAfterCloseIsRecorded(t *testing.T) {
	s := newStack(t, stackOpts{api: "v2"})
	s.putSKU("pac", 1)
	tok := s.loginAs("v2grace")
	st, c, b := s.order(tok, "pac")
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	s.clock.advance(16 * time.Minute)
	eventually(t, "closed", func() bool { return s.get(tok, c.OutTradeNo).State == "CLOSED" })
	// WeChat reports a payment anyway (the buyer paid while we closed).
	body := s.v2PayNotice(c.OutTradeNo, s.openid(tok), 1999, wxpay.V2SignMD5, nil)
	if st, reply := s.postXML("/wxpay/v2/notify", body); st != 200 || reply != wxpay.V2NotifySuccessReply {
		t.Fatalf("notification: %d %s", st, reply)
	}
	if s.get(tok, c.OutTradeNo).State != "PAID" {
		t.Fatal("money received for a closed order was dropped")
	}
	h := s.history(c.OutTradeNo)
	if last := h[len(h)-1]; last.Type != event.OrderPaid || last.Alert == "" {
		t.Fatalf("want order.paid with an alert, got %+v", last)
	}
	eventually(t, "sold", func() bool { return s.sku("pac").Sold == 1 })
}

// v2PayNotice is an APIv2 payment notification for otn, signed with the
// APIv2 key (mod changes fields before signing).
func (s *stack) v2PayNotice(otn, openid string, total int64, st wxpay.V2SignType, mod func(map[string]string)) []byte {
	s.t.Helper()
	fee := strconv.FormatInt(total, 10)
	p := map[string]string{
		"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": s.id.AppID, "mch_id": s.id.MchID,
		"nonce_str": wxpay.NewNonce(), "openid": openid, "trade_type": "JSAPI", "bank_type": "CMC",
		"total_fee": fee, "cash_fee": fee, "fee_type": "CNY", "transaction_id": "4200000000" + otn[len(otn)-8:],
		"out_trade_no": otn, "time_end": time.Now().Format(wxpay.V2TimeLayout),
	}
	if st == wxpay.V2SignHMACSHA256 {
		p["sign_type"] = string(st)
	}
	if mod != nil {
		mod(p)
	}
	sig, err := s.v2.Key.Sign(p, st)
	if err != nil {
		s.t.Fatal(err)
	}
	p["sign"] = sig
	return wxpay.AppendV2XML(nil, p)
}

// TestV2NotificationRejectionsForV2Orders: every APIv2 notification that
// must not pay an order created through unifiedorder is refused with
// WeChat's FAIL XML (so WeChat retries), nothing moves, and the genuine one
// pays exactly once.
func TestV2NotificationRejectionsForV2Orders(t *testing.T) {
	s := newStack(t, stackOpts{api: "v2", deadNotifyURL: true})
	s.putSKU("n2", 10)
	tok := s.loginAs("v2frank")
	openid := s.openid(tok)
	st, c, b := s.order(tok, "n2")
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	otn := c.OutTradeNo
	other, _ := wxpay.NewV2Key([]byte("another-apiv2-key-0123456789abcd"))
	cases := []struct {
		name   string
		body   func() []byte
		status int
		event  string
	}{
		{"a tampered amount", func() []byte {
			return bytes.ReplaceAll(s.v2PayNotice(otn, openid, 1999, wxpay.V2SignMD5, nil), []byte("CDATA[1999]"), []byte("CDATA[1]"))
		}, 401, ""},
		{"signed with another key", func() []byte {
			p, _ := wxpay.ParseV2XML(s.v2PayNotice(otn, openid, 1999, wxpay.V2SignMD5, nil))
			delete(p, "sign")
			p["sign"], _ = other.Sign(p, wxpay.V2SignMD5)
			return wxpay.AppendV2XML(nil, p)
		}, 401, ""},
		{"no sign", func() []byte {
			p, _ := wxpay.ParseV2XML(s.v2PayNotice(otn, openid, 1999, wxpay.V2SignMD5, nil))
			delete(p, "sign")
			return wxpay.AppendV2XML(nil, p)
		}, 401, ""},
		{"not XML", func() []byte { return []byte(`{"return_code":"SUCCESS"}`) }, 400, ""},
		{"an oversize body", func() []byte {
			return append(s.v2PayNotice(otn, openid, 1999, wxpay.V2SignMD5, nil), bytes.Repeat([]byte(" "), wxpay.MaxNotificationBody)...)
		}, 413, ""},
		{"an amount mismatch, correctly signed", func() []byte { return s.v2PayNotice(otn, openid, 1, wxpay.V2SignMD5, nil) }, 400, event.NotifyMismatch},
		{"an appid mismatch", func() []byte {
			return s.v2PayNotice(otn, openid, 1999, wxpay.V2SignMD5, func(p map[string]string) { p["appid"] = "wx0000000000000000" })
		}, 400, event.NotifyMismatch},
		{"a mch_id mismatch", func() []byte {
			return s.v2PayNotice(otn, openid, 1999, wxpay.V2SignHMACSHA256, func(p map[string]string) { p["mch_id"] = "1111111111" })
		}, 400, event.NotifyMismatch},
		{"an unknown order", func() []byte { return s.v2PayNotice("01UNKNOWNORDER0000000", openid, 1999, wxpay.V2SignMD5, nil) }, 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.history(otn))
			status, reply := s.postXML("/wxpay/v2/notify", tc.body())
			if p, err := wxpay.ParseV2XML([]byte(reply)); status != tc.status || err != nil || p["return_code"] != "FAIL" {
				t.Fatalf("got %d %s, want %d with return_code FAIL", status, reply, tc.status)
			}
			if got := s.get(tok, otn).State; got != "PREPAID" {
				t.Fatalf("the order moved to %s", got)
			}
			h := s.history(otn)
			switch {
			case tc.event == "" && len(h) != before:
				t.Fatalf("history grew: %v", h[before:])
			case tc.event != "" && (len(h) != before+1 || h[before].Type != tc.event):
				t.Fatalf("want one %s event, history %v", tc.event, h[before:])
			}
		})
	}
	// An APIv2 merchant has no APIv3 key: the v3 route is not served.
	if st, _ := s.post(notice{body: []byte(`{}`)}); st != 404 {
		t.Fatalf("/wxpay/v3/notify on an APIv2 merchant: %d", st)
	}
	// The genuine one pays, twice answered with WeChat's exact success XML.
	genuine := s.v2PayNotice(otn, openid, 1999, wxpay.V2SignHMACSHA256, nil)
	for i := 0; i < 2; i++ {
		if st, reply := s.postXML("/wxpay/v2/notify", genuine); st != 200 || reply != wxpay.V2NotifySuccessReply {
			t.Fatalf("genuine #%d: %d %s", i+1, st, reply)
		}
	}
	var paid, dup int
	for _, e := range s.history(otn) {
		switch e.Type {
		case event.OrderPaid:
			paid++
		case event.NotifyDuplicate:
			dup++
		}
	}
	if s.get(tok, otn).State != "PAID" || paid != 1 || dup != 1 {
		t.Fatalf("paid events %d, duplicates %d", paid, dup)
	}
	// A refund notification for a refund wxpayd never asked for is a
	// mismatch; one whose req_info is not under this key is refused.
	plain := "<root><out_refund_no><![CDATA[" + otn + "-R9]]></out_refund_no><out_trade_no><![CDATA[" + otn +
		"]]></out_trade_no><refund_fee><![CDATA[1]]></refund_fee><refund_id><![CDATA[503000000001]]></refund_id>" +
		"<refund_status><![CDATA[SUCCESS]]></refund_status><total_fee><![CDATA[1999]]></total_fee>" +
		"<transaction_id><![CDATA[42000001]]></transaction_id></root>"
	for _, tc := range []struct {
		key    *wxpay.V2Key
		status int
	}{{s.v2.Key, 400}, {other, 400}} {
		ri, _ := tc.key.EncryptReqInfo([]byte(plain))
		doc := wxpay.AppendV2XML(nil, map[string]string{"return_code": "SUCCESS", "appid": s.id.AppID, "mch_id": s.id.MchID, "nonce_str": "x", "req_info": ri})
		if st, reply := s.postXML("/wxpay/v2/refund-notify", doc); st != tc.status || !strings.Contains(reply, "FAIL") {
			t.Fatalf("refund notice: %d %s", st, reply)
		}
	}
	if g := s.get(tok, otn); g.State != "PAID" || g.Refunded != 0 {
		t.Fatalf("after forged refund notices: %+v", g)
	}
}

// TestEndToEndV2AbnormalRefundIsLeftToThePlatform: WeChat ends an APIv2
// refund CHANGE (ABNORMAL); wxpayd records it once with an alert, and the
// admin's apply-abnormal, which APIv2 does not have, is answered 501
// NOT_IN_APIV2 without changing anything.
func TestEndToEndV2AbnormalRefundIsLeftToThePlatform(t *testing.T) {
	s := newStack(t, stackOpts{api: "v2", simCfg: func(c *sim.Config) { c.RefundOutcomes = "abnormal=1" }})
	s.putSKU("card", 1)
	tok := s.loginAs("v2dora")
	_, c, _ := s.order(tok, "card")
	if code := s.simPay(c.Payment.Package, s.openid(tok)); code != 201 {
		t.Fatalf("sim pay: %d", code)
	}
	eventually(t, "paid", func() bool { return s.get(tok, c.OutTradeNo).State == "PAID" })
	if st, b, _ := s.do("POST", "/admin/v1/orders/"+c.OutTradeNo+"/refunds", s.admin, map[string]any{"amount": 1999}); st != 200 {
		t.Fatalf("refund: %d %s", st, b)
	}
	eventually(t, "the CHANGE notification recorded as ABNORMAL", func() bool {
		return s.adminOrder(c.OutTradeNo).Order.Refunds[0].Status == "ABNORMAL"
	})
	no := s.adminOrder(c.OutTradeNo).Order.Refunds[0].OutRefundNo
	st, b, _ := s.do("POST", "/admin/v1/orders/"+c.OutTradeNo+"/refunds/"+no+"/apply-abnormal", s.admin, map[string]any{"type": "MERCHANT_BANK_CARD"})
	if st != 501 || !strings.Contains(string(b), "NOT_IN_APIV2") {
		t.Fatalf("apply-abnormal on APIv2: %d %s", st, b)
	}
	v := s.adminOrder(c.OutTradeNo)
	abnormal := 0
	for _, e := range v.Events {
		if e.Type == event.OrderRefundAbnormal {
			abnormal++
		}
	}
	if v.Order.Refunds[0].Status != "ABNORMAL" || abnormal != 1 || len(v.Order.Alerts) == 0 {
		t.Fatalf("after the refused apply: %+v, %d refund_abnormal events", v.Order, abnormal)
	}
}
