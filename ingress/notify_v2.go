package ingress

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/wxpay"
)

// The APIv2 notification routes: XML in, and XML out exactly as WeChat
// requires. Only wxpay.V2NotifySuccessReply acknowledges; anything else
// makes WeChat retry. Without an APIv2 key they answer 404.

func (s *Server) v2Reply(ctx *fasthttp.RequestCtx, kind string, err error) {
	ctx.SetContentType("text/xml; charset=utf-8")
	if err == nil {
		s.metrics.notifications.WithLabelValues(kind, "accepted").Inc()
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetBodyString(wxpay.V2NotifySuccessReply)
		return
	}
	status, msg := notifyAnswer(err)
	s.metrics.notifications.WithLabelValues(kind, "rejected").Inc()
	if status >= 500 {
		s.cfg.Logger.Warn("v2 notification not recorded", "status", status, "err", err)
	}
	ctx.SetStatusCode(status)
	ctx.SetBody(wxpay.V2NotifyFailReply(msg))
}

// v2Params reads, parses and verifies an APIv2 document.
func (s *Server) v2Params(ctx *fasthttp.RequestCtx, verify bool) (map[string]string, error) {
	body := ctx.PostBody()
	if len(body) > wxpay.MaxNotificationBody {
		return nil, errTooLarge
	}
	p, err := wxpay.ParseV2XML(body)
	if err != nil {
		return nil, err
	}
	if verify {
		if err := s.d.V2Key.VerifyAuto(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// v2Admit answers 404 when APIv2 is off and a busy XML reply when the
// notification lane is full; otherwise it takes a slot the caller releases.
func (s *Server) v2Admit(ctx *fasthttp.RequestCtx, kind string) bool {
	if s.d.V2Key == nil {
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "APIv2 is not configured", 0})
		return false
	}
	if !s.notify.acquire() {
		s.metrics.admission.WithLabelValues("notify").Inc()
		s.v2Reply(ctx, kind, errAdmission)
		return false
	}
	return true
}

func (s *Server) notifyV2(ctx *fasthttp.RequestCtx) {
	const kind = "payment.v2"
	if !s.v2Admit(ctx, kind) {
		return
	}
	defer s.notify.release()
	p, err := s.v2Params(ctx, true)
	if err != nil {
		s.recordRejection("", "", "v2: "+err.Error())
		s.v2Reply(ctx, kind, err)
		return
	}
	n, err := wxpay.DecodeV2PayNotification(p)
	if err != nil {
		s.v2Reply(ctx, kind, err)
		return
	}
	if !n.Paid() {
		s.v2Reply(ctx, kind, nil) // a failed payment carries no money: acknowledge it
		return
	}
	currency := n.FeeType
	if currency == "" {
		currency = "CNY"
	}
	tx := wxpay.Transaction{
		AppID: n.AppID, MchID: n.MchID, OutTradeNo: n.OutTradeNo, TransactionID: n.TransactionID,
		TradeType: n.TradeType, TradeState: wxpay.TradeStateSuccess, BankType: n.BankType, Attach: n.Attach,
		Payer: wxpay.Payer{OpenID: n.OpenID}, Amount: wxpay.TransactionAmount{Total: n.TotalFee, PayerTotal: n.CashFee, Currency: currency},
	}
	c, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	r, err := s.d.Router.Request(c, &actors.PaymentNotified{Tx: tx, NotifyID: "v2:" + n.TransactionID})
	s.v2Reply(ctx, kind, s.notifyOutcome(r, err, n.OutTradeNo, "v2:"+n.TransactionID))
}

func (s *Server) refundNotifyV2(ctx *fasthttp.RequestCtx) {
	const kind = "refund.v2"
	if !s.v2Admit(ctx, kind) {
		return
	}
	defer s.notify.release()
	// The refund notification carries no sign: req_info, encrypted with a
	// key derived from the APIv2 key, is what authenticates it.
	p, err := s.v2Params(ctx, false)
	if err != nil {
		s.v2Reply(ctx, kind, err)
		return
	}
	outer, err := wxpay.DecodeV2RefundNotification(p)
	if err != nil {
		s.v2Reply(ctx, kind, err)
		return
	}
	if outer.ReturnCode != "SUCCESS" {
		s.v2Reply(ctx, kind, nil)
		return
	}
	if outer.AppID != s.cfg.AppID || outer.MchID != s.cfg.MchID {
		s.recordRejection("", "", "v2 refund: appid/mch_id mismatch")
		s.v2Reply(ctx, kind, errMismatch)
		return
	}
	info, err := s.d.V2Key.DecryptReqInfo(outer.ReqInfo)
	if err != nil {
		s.recordRejection("", "", "v2 refund: "+err.Error())
		s.v2Reply(ctx, kind, err)
		return
	}
	status := info.RefundStatus
	switch status { // APIv2 spells them differently
	case "CHANGE":
		status = wxpay.RefundStatusAbnormal
	case "REFUNDCLOSE":
		status = wxpay.RefundStatusClosed
	}
	notice := wxpay.RefundNotice{
		MchID: outer.MchID, OutTradeNo: info.OutTradeNo, TransactionID: info.TransactionID,
		OutRefundNo: info.OutRefundNo, RefundID: info.RefundID, RefundStatus: status, SuccessTime: info.SuccessTime,
		UserReceivedAccount: info.RefundRecvAccount,
		Amount:              wxpay.RefundNoticeAmount{Total: info.TotalFee, Refund: info.RefundFee},
	}
	c, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	r, err := s.d.Router.Request(c, &actors.RefundNotified{Notice: notice, NotifyID: "v2r:" + info.RefundID})
	s.v2Reply(ctx, kind, s.notifyOutcome(r, err, info.OutTradeNo, "v2r:"+info.RefundID))
}

// notifyOutcome turns an order actor's answer to a notification into an
// error for the reply table (nil: acknowledge).
func (s *Server) notifyOutcome(r actors.Reply, err error, otn, notifyID string) error {
	if err != nil {
		return err
	}
	switch r.Status {
	case actors.StatusNotFound:
		s.recordRejection(otn, notifyID, "unknown order")
		return errUnknownOrder
	case actors.StatusMismatch:
		return errMismatch
	}
	return nil
}
