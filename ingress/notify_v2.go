package ingress

import (
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
	s.v2Notify(ctx, "payment.v2", wxpay.NoticePayment)
}

func (s *Server) refundNotifyV2(ctx *fasthttp.RequestCtx) {
	s.v2Notify(ctx, "refund.v2", wxpay.NoticeRefund)
}

// v2Notify takes the APIv2 notification of one route: wxpay checks it and
// translates it into the order model, then it goes to its order like an
// APIv3 notice.
func (s *Server) v2Notify(ctx *fasthttp.RequestCtx, kind string, route wxpay.NoticeKind) {
	if !s.v2Admit(ctx, kind) {
		return
	}
	defer s.notify.release()
	body := ctx.PostBody()
	if len(body) > wxpay.MaxNotificationBody {
		s.v2Reply(ctx, kind, errTooLarge)
		return
	}
	n, err := s.d.V2Key.ParseNotice(route, body)
	if err != nil {
		s.recordRejection("", "", "v2: "+err.Error())
		s.v2Reply(ctx, kind, err)
		return
	}
	s.v2Reply(ctx, kind, s.applyNotice(&n))
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
