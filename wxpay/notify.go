package wxpay

import (
	"fmt"
	"sync"
)

// Event types and resource original types of APIv3 notifications.
const (
	EventTransactionSuccess = "TRANSACTION.SUCCESS"
	EventRefundSuccess      = "REFUND.SUCCESS"
	EventRefundAbnormal     = "REFUND.ABNORMAL"
	EventRefundClosed       = "REFUND.CLOSED"

	OriginalTypeTransaction = "transaction"
	OriginalTypeRefund      = "refund"
)

// MaxNotificationBody bounds the body a notification parser accepts.
const MaxNotificationBody = 64 << 10

// Notification is the APIv3 notification envelope. Its strings are
// substrings of one copy of the body and do not alias the caller's slice.
type Notification struct {
	ID           string   `json:"id"`
	CreateTime   string   `json:"create_time"`
	ResourceType string   `json:"resource_type"`
	EventType    string   `json:"event_type"`
	Summary      string   `json:"summary"`
	Resource     Resource `json:"resource"`
}

// Resource is the encrypted part of a notification (also the shape of
// /v3/certificates' encrypt_certificate).
type Resource struct {
	OriginalType   string `json:"original_type,omitempty"`
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	Nonce          string `json:"nonce"`
}

// ParseNotification decodes the envelope. It requires id, event_type and the
// resource's algorithm, ciphertext and nonce; it does not check the
// signature (see Verifier) or decrypt (see AEAD).
func ParseNotification(body []byte) (Notification, error) {
	var n Notification
	if len(body) > MaxNotificationBody {
		return n, fmt.Errorf("%w: body of %d bytes is too long", ErrMalformed, len(body))
	}
	var s seen
	err := forEachMember(string(body), func(f jsonField) error {
		var err error
		switch f.key {
		case "id":
			if err = s.mark(0, f.key); err == nil {
				n.ID, err = jsonString(f)
			}
		case "create_time":
			if err = s.mark(1, f.key); err == nil {
				n.CreateTime, err = jsonString(f)
			}
		case "resource_type":
			if err = s.mark(2, f.key); err == nil {
				n.ResourceType, err = jsonString(f)
			}
		case "event_type":
			if err = s.mark(3, f.key); err == nil {
				n.EventType, err = jsonString(f)
			}
		case "summary":
			if err = s.mark(4, f.key); err == nil {
				n.Summary, err = jsonString(f)
			}
		case "resource":
			if err = s.mark(5, f.key); err == nil {
				n.Resource, err = decodeResource(f)
			}
		}
		return err
	})
	if err != nil {
		return Notification{}, err
	}
	switch {
	case n.ID == "":
		return n, fmt.Errorf("%w: id", ErrMissingField)
	case n.EventType == "":
		return n, fmt.Errorf("%w: event_type", ErrMissingField)
	case n.Resource.Algorithm == "":
		return n, fmt.Errorf("%w: resource.algorithm", ErrMissingField)
	case n.Resource.Ciphertext == "":
		return n, fmt.Errorf("%w: resource.ciphertext", ErrMissingField)
	case n.Resource.Nonce == "":
		return n, fmt.Errorf("%w: resource.nonce", ErrMissingField)
	}
	return n, nil
}

func decodeResource(f jsonField) (Resource, error) {
	var r Resource
	var s seen
	err := jsonObject(f, func(f jsonField) error {
		var err error
		switch f.key {
		case "original_type":
			if err = s.mark(0, f.key); err == nil {
				r.OriginalType, err = jsonString(f)
			}
		case "algorithm":
			if err = s.mark(1, f.key); err == nil {
				r.Algorithm, err = jsonString(f)
			}
		case "ciphertext":
			if err = s.mark(2, f.key); err == nil {
				r.Ciphertext, err = jsonString(f)
			}
		case "associated_data":
			if err = s.mark(3, f.key); err == nil {
				r.AssociatedData, err = jsonString(f)
			}
		case "nonce":
			if err = s.mark(4, f.key); err == nil {
				r.Nonce, err = jsonString(f)
			}
		}
		return err
	})
	return r, err
}

// Decrypt opens the resource with aead and appends the plaintext to dst.
// It requires algorithm AEAD_AES_256_GCM.
func (r *Resource) Decrypt(aead *AEAD, dst []byte) ([]byte, error) {
	if r.Algorithm != AlgorithmAESGCM {
		return nil, fmt.Errorf("%w: %.40q", ErrUnsupportedAlgorithm, r.Algorithm)
	}
	return aead.Open(dst, r.Nonce, r.AssociatedData, r.Ciphertext)
}

// NotifyParser runs the whole notification check: verify the signature and
// timestamp over the raw body, decode the envelope, require the algorithm,
// decrypt, and decode the resource. ParseNotice is its entry point for
// servers. Safe for concurrent use.
type NotifyParser struct {
	verifier *Verifier
	aead     *AEAD
}

// NewNotifyParser returns a parser that verifies with v and decrypts with a.
func NewNotifyParser(v *Verifier, a *AEAD) *NotifyParser {
	return &NotifyParser{verifier: v, aead: a}
}

var plainPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// putPlain returns a plaintext buffer to the pool unless it grew too large.
func putPlain(bp *[]byte) {
	if cap(*bp) <= MaxNotificationBody {
		*bp = (*bp)[:0]
		plainPool.Put(bp)
	}
}

// envelope verifies the signature and timestamp over the raw body and
// decodes the envelope.
func (p *NotifyParser) envelope(h *Headers, body []byte) (Notification, error) {
	if len(body) > MaxNotificationBody {
		return Notification{}, fmt.Errorf("%w: body of %d bytes is too long", ErrMalformed, len(body))
	}
	if err := p.verifier.Verify(h, body); err != nil {
		return Notification{}, err
	}
	return ParseNotification(body)
}

// Parse verifies and decrypts a notification of any event type and calls
// decode with the plaintext, which is only valid during the call. It does
// not check original_type against event_type and decodes no resource
// itself: it serves tools that read resources of their own. A server takes
// notifications through ParseNotice.
func (p *NotifyParser) Parse(h *Headers, body []byte, decode func(n *Notification, plaintext []byte) error) (Notification, error) {
	n, err := p.envelope(h, body)
	if err != nil {
		return Notification{}, err
	}
	bp := plainPool.Get().(*[]byte)
	defer putPlain(bp)
	plain, err := n.Resource.Decrypt(p.aead, (*bp)[:0])
	if err != nil {
		return Notification{}, fmt.Errorf("notification %.64s: %w", n.ID, err)
	}
	*bp = plain
	if decode != nil {
		if err := decode(&n, plain); err != nil {
			return Notification{}, fmt.Errorf("notification %.64s: %w", n.ID, err)
		}
	}
	return n, nil
}

// ParseTransaction is ParseNotice for a caller that expects a payment: it
// returns the envelope and the transaction, and refuses any other notice
// with ErrMalformed.
func (p *NotifyParser) ParseTransaction(h *Headers, body []byte) (Notification, Transaction, error) {
	n, nt, err := p.parseNotice(h, body)
	if err == nil && nt.Kind != NoticePayment {
		err = fmt.Errorf("notification %.64s: %w: event_type %.40q is not a payment", n.ID, ErrMalformed, n.EventType)
	}
	if err != nil {
		return Notification{}, Transaction{}, err
	}
	return n, nt.Payment, nil
}

// ParseRefund is ParseNotice for a caller that expects a refund: it returns
// the envelope and the refund, and refuses any other notice with
// ErrMalformed.
func (p *NotifyParser) ParseRefund(h *Headers, body []byte) (Notification, RefundNotice, error) {
	n, nt, err := p.parseNotice(h, body)
	if err == nil && nt.Kind != NoticeRefund {
		err = fmt.Errorf("notification %.64s: %w: event_type %.40q is not a refund", n.ID, ErrMalformed, n.EventType)
	}
	if err != nil {
		return Notification{}, RefundNotice{}, err
	}
	return n, nt.Refund, nil
}
