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
	var (
		kind = "other"
		tx   wxpay.Transaction
		rn   wxpay.RefundNotice
	)
	// Verify over the raw body, decrypt, then decode by event type. The
	// parser copies what it keeps: nothing below aliases fasthttp's buffer.
	n, err := s.d.Notify.Parse(&h, body, func(n *wxpay.Notification, plain []byte) error {
		var err error
		switch {
		case strings.HasPrefix(n.EventType, "TRANSACTION."):
			kind = "payment"
			tx, err = wxpay.DecodeTransaction(plain)
		case strings.HasPrefix(n.EventType, "REFUND."):
			kind = "refund"
			rn, err = wxpay.DecodeRefundNotice(plain)
		}
		return err
	})
	if err != nil {
		s.recordRejection("", "", err.Error())
		s.notifyFail(ctx, kind, err)
		return
	}
	c, cancel := context.WithTimeout(context.Background(), 4*time.Second) // WeChat waits 5 s
	defer cancel()
	var r actors.Reply
	switch kind {
	case "payment":
		r, err = s.d.Router.Request(c, &actors.PaymentNotified{Tx: tx, NotifyID: n.ID})
	case "refund":
		r, err = s.d.Router.Request(c, &actors.RefundNotified{Notice: rn, NotifyID: n.ID})
	default:
		// Verified, but nothing we act on (e.g. a security echo).
		s.metrics.notifications.WithLabelValues(kind, "ignored").Inc()
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	otn := tx.OutTradeNo
	if kind == "refund" {
		otn = rn.OutTradeNo
	}
	err = s.notifyOutcome(r, err, otn, n.ID)
	if err != nil {
		s.notifyFail(ctx, kind, err)
		return
	}
	s.metrics.notifications.WithLabelValues(kind, "accepted").Inc()
	ctx.SetStatusCode(fasthttp.StatusNoContent)
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
