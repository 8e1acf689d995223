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

// refund refunds part or all of a paid order. With an Idempotency-Key the
// out_refund_no is derived from it, so a retried request refunds once.
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
	if req.Amount <= 0 {
		s.badRequest(ctx, "amount must be a positive amount in fen")
		return
	}
	if utf8.RuneCountInString(req.Reason) > 80 || !utf8.ValidString(req.Reason) {
		s.badRequest(ctx, "reason must be at most 80 characters")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, ok := s.adminLookup(ctx, c, otn)
	if !ok {
		return
	}
	outRefundNo := otn + "-R" + strconv.Itoa(len(r.Order.Refunds)+1)
	if k := string(ctx.Request.Header.Peek("Idempotency-Key")); k != "" {
		if !validIdemKey(k) {
			s.badRequest(ctx, "Idempotency-Key must be 1 to 64 printable ASCII characters")
			return
		}
		sum := sha256.Sum256([]byte(otn + "\x00" + k))
		outRefundNo = otn + "-K" + hex.EncodeToString(sum[:8])
		for _, rf := range r.Order.Refunds {
			if rf.OutRefundNo == outRefundNo { // the retry of a refund already made
				s.json(ctx, fasthttp.StatusOK, adminOrderView(&r.Order, nil))
				return
			}
		}
	}
	r, err := s.d.Router.Request(c, &actors.StartRefund{OutTradeNo: otn, OutRefundNo: outRefundNo, Amount: req.Amount, Reason: req.Reason})
	switch {
	case err != nil:
		s.failErr(ctx, err)
	case r.Status == actors.StatusConflict:
		s.fail(ctx, answer{fasthttp.StatusConflict, codeConflict, "the order is " + string(r.Order.State) + ": only PAID or REFUNDED orders can be refunded", 0})
	case r.Status == actors.StatusBadRequest:
		s.badRequest(ctx, "the amount exceeds what is left to refund")
	case r.Status == actors.StatusNotFound:
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such order", 0})
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
