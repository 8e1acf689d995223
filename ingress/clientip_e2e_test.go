package ingress

import (
	"encoding/json"
	"net/netip"
	"testing"
)

// TestBuyerIPReachesWeChat: in both merchant APIs, the buyer's IP goes to
// WeChat with the prepay (APIv3 scene_info.payer_client_ip, APIv2
// spbill_create_ip, as the simulator's ledger records them): read from
// X-Forwarded-For when the peer is a trusted proxy, from the connection
// when not (a forged header changes nothing), and from the shop's
// payer_client_ip for a checkout, which must be an IP.
func TestBuyerIPReachesWeChat(t *testing.T) {
	for _, api := range []string{"v3", "v2"} {
		t.Run(api, func(t *testing.T) {
			t.Parallel()
			o := stackOpts{trustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
			if api == "v2" {
				o.api = "v2"
			}
			s := newStack(t, o)
			s.putSKU("tea", 10)
			tok := s.loginAs("ip-buyer")
			order := func(hdr ...string) string {
				t.Helper()
				st, b, _ := s.do("POST", "/api/v1/orders", tok, map[string]any{"sku": "tea", "quantity": 1}, hdr...)
				if st != 201 {
					t.Fatalf("order: %d %s", st, b)
				}
				var c created
				if err := json.Unmarshal(b, &c); err != nil {
					t.Fatal(err)
				}
				return c.OutTradeNo
			}
			wechatSaw := func(otn string) string {
				t.Helper()
				l := s.sim.Ledger(otn)
				if len(l.Orders) != 1 {
					t.Fatalf("%s: WeChat has %d orders", otn, len(l.Orders))
				}
				return l.Orders[0].PayerClientIP
			}
			if got := wechatSaw(order("X-Forwarded-For", "203.0.113.7")); got != "203.0.113.7" {
				t.Errorf("behind a trusted proxy: WeChat saw %q", got)
			}
			if got := wechatSaw(order()); got != "127.0.0.1" {
				t.Errorf("no header: WeChat saw %q", got)
			}

			body := map[string]any{"shop_order_id": "IP-" + api, "openid": s.openid(tok), "amount": 1500,
				"description": "一杯茶", "payer_client_ip": "2001:db8::9"}
			st, c, b := s.checkoutCall(body)
			if st != 201 {
				t.Fatalf("checkout: %d %s", st, b)
			}
			if got := wechatSaw(c.OutTradeNo); got != "2001:db8::9" {
				t.Errorf("checkout: WeChat saw %q", got)
			}
			body["shop_order_id"], body["payer_client_ip"] = "IP-bad-"+api, "203.0.113.7:443"
			if st, c, b := s.checkoutCall(body); st != 400 || c.Error.Code != codeBadRequest {
				t.Errorf("a payer_client_ip that is no IP: %d %s", st, b)
			}
		})
	}
	t.Run("an untrusted peer's header is not believed", func(t *testing.T) {
		t.Parallel()
		s := newStack(t, stackOpts{})
		s.putSKU("tea", 10)
		tok := s.loginAs("ip-forger")
		st, b, _ := s.do("POST", "/api/v1/orders", tok, map[string]any{"sku": "tea", "quantity": 1}, "X-Forwarded-For", "203.0.113.7")
		if st != 201 {
			t.Fatalf("order: %d %s", st, b)
		}
		var c created
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		if l := s.sim.Ledger(c.OutTradeNo); len(l.Orders) != 1 || l.Orders[0].PayerClientIP != "127.0.0.1" {
			t.Errorf("WeChat saw %+v, want the peer 127.0.0.1", l.Orders)
		}
	})
}
