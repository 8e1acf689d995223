package wxpay

import (
	"fmt"
	"strings"
)

// NoticeKind says what a verified notification asks the merchant to apply.
type NoticeKind uint8

// Notice kinds.
const (
	// NoticeOther is a verified notification that carries neither a
	// payment nor a refund (a security echo, another product's event, an
	// APIv2 notice of a failed payment): acknowledge it, apply nothing.
	NoticeOther NoticeKind = iota
	// NoticePayment carries a payment in Notice.Payment.
	NoticePayment
	// NoticeRefund carries a refund result in Notice.Refund.
	NoticeRefund
)

// String returns "other", "payment" or "refund".
func (k NoticeKind) String() string {
	switch k {
	case NoticePayment:
		return "payment"
	case NoticeRefund:
		return "refund"
	}
	return "other"
}

// Notice is a notification that passed every check, in the order model:
// a payment (Kind NoticePayment, Payment set) or a refund (Kind
// NoticeRefund, Refund set), or nothing to apply (NoticeOther). APIv3
// notices come from (*NotifyParser).ParseNotice, APIv2 ones from
// (*V2Key).ParseNotice, translated into the same model. Its strings do not
// alias the body it was parsed from.
type Notice struct {
	Kind NoticeKind
	// ID identifies the notification across WeChat's redeliveries, for
	// deduplication: the APIv3 notification id, "v2:" + transaction_id for
	// an APIv2 payment, "v2r:" + refund_id for an APIv2 refund.
	ID string
	// EventType is the APIv3 event_type (TRANSACTION.SUCCESS, REFUND.*);
	// empty for APIv2.
	EventType string
	Payment   Transaction  // set when Kind is NoticePayment
	Refund    RefundNotice // set when Kind is NoticeRefund
}

// OutTradeNo returns the merchant order the notice is about (empty for
// NoticeOther).
func (n *Notice) OutTradeNo() string {
	switch n.Kind {
	case NoticePayment:
		return n.Payment.OutTradeNo
	case NoticeRefund:
		return n.Refund.OutTradeNo
	}
	return ""
}

// ParseNotice is the entry point for APIv3 payment and refund
// notifications. In order it verifies the signature and the timestamp over
// the raw body, decodes the envelope (id, event_type and the resource's
// algorithm, ciphertext and nonce are required), checks that
// resource.original_type, when present, names the family of event_type
// (transaction for TRANSACTION.*, refund for REFUND.*), requires
// AEAD_AES_256_GCM, decrypts, and decodes the resource by event type:
// TRANSACTION.* into Payment (DecodeTransaction's required fields),
// REFUND.* into Refund (DecodeRefundNotice's). Any other event that
// verifies and decrypts is a NoticeOther.
//
// Errors wrap the wxpay sentinel of the failed check. On error the Notice
// is empty but for Kind, ID and EventType once the envelope was read (for
// logs and metrics); nothing in it may be applied.
func (p *NotifyParser) ParseNotice(h *Headers, body []byte) (Notice, error) {
	_, nt, err := p.parseNotice(h, body)
	return nt, err
}

// parseNotice is ParseNotice that also returns the envelope.
func (p *NotifyParser) parseNotice(h *Headers, body []byte) (Notification, Notice, error) {
	n, err := p.envelope(h, body)
	if err != nil {
		return Notification{}, Notice{}, err
	}
	head := Notice{Kind: eventKind(n.EventType), ID: n.ID, EventType: n.EventType}
	if ot := n.Resource.OriginalType; ot != "" && originalKind(ot) != head.Kind {
		return n, head, fmt.Errorf("notification %.64s: %w: original_type %.40q does not match event_type %.40q",
			n.ID, ErrMalformed, ot, n.EventType)
	}
	bp := plainPool.Get().(*[]byte)
	defer putPlain(bp)
	plain, err := n.Resource.Decrypt(p.aead, (*bp)[:0])
	if err != nil {
		return n, head, fmt.Errorf("notification %.64s: %w", n.ID, err)
	}
	*bp = plain
	nt := head
	switch nt.Kind {
	case NoticePayment:
		nt.Payment, err = DecodeTransaction(plain)
	case NoticeRefund:
		nt.Refund, err = DecodeRefundNotice(plain)
	}
	if err != nil {
		return n, head, fmt.Errorf("notification %.64s: %w", n.ID, err)
	}
	return n, nt, nil
}

// eventKind maps an event_type to the kind of resource it carries.
func eventKind(eventType string) NoticeKind {
	switch {
	case strings.HasPrefix(eventType, "TRANSACTION."):
		return NoticePayment
	case strings.HasPrefix(eventType, "REFUND."):
		return NoticeRefund
	}
	return NoticeOther
}

// originalKind maps a resource original_type to the kind of resource it is.
func originalKind(originalType string) NoticeKind {
	switch originalType {
	case OriginalTypeTransaction:
		return NoticePayment
	case OriginalTypeRefund:
		return NoticeRefund
	}
	return NoticeOther
}
