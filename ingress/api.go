package ingress

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

// login exchanges a wx.login code for a session token. The session_key
// stays here: it is not even kept.
func (s *Server) login(ctx *fasthttp.RequestCtx) {
	var req struct {
		Code string `json:"code"`
	}
	if err := decode(ctx, &req); err != nil {
		s.badRequest(ctx, err.Error())
		return
	}
	if req.Code == "" || len(req.Code) > client.MaxLoginCodeLen {
		s.badRequest(ctx, "code must be 1 to 128 bytes")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sess, err := s.d.Login.Code2Session(c, req.Code)
	if err != nil {
		s.failErr(ctx, err)
		return
	}
	token, ttl := s.sess.issue(sess.OpenID)
	s.json(ctx, fasthttp.StatusOK, struct {
		Token     string `json:"token"`
		ExpiresIn int64  `json:"expires_in"`
	}{token, int64(ttl / time.Second)})
}

const maxQuantity = 99

// validSKU: 1 to 64 characters of [0-9A-Za-z_.-].
func validSKU(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validIdemKey: 1 to 64 printable ASCII characters.
func validIdemKey(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newOutTradeNo makes an order number that carries this node's shard in
// its first two characters. With an Idempotency-Key it is derived from the
// buyer and the key, so a retry lands on the same order actor, which
// serialises the two requests.
func (s *Server) newOutTradeNo(openid, idemKey string) string {
	if idemKey != "" {
		sum := sha256.Sum256([]byte(openid + "\x00" + idemKey))
		return s.cfg.ShardPrefix + "K" + hex.EncodeToString(sum[:])[:26] // 29 chars
	}
	b := make([]byte, 0, 24)
	b = append(b, s.cfg.ShardPrefix...)
	b = strconv.AppendInt(b, s.cfg.Now().UnixMilli(), 36) // 8-9 chars, sortable by time
	var r [13]byte
	_, _ = rand.Read(r[:])
	for _, c := range r {
		b = append(b, base62[int(c)%62])
	}
	return string(b) // 23-24 chars of [0-9A-Za-z]
}

// createOrder is the flash-sale hot path: validate, answer SOLD_OUT
// without a message when the SKU's published count says so, else one
// request to the order's actor, which reserves, creates, calls WeChat and
// answers (actors/prepay.go).
func (s *Server) createOrder(ctx *fasthttp.RequestCtx) {
	openid, ok := s.buyer(ctx)
	if !ok {
		return
	}
	if !s.prepay.acquire() {
		s.metrics.admission.WithLabelValues("prepay").Inc()
		s.failErr(ctx, errAdmission)
		return
	}
	defer s.prepay.release()
	var req struct {
		SKU      string `json:"sku"`
		Quantity int64  `json:"quantity"`
	}
	if err := decode(ctx, &req); err != nil {
		s.badRequest(ctx, err.Error())
		return
	}
	if req.Quantity == 0 {
		req.Quantity = 1
	}
	if !validSKU(req.SKU) {
		s.badRequest(ctx, "sku must be 1 to 64 characters of [0-9A-Za-z_.-]")
		return
	}
	if req.Quantity < 1 || req.Quantity > maxQuantity {
		s.badRequest(ctx, "quantity must be 1 to 99")
		return
	}
	idem := string(ctx.Request.Header.Peek("Idempotency-Key"))
	if idem != "" && !validIdemKey(idem) {
		s.badRequest(ctx, "Idempotency-Key must be 1 to 64 printable ASCII characters")
		return
	}
	// A request with a key may be the replay of an order that exists:
	// only its actor can tell, even when the SKU is sold out.
	fast := idem == ""
	if fast && s.d.Router.SoldOut(req.SKU, req.Quantity) {
		s.fail(ctx, answer{fasthttp.StatusConflict, codeSoldOut, "sold out", 0})
		return
	}
	rctx, cancel := context.WithTimeout(context.Background(), s.prepayWait)
	defer cancel()
	r, err := s.d.Router.Request(rctx, &actors.Prepay{
		OutTradeNo: s.newOutTradeNo(openid, idem), OpenID: openid, SKU: req.SKU, Quantity: req.Quantity,
		IdemKey: idem, Fast: fast, ClientIP: s.clientIP(ctx),
	})
	if err != nil {
		s.failErr(ctx, err)
		return
	}
	switch r.Status {
	case actors.StatusCreated:
		s.respondOrder(ctx, fasthttp.StatusCreated, &r.Order)
	case actors.StatusSoldOut:
		s.fail(ctx, answer{fasthttp.StatusConflict, codeSoldOut, "sold out", 0})
	case actors.StatusLimitExceeded:
		s.fail(ctx, answer{fasthttp.StatusConflict, codeLimitExceeded, "per-buyer limit reached", 0})
	case actors.StatusUnknownSKU:
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeUnknownSKU, "no such sku", 0})
	case actors.StatusBudget:
		s.metrics.admission.WithLabelValues("budget").Inc()
		s.fail(ctx, answer{fasthttp.StatusTooManyRequests, codeBudget, "prepay budget exhausted: retry shortly",
			int(r.RetryAfter/time.Second) + 1})
	case actors.StatusIdemReused:
		s.fail(ctx, answer{fasthttp.StatusUnprocessableEntity, codeIdemReused,
			"this Idempotency-Key was first used with other parameters", 0})
	case actors.StatusOK:
		s.existing(ctx, &r.Order)
	default: // StatusConflict: the key's order number belongs to another buyer
		s.fail(ctx, answer{fasthttp.StatusConflict, codeConflict, "idempotency key already used", 0})
	}
}

// existing answers a replayed create with the order as it is now.
func (s *Server) existing(ctx *fasthttp.RequestCtx, o *store.Order) {
	if o.State == store.StateCreated {
		s.fail(ctx, answer{fasthttp.StatusConflict, codeInProgress, "the order is being created: retry", 1})
		return
	}
	s.respondOrder(ctx, fasthttp.StatusOK, o)
}

// respondOrder writes the order view (payView).
func (s *Server) respondOrder(ctx *fasthttp.RequestCtx, status int, o *store.Order) {
	v, err := s.payView(o)
	if err != nil {
		s.failErr(ctx, err)
		return
	}
	s.json(ctx, status, v)
}

// payView is the order view; a PREPAID order gets freshly signed payment
// parameters (same prepay_id, new nonce and timestamp).
func (s *Server) payView(o *store.Order) (orderView, error) {
	v := viewOf(o)
	if o.State == store.StatePrepaid && o.PrepayID != "" {
		p, err := s.d.Signer.RequestPayment(s.cfg.AppID, o.PrepayID, s.cfg.Now().Unix(), wxpay.NewNonce())
		if err != nil {
			return v, err
		}
		v.Payment = &p
	}
	return v, nil
}

// ownOrder loads an order and checks that the session's buyer owns it;
// anyone else gets the same 404 as for a missing order.
func (s *Server) ownOrder(ctx *fasthttp.RequestCtx, otn string) (*store.Order, bool) {
	openid, ok := s.buyer(ctx)
	if !ok {
		return nil, false
	}
	if !wxpay.ValidOutTradeNo(otn) {
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such order", 0})
		return nil, false
	}
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := s.d.Router.Request(c, &actors.Get{OutTradeNo: otn})
	if err != nil {
		s.failErr(ctx, err)
		return nil, false
	}
	if !r.Exists || r.Order.OpenID != openid {
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such order", 0})
		return nil, false
	}
	return &r.Order, true
}

func (s *Server) getOrder(ctx *fasthttp.RequestCtx, otn string) {
	if o, ok := s.ownOrder(ctx, otn); ok {
		s.json(ctx, fasthttp.StatusOK, viewOf(o))
	}
}

// payment returns fresh wx.requestPayment parameters for a PREPAID order.
func (s *Server) payment(ctx *fasthttp.RequestCtx, otn string) {
	o, ok := s.ownOrder(ctx, otn)
	if !ok {
		return
	}
	if o.State != store.StatePrepaid {
		s.fail(ctx, answer{fasthttp.StatusConflict, codeConflict, "the order is " + string(o.State), 0})
		return
	}
	s.respondOrder(ctx, fasthttp.StatusOK, o)
}
