package ingress

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/store"
)

// The checkout API: a shop that owns its orders, cart and prices asks from
// its backend for an order to pay, and hands the wx.requestPayment
// parameters to its Mini Program.
//
//	POST /api/v1/checkouts
//	Authorization: Bearer <the shop token, WXPAYD_SHOP_TOKEN_FILE>
//	{"shop_order_id": "A-1001", "openid": "o…" | "session": "<buyer session>",
//	 "amount": 3000, "description": "两杯茶", "attach": "…",
//	 "line_items": [{"sku": "tea", "name": "绿茶", "quantity": 2, "unit_price": 1500}],
//	 "expires_in": 900}
//
// One order actor per shop order id runs it (actors.Checkout): the
// out_trade_no is derived from the shop's order id, so a retry lands on
// the order the first request made. 201: the new order; 200: the same
// request again; 422 IDEMPOTENCY_KEY_REUSED: the id was first used with
// other fields. Without a shop token configured the route does not exist.

// routeCheckout labels the checkout route in the metrics.
const routeCheckout = "checkouts.create"

// Bounds of a checkout, WeChat's where it has one.
const (
	// maxCheckoutFen bounds an order's amount: 1,000,000 yuan. WeChat's
	// own ceiling for one JSAPI payment is not documented (UNCONFIRMED);
	// this one keeps line sums far from overflow.
	maxCheckoutFen = 100_000_000
	// maxDescription and maxAttach are WeChat's string(127) description
	// and (one under) its string(128) attach, in bytes of UTF-8.
	maxDescription = 127
	maxAttach      = 127
	maxShopOrderID = 64
	maxOpenID      = 128
	// maxLineItems bounds line_items (WeChat's own bound on goods_detail is
	// not documented: UNCONFIRMED); maxLineQuantity one line's quantity.
	maxLineItems    = 50
	maxLineQuantity = 10_000
	maxLineSKU      = 32  // goods_detail.merchant_goods_id: string(32)
	maxLineName     = 256 // goods_detail.goods_name: string(256)
	// minExpiresIn and maxExpiresIn bound expires_in, seconds: WeChat's
	// time_expire is at least a minute away, and a prepay_id lives two
	// hours, so an order meant to stay payable longer could not be paid.
	minExpiresIn = 60
	maxExpiresIn = 7200
)

// checkoutRequest is the body of POST /api/v1/checkouts.
type checkoutRequest struct {
	ShopOrderID string     `json:"shop_order_id"`
	OpenID      string     `json:"openid"`
	Session     string     `json:"session"`
	Amount      int64      `json:"amount"`
	Description string     `json:"description"`
	Attach      string     `json:"attach"`
	LineItems   []lineItem `json:"line_items"`
	ExpiresIn   *int64     `json:"expires_in"`
	// PayerClientIP is the buyer's IP as the shop's backend saw it; sent
	// to WeChat with the prepay. Optional: wxpayd cannot see it itself.
	PayerClientIP string `json:"payer_client_ip"`
}

type lineItem struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unit_price"`
}

// shopView is the shop's view of its order: the buyer's view, its own
// order id, the attach and the line items.
type shopView struct {
	orderView
	ShopOrderID string           `json:"shop_order_id"`
	Attach      string           `json:"attach,omitempty"`
	LineItems   []store.LineItem `json:"line_items,omitempty"`
}

// validateCheckout returns why the request cannot be an order, or "". It
// does not check the session (checkout does, against the server's key).
// A valid payer_client_ip is rewritten in its canonical form: the order
// keeps one spelling of an address.
func validateCheckout(r *checkoutRequest) string {
	if r.PayerClientIP != "" {
		ip, ok := validClientIP(r.PayerClientIP)
		if !ok {
			return "payer_client_ip must be an IPv4 or IPv6 address"
		}
		r.PayerClientIP = ip
	}
	switch {
	case !validShopOrderID(r.ShopOrderID):
		return "shop_order_id must be 1 to 64 characters of [0-9A-Za-z_-]"
	case r.OpenID != "" && r.Session != "":
		return "give the buyer as openid or as session, not both"
	case r.OpenID == "" && r.Session == "":
		return "the buyer is required: openid, or the buyer's session token as session"
	case r.OpenID != "" && !validOpenID(r.OpenID):
		return "openid must be 1 to 128 characters of [0-9A-Za-z_-]"
	case r.Amount <= 0 || r.Amount > maxCheckoutFen:
		return "amount must be 1 to " + strconv.Itoa(maxCheckoutFen) + " fen"
	case r.Description == "" || len(r.Description) > maxDescription || !printableUTF8(r.Description):
		return "description must be 1 to 127 bytes of UTF-8 without control characters"
	case len(r.Attach) > maxAttach || !utf8.ValidString(r.Attach):
		return "attach must be at most 127 bytes of UTF-8"
	case r.ExpiresIn != nil && (*r.ExpiresIn < minExpiresIn || *r.ExpiresIn > maxExpiresIn):
		return "expires_in must be 60 to 7200 seconds"
	case len(r.LineItems) > maxLineItems:
		return "line_items holds at most " + strconv.Itoa(maxLineItems) + " lines"
	}
	if len(r.LineItems) == 0 {
		return ""
	}
	var sum int64
	for i, l := range r.LineItems {
		at := "line_items[" + strconv.Itoa(i) + "]."
		switch {
		case !validLineSKU(l.SKU):
			return at + "sku must be 1 to 32 characters of [0-9A-Za-z_.-]"
		case len(l.Name) > maxLineName || !printableUTF8(l.Name):
			return at + "name must be at most 256 bytes of UTF-8 without control characters"
		case l.Quantity < 1 || l.Quantity > maxLineQuantity:
			return at + "quantity must be 1 to " + strconv.Itoa(maxLineQuantity)
		case l.UnitPrice < 0 || l.UnitPrice > maxCheckoutFen:
			return at + "unit_price must be 0 to " + strconv.Itoa(maxCheckoutFen) + " fen"
		}
		sum += l.Quantity * l.UnitPrice // at most 50 × 10⁴ × 10⁸: no overflow
	}
	if sum != r.Amount {
		return "the line_items sum to " + strconv.FormatInt(sum, 10) + " fen, not the amount " + strconv.FormatInt(r.Amount, 10)
	}
	return ""
}

// validShopOrderID: 1 to 64 characters of [0-9A-Za-z_-].
func validShopOrderID(s string) bool { return len(s) <= maxShopOrderID && idChars(s, "_-") }

// validOpenID: 1 to 128 characters of [0-9A-Za-z_-] (WeChat's openids are
// 28 of them).
func validOpenID(s string) bool { return len(s) <= maxOpenID && idChars(s, "_-") }

// validLineSKU: 1 to 32 characters of [0-9A-Za-z_.-].
func validLineSKU(s string) bool { return len(s) <= maxLineSKU && idChars(s, "_.-") }

// idChars reports whether s is non-empty and only ASCII letters, digits
// and the characters of extra.
func idChars(s, extra string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			continue
		}
		ok := false
		for j := 0; j < len(extra); j++ {
			ok = ok || c == extra[j]
		}
		if !ok {
			return false
		}
	}
	return true
}

// printableUTF8: valid UTF-8 without C0 control characters or DEL.
func printableUTF8(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// shopOutTradeNo derives the order number of a shop's order id: this
// node's shard, "S" (no buyer's order number has it there), and 26 hex
// characters of a hash, 29 characters in all. The same id always gives the
// same number, so a retry reaches the same order actor.
func (s *Server) shopOutTradeNo(shopOrderID string) string {
	sum := sha256.Sum256([]byte("shop\x00" + shopOrderID))
	return s.cfg.ShardPrefix + "S" + hex.EncodeToString(sum[:])[:26]
}

var errShop = errors.New("ingress: shop token required")

// shop runs h for a request bearing the shop's token. Both sides are hashed
// first, so the comparison takes the same time whatever the token's length.
func (s *Server) shop(ctx *fasthttp.RequestCtx, h fasthttp.RequestHandler) {
	if len(s.cfg.ShopToken) == 0 {
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such route", 0})
		return
	}
	got := sha256.Sum256(bearer(ctx))
	want := sha256.Sum256(s.cfg.ShopToken)
	if !hmac.Equal(got[:], want[:]) {
		s.failErr(ctx, errShop)
		return
	}
	h(ctx)
}

// checkout creates (or answers again) a shop's order: one Checkout to the
// order's actor, which creates it, calls WeChat and answers
// (actors/checkout.go).
func (s *Server) checkout(ctx *fasthttp.RequestCtx) {
	if !s.prepay.acquire() {
		s.metrics.admission.WithLabelValues("prepay").Inc()
		s.failErr(ctx, errAdmission)
		return
	}
	defer s.prepay.release()
	var req checkoutRequest
	if err := decode(ctx, &req); err != nil {
		s.badRequest(ctx, err.Error())
		return
	}
	if msg := validateCheckout(&req); msg != "" {
		s.badRequest(ctx, msg)
		return
	}
	openid := req.OpenID
	if req.Session != "" {
		var err error
		if openid, err = s.sess.check([]byte(req.Session)); err != nil {
			// The shop's credential is good; the buyer's is not: a 400 the
			// shop's backend can tell from its own 401.
			if errors.Is(err, errExpiredSession) {
				s.fail(ctx, answer{fasthttp.StatusBadRequest, codeSessionExpired, "the buyer's session expired: the buyer logs in again", 0})
			} else {
				s.fail(ctx, answer{fasthttp.StatusBadRequest, codeInvalidSession, "session is not a buyer session of this server", 0})
			}
			return
		}
	}
	m := &actors.Checkout{
		OutTradeNo: s.shopOutTradeNo(req.ShopOrderID), ShopOrderID: req.ShopOrderID, OpenID: openid,
		Amount: req.Amount, Description: req.Description, Attach: req.Attach,
	}
	m.ClientIP = req.PayerClientIP
	if req.ExpiresIn != nil {
		m.ExpiresIn = time.Duration(*req.ExpiresIn) * time.Second
	}
	for _, l := range req.LineItems {
		m.LineItems = append(m.LineItems, store.LineItem{SKU: l.SKU, Name: l.Name, Quantity: l.Quantity, UnitPrice: l.UnitPrice})
	}
	rctx, cancel := context.WithTimeout(context.Background(), s.prepayWait)
	defer cancel()
	r, err := s.d.Router.Request(rctx, m)
	if err != nil {
		s.failErr(ctx, err)
		return
	}
	switch r.Status {
	case actors.StatusCreated:
		s.respondShop(ctx, fasthttp.StatusCreated, &r.Order)
	case actors.StatusOK:
		if r.Order.State == store.StateCreated {
			s.fail(ctx, answer{fasthttp.StatusConflict, codeInProgress, "the order is being created: retry", 1})
			return
		}
		s.respondShop(ctx, fasthttp.StatusOK, &r.Order)
	case actors.StatusBudget:
		s.metrics.admission.WithLabelValues("budget").Inc()
		s.fail(ctx, answer{fasthttp.StatusTooManyRequests, codeBudget, "prepay budget exhausted: retry shortly",
			int(r.RetryAfter/time.Second) + 1})
	case actors.StatusIdemReused:
		s.fail(ctx, answer{fasthttp.StatusUnprocessableEntity, codeIdemReused,
			"this shop_order_id was first used with other fields", 0})
	case actors.StatusBadRequest:
		s.badRequest(ctx, "the checkout cannot be an order")
	default: // StatusConflict: the derived number belongs to another order
		s.fail(ctx, answer{fasthttp.StatusConflict, codeConflict, "this shop_order_id's order number is taken", 0})
	}
}

// respondShop writes the shop's view of its order, with freshly signed
// payment parameters when it is PREPAID.
func (s *Server) respondShop(ctx *fasthttp.RequestCtx, status int, o *store.Order) {
	v, err := s.payView(o)
	if err != nil {
		s.failErr(ctx, err)
		return
	}
	s.json(ctx, status, shopView{orderView: v, ShopOrderID: o.ShopOrderID, Attach: o.Attach, LineItems: o.LineItems})
}
