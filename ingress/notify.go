package ingress

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/wxpay"
)

// notifyV3 takes an APIv3 payment or refund notification. It answers 204
// only after the order actor has made the result durable (duplicates
// included); anything else is a 4xx/5xx with {"code":"FAIL"}, and WeChat
// retries on its schedule.
func (s *Server) notifyV3(ctx *fasthttp.RequestCtx) {
	if s.d.Notify == nil { // an APIv2 merchant: no APIv3 key to check with
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "APIv3 is not configured", 0})
		return
	}
	if !s.notify.acquire() {
		s.metrics.admission.WithLabelValues("notify").Inc()
		s.notifyFail(ctx, "unknown", errAdmission)
		return
	}
	defer s.notify.release()
	body := ctx.PostBody()
	if len(body) > wxpay.MaxNotificationBody {
		s.notifyFail(ctx, "unknown", errTooLarge)
		return
	}
	hdr := &ctx.Request.Header
	h := wxpay.Headers{
		Timestamp:     string(hdr.Peek(wxpay.HeaderTimestamp)),
		Nonce:         string(hdr.Peek(wxpay.HeaderNonce)),
		Signature:     string(hdr.Peek(wxpay.HeaderSignature)),
		Serial:        string(hdr.Peek(wxpay.HeaderSerial)),
		SignatureType: string(hdr.Peek(wxpay.HeaderSignatureType)),
		RequestID:     string(hdr.Peek(wxpay.HeaderRequestID)),
	}
	// Every check is wxpay's: signature, freshness, envelope, resource
	// type, decryption, required fields. The notice copies what it keeps:
	// nothing below aliases fasthttp's buffer.
	n, err := s.d.Notify.ParseNotice(&h, body)
	kind := n.Kind.String()
	if err != nil {
		s.recordRejection("", n.ID, err.Error())
		s.notifyFail(ctx, kind, err)
		return
	}
	if err := s.applyNotice(&n); err != nil {
		s.notifyFail(ctx, kind, err)
		return
	}
	s.metrics.notifications.WithLabelValues(kind, noticeOutcome(&n)).Inc()
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// applyNotice hands a parsed notice to its order: one request to the
// actors, whose answer becomes an error for the reply table (nil:
// acknowledge). A NoticeOther carries nothing to apply.
func (s *Server) applyNotice(n *wxpay.Notice) error {
	var msg actors.OrderMessage
	switch n.Kind {
	case wxpay.NoticePayment:
		msg = &actors.PaymentNotified{Tx: n.Payment, NotifyID: n.ID}
	case wxpay.NoticeRefund:
		msg = &actors.RefundNotified{Notice: n.Refund, NotifyID: n.ID}
	default:
		return nil
	}
	c, cancel := context.WithTimeout(context.Background(), 4*time.Second) // WeChat waits 5 s
	defer cancel()
	r, err := s.d.Router.Request(c, msg)
	return s.notifyOutcome(r, err, n.OutTradeNo(), n.ID)
}

// noticeOutcome labels an acknowledged notice for metrics.
func noticeOutcome(n *wxpay.Notice) string {
	if n.Kind == wxpay.NoticeOther {
		return "ignored" // verified, but nothing we act on (e.g. a security echo)
	}
	return "accepted"
}

func (s *Server) notifyFail(ctx *fasthttp.RequestCtx, kind string, err error) {
	status, msg := notifyAnswer(err)
	s.metrics.notifications.WithLabelValues(kind, "rejected").Inc()
	if status >= 500 {
		s.cfg.Logger.Warn("notification not recorded", "status", status, "err", err)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"code":"FAIL","message":"` + msg + `"}`)
}

// recordRejection writes a notify.rejected event for analysts, at most
// rejectRate a second so a flood of forged notifications cannot fill the
// disk (metrics count every one).
func (s *Server) recordRejection(otn, notifyID, reason string) {
	if !s.rejects.allow(s.cfg.Now()) {
		return
	}
	if len(reason) > 200 {
		reason = reason[:200]
	}
	now := s.cfg.Now()
	w := s.d.Actors.Store().NewWrite()
	w.AddEvent(&event.Event{
		EventID: "rej:" + strings.ToLower(wxpay.NewNonce()), Type: event.NotifyRejected,
		OutTradeNo: otn, TimeMs: now.UnixMilli(), NotificationID: notifyID, Reason: reason,
	})
	if err := w.CommitRelaxed(); err != nil {
		s.cfg.Logger.Warn("rejection event not recorded", "err", err)
	}
}

const rejectRate = 100

// rejectLimiter allows rejectRate events per wall-clock second.
type rejectLimiter struct {
	mu     sync.Mutex
	second int64
	n      int
}

func (l *rejectLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sec := now.Unix(); sec != l.second {
		l.second, l.n = sec, 0
	}
	l.n++
	return l.n <= rejectRate
}
