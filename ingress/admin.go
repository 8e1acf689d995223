package ingress

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

func (s *Server) putSKU(ctx *fasthttp.RequestCtx, sku string) {
	if !validSKU(sku) {
		s.badRequest(ctx, "sku must be 1 to 64 characters of [0-9A-Za-z_.-]")
		return
	}
	var req struct {
		Description   string `json:"description"`
		Price         *int64 `json:"price"`
		Stock         *int64 `json:"stock"`
		PerBuyerLimit int64  `json:"per_buyer_limit"`
	}
	if err := decode(ctx, &req); err != nil {
		s.badRequest(ctx, err.Error())
		return
	}
	switch {
	case req.Description == "" || len(req.Description) > 127 || !utf8.ValidString(req.Description):
		s.badRequest(ctx, "description must be 1 to 127 bytes of UTF-8")
		return
	case req.Price == nil || *req.Price <= 0 || *req.Price > 100_000_000_00:
		s.badRequest(ctx, "price must be a positive amount in fen")
		return
	case req.Stock == nil || *req.Stock < 0 || *req.Stock > 100_000_000:
		s.badRequest(ctx, "stock must be 0 to 100000000")
		return
	case req.PerBuyerLimit < 0:
		s.badRequest(ctx, "per_buyer_limit must not be negative")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := s.d.Router.PutSKU(c, store.SKU{
		SKU: sku, Description: req.Description, Price: *req.Price, Stock: *req.Stock, PerBuyerLimit: req.PerBuyerLimit,
	})
	if err != nil {
		s.failErr(ctx, err)
		return
	}
	s.json(ctx, fasthttp.StatusOK, v)
}

func (s *Server) getSKU(ctx *fasthttp.RequestCtx, sku string) {
	if !validSKU(sku) {
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeUnknownSKU, "no such sku", 0})
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := s.d.Router.GetSKU(c, sku)
	if err != nil {
		s.failErr(ctx, err)
		return
	}
	s.json(ctx, fasthttp.StatusOK, v)
}

// maxRefundFen bounds a refund's amount at the door (a billion yuan); the
// order actor refuses anything above what is left to refund.
const maxRefundFen = 100_000_000_000

// refund refunds part or all of a paid order: one StartRefund to the
// order's actor, which numbers the refund, commits it and waits for
// WeChat's answer. With an Idempotency-Key the out_refund_no is derived
// from it, so a retried request answers the same refund.
func (s *Server) refund(ctx *fasthttp.RequestCtx, otn string) {
	if !wxpay.ValidOutTradeNo(otn) {
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such order", 0})
		return
	}
	var req struct {
		Amount int64  `json:"amount"`
		Reason string `json:"reason"`
	}
	if err := decode(ctx, &req); err != nil {
		s.badRequest(ctx, err.Error())
		return
	}
	if req.Amount <= 0 || req.Amount > maxRefundFen {
		s.badRequest(ctx, "amount must be a positive amount in fen, at most "+strconv.Itoa(maxRefundFen))
		return
	}
	if utf8.RuneCountInString(req.Reason) > 80 || !utf8.ValidString(req.Reason) {
		s.badRequest(ctx, "reason must be at most 80 characters")
		return
	}
	outRefundNo := ""
	if k := string(ctx.Request.Header.Peek("Idempotency-Key")); k != "" {
		if !validIdemKey(k) {
			s.badRequest(ctx, "Idempotency-Key must be 1 to 64 printable ASCII characters")
			return
		}
		sum := sha256.Sum256([]byte(otn + "\x00" + k))
		outRefundNo = otn + "-K" + hex.EncodeToString(sum[:8])
	}
	c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := s.d.Router.Request(c, &actors.StartRefund{OutTradeNo: otn, OutRefundNo: outRefundNo, Amount: req.Amount, Reason: req.Reason})
	switch {
	case err != nil:
		s.failErr(ctx, err) // WeChat refused the refund (it is FAILED), or a store failure
	case r.Status == actors.StatusConflict:
		s.fail(ctx, answer{fasthttp.StatusConflict, codeConflict, "the order is " + string(r.Order.State) + ": only PAID or REFUNDED orders can be refunded", 0})
	case r.Status == actors.StatusBadRequest:
		s.badRequest(ctx, "the amount exceeds what is left to refund")
	case r.Status == actors.StatusIdemReused:
		s.fail(ctx, answer{fasthttp.StatusUnprocessableEntity, codeIdemReused, "this Idempotency-Key was first used with another amount", 0})
	case r.Status == actors.StatusNotFound:
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such order", 0})
	case r.Status == actors.StatusPending:
		// WeChat's answer was lost or late: the refund is retried with the
		// same out_refund_no and queried until it is known.
		s.json(ctx, fasthttp.StatusAccepted, adminOrderView(&r.Order, nil))
	default:
		s.json(ctx, fasthttp.StatusOK, adminOrderView(&r.Order, nil))
	}
}

// applyAbnormal asks WeChat to pay an ABNORMAL refund another way: to the
// buyer's bank card (type USER_BANK_CARD with bank_type, bank_account and
// real_name, which the client encrypts for WeChat) or to the merchant's
// account (MERCHANT_BANK_CARD). The bank fields are never logged or kept.
func (s *Server) applyAbnormal(ctx *fasthttp.RequestCtx, otn, outRefundNo string) {
	if !wxpay.ValidOutTradeNo(otn) || !wxpay.ValidOutRefundNo(outRefundNo) {
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such refund", 0})
		return
	}
	var req struct {
		Type        string `json:"type"`
		BankType    string `json:"bank_type"`
		BankAccount string `json:"bank_account"`
		RealName    string `json:"real_name"`
	}
	if err := decode(ctx, &req); err != nil {
		s.badRequest(ctx, err.Error())
		return
	}
	switch {
	case req.Type == wxpay.AbnormalRefundMerchantBankCard:
		if req.BankType != "" || req.BankAccount != "" || req.RealName != "" {
			s.badRequest(ctx, "MERCHANT_BANK_CARD takes no bank fields")
			return
		}
	case req.Type == wxpay.AbnormalRefundUserBankCard:
		if req.BankType == "" || req.BankAccount == "" || req.RealName == "" ||
			len(req.BankType) > 32 || len(req.BankAccount) > 64 || len(req.RealName) > 64 {
			s.badRequest(ctx, "USER_BANK_CARD needs bank_type (<= 32), bank_account and real_name (<= 64 bytes each)")
			return
		}
	default:
		s.badRequest(ctx, "type must be USER_BANK_CARD or MERCHANT_BANK_CARD")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := s.d.Router.Request(c, &actors.ApplyAbnormalRefund{OutTradeNo: otn, Request: wxpay.AbnormalRefundRequest{
		OutRefundNo: outRefundNo, Type: req.Type, BankType: req.BankType, BankAccount: req.BankAccount, RealName: req.RealName,
	}})
	switch {
	case err != nil:
		s.failErr(ctx, err)
	case r.Status == actors.StatusNotFound:
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such refund", 0})
	case r.Status == actors.StatusConflict:
		s.fail(ctx, answer{fasthttp.StatusConflict, codeConflict, "the refund is not ABNORMAL", 0})
	default:
		s.json(ctx, fasthttp.StatusOK, adminOrderView(&r.Order, nil))
	}
}

type adminView struct {
	Order  store.Order   `json:"order"`
	Events []event.Event `json:"events,omitempty"`
}

func adminOrderView(o *store.Order, ev []event.Event) adminView {
	return adminView{Order: *o, Events: ev}
}

// adminLookup loads an order for an admin route, answering 404 or the
// error itself when there is none.
func (s *Server) adminLookup(ctx *fasthttp.RequestCtx, c context.Context, otn string) (actors.Reply, bool) {
	r, err := s.d.Router.Request(c, &actors.Get{OutTradeNo: otn})
	if err != nil {
		s.failErr(ctx, err)
		return r, false
	}
	if !r.Exists {
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such order", 0})
		return r, false
	}
	return r, true
}

// adminOrder returns the full record and its event history.
func (s *Server) adminOrder(ctx *fasthttp.RequestCtx, otn string) {
	if !wxpay.ValidOutTradeNo(otn) {
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such order", 0})
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, ok := s.adminLookup(ctx, c, otn)
	if !ok {
		return
	}
	hist, err := s.d.Router.History(c, otn)
	if err != nil {
		s.failErr(ctx, err)
		return
	}
	s.json(ctx, fasthttp.StatusOK, adminOrderView(&r.Order, hist))
}
