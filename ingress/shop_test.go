package ingress

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
)

// shopToken is the shop's credential in the end-to-end stack.
const shopToken = "shop-token-0123456789"

// goodCheckout is a valid checkout body, to change one field at a time.
func goodCheckout() checkoutRequest {
	return checkoutRequest{ShopOrderID: "A-1001_x", OpenID: "oBuyer_-1", Amount: 3000, Description: "两杯茶",
		Attach: `{"cart":"c-9"}`, LineItems: []lineItem{{SKU: "tea.green", Name: "绿茶", Quantity: 2, UnitPrice: 1500}}}
}

func TestValidateCheckout(t *testing.T) {
	t.Parallel()
	i64 := func(n int64) *int64 { return &n }
	cases := []struct {
		name string
		edit func(r *checkoutRequest)
		want string // a part of the message; "" valid
	}{
		{"a full request is valid", func(r *checkoutRequest) {}, ""},
		{"line items are optional", func(r *checkoutRequest) { r.LineItems = nil }, ""},
		{"the buyer may be a session", func(r *checkoutRequest) { r.OpenID, r.Session = "", "tok" }, ""},
		{"attach may be empty", func(r *checkoutRequest) { r.Attach = "" }, ""},
		{"127 bytes of description pass", func(r *checkoutRequest) { r.Description = strings.Repeat("茶", 42) + "a" }, ""},
		{"127 bytes of attach pass", func(r *checkoutRequest) { r.Attach = strings.Repeat("a", 127) }, ""},
		{"the largest amount passes", func(r *checkoutRequest) { r.Amount, r.LineItems = maxCheckoutFen, nil }, ""},
		{"expires_in of 60 s passes", func(r *checkoutRequest) { r.ExpiresIn = i64(60) }, ""},
		{"expires_in of 2 h passes", func(r *checkoutRequest) { r.ExpiresIn = i64(7200) }, ""},
		{"a free line passes", func(r *checkoutRequest) {
			r.LineItems = append(r.LineItems, lineItem{SKU: "gift", Quantity: 1, UnitPrice: 0})
		}, ""},
		{"the shop order id is required", func(r *checkoutRequest) { r.ShopOrderID = "" }, "shop_order_id"},
		{"a shop order id over 64 characters is refused", func(r *checkoutRequest) { r.ShopOrderID = strings.Repeat("a", 65) }, "shop_order_id"},
		{"a shop order id with a slash is refused", func(r *checkoutRequest) { r.ShopOrderID = "a/b" }, "shop_order_id"},
		{"a shop order id with a dot is refused", func(r *checkoutRequest) { r.ShopOrderID = "a.b" }, "shop_order_id"},
		{"a shop order id in Chinese is refused", func(r *checkoutRequest) { r.ShopOrderID = "订单1" }, "shop_order_id"},
		{"the buyer is required", func(r *checkoutRequest) { r.OpenID = "" }, "buyer is required"},
		{"openid and session together are refused", func(r *checkoutRequest) { r.Session = "tok" }, "not both"},
		{"an openid with a space is refused", func(r *checkoutRequest) { r.OpenID = "o x" }, "openid"},
		{"an openid over 128 characters is refused", func(r *checkoutRequest) { r.OpenID = strings.Repeat("o", 129) }, "openid"},
		{"a zero amount is refused", func(r *checkoutRequest) { r.Amount, r.LineItems = 0, nil }, "amount"},
		{"a negative amount is refused", func(r *checkoutRequest) { r.Amount, r.LineItems = -1, nil }, "amount"},
		{"an amount over the bound is refused", func(r *checkoutRequest) { r.Amount, r.LineItems = maxCheckoutFen+1, nil }, "amount"},
		{"the description is required", func(r *checkoutRequest) { r.Description = "" }, "description"},
		{"128 bytes of description are refused", func(r *checkoutRequest) { r.Description = strings.Repeat("a", 128) }, "description"},
		{"a description of 43 Chinese characters (129 bytes) is refused", func(r *checkoutRequest) { r.Description = strings.Repeat("茶", 43) }, "description"},
		{"a description with a newline is refused", func(r *checkoutRequest) { r.Description = "a\nb" }, "description"},
		{"a description of broken UTF-8 is refused", func(r *checkoutRequest) { r.Description = "a\xffb" }, "description"},
		{"128 bytes of attach are refused", func(r *checkoutRequest) { r.Attach = strings.Repeat("a", 128) }, "attach"},
		{"an attach of broken UTF-8 is refused", func(r *checkoutRequest) { r.Attach = "\xc3" }, "attach"},
		{"expires_in under a minute is refused", func(r *checkoutRequest) { r.ExpiresIn = i64(59) }, "expires_in"},
		{"expires_in of zero is refused", func(r *checkoutRequest) { r.ExpiresIn = i64(0) }, "expires_in"},
		{"expires_in over 2 h is refused", func(r *checkoutRequest) { r.ExpiresIn = i64(7201) }, "expires_in"},
		{"line items that do not sum to the amount are refused", func(r *checkoutRequest) { r.Amount = 3001 }, "sum to 3000"},
		{"too many lines are refused", func(r *checkoutRequest) {
			r.LineItems = nil
			for i := 0; i < maxLineItems+1; i++ {
				r.LineItems = append(r.LineItems, lineItem{SKU: "s", Quantity: 1, UnitPrice: 1})
			}
			r.Amount = maxLineItems + 1
		}, "at most 50 lines"},
		{"a line without sku is refused", func(r *checkoutRequest) { r.LineItems[0].SKU = "" }, "line_items[0].sku"},
		{"a line sku over 32 characters is refused", func(r *checkoutRequest) { r.LineItems[0].SKU = strings.Repeat("s", 33) }, "line_items[0].sku"},
		{"a line name over 256 bytes is refused", func(r *checkoutRequest) { r.LineItems[0].Name = strings.Repeat("n", 257) }, "line_items[0].name"},
		{"a line of quantity 0 is refused", func(r *checkoutRequest) { r.LineItems[0].Quantity = 0 }, "line_items[0].quantity"},
		{"a line quantity past the bound is refused", func(r *checkoutRequest) { r.LineItems[0].Quantity = maxLineQuantity + 1 }, "line_items[0].quantity"},
		{"a negative unit price is refused", func(r *checkoutRequest) { r.LineItems[0].UnitPrice = -1 }, "line_items[0].unit_price"},
		{"a huge unit price is refused before it can overflow the sum", func(r *checkoutRequest) {
			r.LineItems[0].UnitPrice = 1 << 62
		}, "line_items[0].unit_price"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := goodCheckout()
			tc.edit(&r)
			got := validateCheckout(&r)
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestShopTokenConfig(t *testing.T) {
	t.Parallel()
	base := Config{AppID: "a", MchID: "m", SessionSecret: bytes.Repeat([]byte("s"), 32), AdminToken: []byte("admin-token-0123456789")}
	for _, tc := range []struct {
		name  string
		token string
		ok    bool
	}{
		{"no shop token turns the checkout API off", "", true},
		{"a 16-byte shop token is taken", "0123456789abcdef", true},
		{"a short shop token is refused", "0123456789abcde", false},
		{"the admin token as the shop token is refused", "admin-token-0123456789", false},
	} {
		c := base
		c.ShopToken = []byte(tc.token)
		c.setDefaults()
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// checkoutCall posts a checkout with the shop's token.
func (s *stack) checkoutCall(body any) (int, shopAnswer, []byte) {
	s.t.Helper()
	st, b, _ := s.do("POST", "/api/v1/checkouts", shopToken, body)
	var a shopAnswer
	_ = json.Unmarshal(b, &a)
	return st, a, b
}

type shopAnswer struct {
	created
	ShopOrderID string           `json:"shop_order_id"`
	Attach      string           `json:"attach"`
	LineItems   []store.LineItem `json:"line_items"`
	Description string           `json:"description"`
	ExpiresAt   string           `json:"expires_at"`
	CreatedAt   string           `json:"created_at"`
	Error       struct {
		Code string `json:"code"`
	} `json:"error"`
}

// TestEndToEndCheckout: a shop's backend checks out for a logged-in buyer;
// the buyer pays through the simulator; the order is PAID, every event
// (history and outbox) carries the shop's order id and attach; a retry
// answers the same order, a retry with other fields 422; the refund works
// as for any order.
func TestEndToEndCheckout(t *testing.T) {
	s := newStack(t, stackOpts{})
	tok := s.loginAs("grace")
	body := map[string]any{"shop_order_id": "A-1001", "session": tok, "amount": 3000, "description": "两杯茶",
		"attach": `{"cart":"c-9"}`, "line_items": []map[string]any{{"sku": "tea", "name": "绿茶", "quantity": 2, "unit_price": 1500}},
		"expires_in": 900}
	st, c, b := s.checkoutCall(body)
	if st != 201 || c.State != "PREPAID" || c.ShopOrderID != "A-1001" || c.Attach != `{"cart":"c-9"}` || c.Amount.Total != 3000 ||
		len(c.LineItems) != 1 || !strings.HasPrefix(c.OutTradeNo, "01S") || len(c.OutTradeNo) != 29 {
		t.Fatalf("checkout: %d %s", st, b)
	}
	if err := verifyPaySign(s.id, c.Payment); err != nil {
		t.Fatal(err)
	}
	created, _ := time.Parse(time.RFC3339, c.CreatedAt)
	expires, _ := time.Parse(time.RFC3339, c.ExpiresAt)
	if d := expires.Sub(created); d < 899*time.Second || d > 901*time.Second {
		t.Fatalf("expires_in 900 gave an order living %s", d)
	}
	// The same request again (the buyer named by openid this time): the
	// same order, freshly signed.
	body2 := map[string]any{}
	for k, v := range body {
		body2[k] = v
	}
	delete(body2, "session")
	body2["openid"] = s.openid(tok)
	st, again, b := s.checkoutCall(body2)
	if st != 200 || again.OutTradeNo != c.OutTradeNo || again.Payment.Package != c.Payment.Package {
		t.Fatalf("replay: %d %s", st, b)
	}
	// Other fields under the same shop order id: refused, nothing changes.
	body2["amount"], body2["line_items"] = 3001, nil
	if st, a, b := s.checkoutCall(body2); st != 422 || a.Error.Code != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("other fields: %d %s", st, b)
	}
	// The buyer pays in the Mini Program (the simulator).
	if code := s.simPay(c.Payment.Package, s.openid(tok)); code != 201 {
		t.Fatalf("sim pay: %d", code)
	}
	eventually(t, "PAID", func() bool { return s.get(tok, c.OutTradeNo).State == "PAID" })
	if st, a, b := s.checkoutCall(body); st != 200 || a.State != "PAID" || a.Payment.Package != "" {
		t.Fatalf("replay once paid: %d %s", st, b)
	}
	if st, b, _ := s.do("POST", "/admin/v1/orders/"+c.OutTradeNo+"/refunds", s.admin, map[string]any{"amount": 1500}); st != 200 {
		t.Fatalf("refund: %d %s", st, b)
	}
	eventually(t, "refunded", func() bool { g := s.get(tok, c.OutTradeNo); return g.State == "REFUNDED" && g.Refunded == 1500 })

	want := []string{event.OrderCreated, event.OrderPrepaid, event.OrderPaid, event.OrderRefundRequested, event.OrderRefunded}
	var types []string
	for _, e := range s.history(c.OutTradeNo) {
		types = append(types, e.Type)
		if e.ShopOrderID != "A-1001" || e.Attach != `{"cart":"c-9"}` || e.OpenID != s.openid(tok) {
			t.Fatalf("history event %+v lacks the shop's fields", e)
		}
	}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Fatalf("history %v, want %v", types, want)
	}
	// What the relay publishes: the outbox holds the same fields.
	out, err := s.st.ReadOutbox(0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, x := range out {
		e, err := event.Decode(x.Value)
		if err != nil {
			t.Fatal(err)
		}
		if e.OutTradeNo != c.OutTradeNo {
			continue
		}
		n++
		if e.ShopOrderID != "A-1001" || e.Attach != `{"cart":"c-9"}` {
			t.Fatalf("outbox event %s lacks the shop's fields", x.Value)
		}
	}
	if n != len(want) {
		t.Fatalf("%d outbox events of the order, want %d", n, len(want))
	}
	// No stock moved: the checkout order holds no reservation.
	if r, _ := stockOnDiskOf(s.st); r != 0 {
		t.Fatalf("%d reservations", r)
	}
}

// stockOnDiskOf counts the reservations of every SKU in the catalogue.
func stockOnDiskOf(st *store.Store) (int, error) {
	n := 0
	err := st.SKUs(func(k store.SKU) error {
		return st.Reservations(k.SKU, func(string, store.Reservation) error { n++; return nil })
	})
	return n, err
}

// TestEndToEndCheckoutRefusals: the route's authentication and the
// answers to bad requests and bad buyers.
func TestEndToEndCheckoutRefusals(t *testing.T) {
	s := newStack(t, stackOpts{})
	good := map[string]any{"shop_order_id": "B-1", "openid": "oBuyer", "amount": 100, "description": "d"}
	for _, tc := range []struct {
		name, token string
		status      int
		code        string
	}{
		{"no token", "", 401, "UNAUTHORIZED"},
		{"a wrong token", shopToken + "x", 401, "UNAUTHORIZED"},
		{"the admin token", s.admin, 401, "UNAUTHORIZED"},
		{"a buyer's session", s.loginAs("heidi"), 401, "UNAUTHORIZED"},
	} {
		st, b, _ := s.do("POST", "/api/v1/checkouts", tc.token, good)
		if st != tc.status || !strings.Contains(string(b), tc.code) {
			t.Errorf("%s: %d %s", tc.name, st, b)
		}
	}
	if st, b, h := s.do("GET", "/api/v1/checkouts", shopToken, nil); st != 405 || h.Get("Allow") != "POST" {
		t.Errorf("GET: %d %s", st, b)
	}
	expired := (&sessions{secret: bytes.Repeat([]byte("s"), 32), ttl: time.Hour,
		now: func() time.Time { return time.Now().Add(-3 * time.Hour) }})
	old, _ := expired.issue("oOld")
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"an unknown field", map[string]any{"shop_order_id": "B-1", "openid": "o", "amount": 1, "description": "d", "sku": "x"}, 400, "BAD_REQUEST"},
		{"a fractional amount", map[string]any{"shop_order_id": "B-1", "openid": "o", "amount": 1.5, "description": "d"}, 400, "BAD_REQUEST"},
		{"lines summing to another amount", map[string]any{"shop_order_id": "B-1", "openid": "o", "amount": 100, "description": "d",
			"line_items": []map[string]any{{"sku": "a", "quantity": 3, "unit_price": 33}}}, 400, "BAD_REQUEST"},
		{"a forged session", map[string]any{"shop_order_id": "B-1", "session": "abc.def", "amount": 1, "description": "d"}, 400, "INVALID_SESSION"},
		{"an expired session", map[string]any{"shop_order_id": "B-1", "session": old, "amount": 1, "description": "d"}, 400, "SESSION_EXPIRED"},
		{"an empty body", nil, 400, "BAD_REQUEST"},
	} {
		st, b, _ := s.do("POST", "/api/v1/checkouts", shopToken, tc.body)
		if st != tc.status || !strings.Contains(string(b), `"`+tc.code+`"`) {
			t.Errorf("%s: %d %s", tc.name, st, b)
		}
	}
	if n, _ := s.st.CountOrders(); n != 0 {
		t.Fatalf("refused checkouts made %d orders", n)
	}

	// A server without a shop token has no checkout route at all.
	d := s.srv.d
	d.Registry, d.Gatherer = nil, nil
	off, err := New(Config{AppID: s.id.AppID, MchID: s.id.MchID, SessionSecret: bytes.Repeat([]byte("s"), 32),
		AdminToken: []byte(s.admin)}, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"POST", "GET"} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI("/api/v1/checkouts")
		ctx.Request.Header.Set("Authorization", "Bearer "+shopToken)
		ctx.Request.SetBodyString(`{"shop_order_id":"B-1","openid":"o","amount":1,"description":"d"}`)
		off.Handler()(&ctx)
		if ctx.Response.StatusCode() != 404 {
			t.Fatalf("%s without a shop token: %d %s", method, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}
