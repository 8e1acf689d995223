package wxpay

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync"
	"time"
)

// Headers are the Wechatpay-* header values of a response or notification,
// exactly as received.
type Headers struct {
	Timestamp     string // Wechatpay-Timestamp, Unix seconds
	Nonce         string // Wechatpay-Nonce
	Signature     string // Wechatpay-Signature, Base64
	Serial        string // Wechatpay-Serial: which key signed
	SignatureType string // Wechatpay-Signature-Type; empty means WECHATPAY2-SHA256-RSA2048
	RequestID     string // Request-ID, for logs only
}

// Verifier checks WeChat's signatures on responses and notifications:
// the message TIMESTAMP\nNONCE\nBODY\n signed with the key named by
// Wechatpay-Serial, and the timestamp within a window of now. Safe for
// concurrent use.
type Verifier struct {
	keys   *KeySet
	now    func() time.Time
	window time.Duration
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) VerifierOption { return func(v *Verifier) { v.now = now } }

// NewVerifier returns a Verifier over keys.
func NewVerifier(keys *KeySet, opts ...VerifierOption) *Verifier {
	v := &Verifier{keys: keys, now: time.Now, window: DefaultWindow}
	for _, o := range opts {
		o(v)
	}
	return v
}

// Keys returns the verifier's key set.
func (v *Verifier) Keys() *KeySet { return v.keys }

// maxSigBytes bounds the decoded signature (RSA-4096).
const maxSigBytes = 512

// Verify checks h and the raw body. Errors wrap ErrMissingHeader,
// ErrUnsupportedSignatureType, ErrBadTimestamp, ErrExpired, ErrUnknownSerial,
// ErrBadSignatureEncoding or ErrBadSignature, in that order of checking.
// WECHATPAY/SIGNTEST/ probes fail like any other bad signature.
func (v *Verifier) Verify(h *Headers, body []byte) error {
	switch {
	case h.Timestamp == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderTimestamp)
	case h.Nonce == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderNonce)
	case h.Signature == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSignature)
	case h.Serial == "":
		return fmt.Errorf("%w: %s", ErrMissingHeader, HeaderSerial)
	}
	if h.SignatureType != "" && h.SignatureType != SignatureType {
		return fmt.Errorf("%w: %.40q", ErrUnsupportedSignatureType, h.SignatureType)
	}
	ts, ok := parseUnix(h.Timestamp)
	if !ok {
		return fmt.Errorf("%w: %.20q", ErrBadTimestamp, h.Timestamp)
	}
	if d := v.now().Unix() - ts; d >= int64(v.window/time.Second) || -d >= int64(v.window/time.Second) {
		return fmt.Errorf("%w: %ds from now (serial %.64s)", ErrExpired, -d, h.Serial)
	}
	key, ok := v.keys.Lookup(h.Serial)
	if !ok {
		return fmt.Errorf("%w: %.64q", ErrUnknownSerial, h.Serial)
	}
	if len(h.Signature) > base64.StdEncoding.EncodedLen(maxSigBytes) {
		return fmt.Errorf("%w: serial %.64s", ErrBadSignatureEncoding, h.Serial)
	}
	sc := sigPool.Get().(*sigScratch)
	defer sigPool.Put(sc)
	m := copy(sc.src[:], h.Signature)
	n, err := base64.StdEncoding.Decode(sc.sig[:], sc.src[:m])
	if err != nil || n != key.Key.Size() {
		return fmt.Errorf("%w: serial %.64s", ErrBadSignatureEncoding, h.Serial)
	}
	sc.digest = messageDigest(h.Timestamp, h.Nonce, body)
	if err := key.Key.VerifyDigest(&sc.digest, sc.sig[:n]); err != nil {
		return fmt.Errorf("%w: serial %.64s", ErrBadSignature, h.Serial)
	}
	return nil
}

// sigScratch keeps Verify's buffers off the heap: they pass through the
// PublicKey interface, which would make stack arrays escape.
type sigScratch struct {
	src    [(maxSigBytes + 2) / 3 * 4]byte
	sig    [maxSigBytes]byte
	digest [sha256.Size]byte
}

var sigPool = sync.Pool{New: func() any { return new(sigScratch) }}

// messageDigest hashes TIMESTAMP\nNONCE\nBODY\n.
func messageDigest(ts, nonce string, body []byte) [sha256.Size]byte {
	bp := getBuf()
	b := append((*bp)[:0], ts...)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	b = append(b, body...)
	b = append(b, '\n')
	d := sha256.Sum256(b)
	*bp = b
	putBuf(bp)
	return d
}

// SignResponse signs a response or notification as WeChat does, for the
// simulator and tests: it returns the Wechatpay-Signature value over
// TIMESTAMP\nNONCE\nBODY\n.
func SignResponse(key PrivateKey, timestamp, nonce string, body []byte) (string, error) {
	d := messageDigest(timestamp, nonce, body)
	sig, err := key.SignDigest(&d)
	if err != nil {
		return "", err
	}
	return encodeB64(sig), nil
}

// parseUnix parses a non-negative decimal Unix time of at most 12 digits.
func parseUnix(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 12 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
