package wxpay

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// Authorization is a parsed APIv3 request Authorization header:
//
//	WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"
//
// This is the server side of Signer.Authorization: WeChat (and the
// simulator) parse it and check it with VerifyRequest. The strings are
// substrings of the header value passed to ParseAuthorization.
type Authorization struct {
	MchID     string // mchid
	NonceStr  string // nonce_str
	Signature string // signature, Base64
	Timestamp string // timestamp, decimal Unix seconds
	SerialNo  string // serial_no: the merchant certificate serial
}

// Limits of ParseAuthorization. A real header is about 480 bytes.
const (
	// MaxAuthorizationLen bounds the whole header value.
	MaxAuthorizationLen = 2048
	// maxAuthValueLen bounds one quoted value (a 4096-bit signature is 684).
	maxAuthValueLen = 1024
)

// authKeys are the five pair names, in the order of Authorization's fields.
var authKeys = [5]string{"mchid", "nonce_str", "signature", "timestamp", "serial_no"}

// ParseAuthorization parses an APIv3 Authorization header value. The scheme
// must be WECHATPAY2-SHA256-RSA2048 followed by one space; then the five
// pairs name="value" separated by commas, in any order, each exactly once,
// with non-empty double-quoted values that contain no quote, backslash or
// control character. Spaces after a comma are tolerated. timestamp must be a
// decimal of at most 12 digits. Every rejection wraps ErrMalformed (an empty
// value ErrMissingHeader); ParseAuthorization never panics and does not
// retain anything beyond the returned substrings.
func ParseAuthorization(value string) (Authorization, error) {
	var a Authorization
	if value == "" {
		return a, fmt.Errorf("%w: %s", ErrMissingHeader, HeaderAuthorization)
	}
	if len(value) > MaxAuthorizationLen {
		return a, fmt.Errorf("%w: Authorization of %d bytes is too long", ErrMalformed, len(value))
	}
	rest, ok := strings.CutPrefix(value, SignatureType+" ")
	if !ok {
		return a, fmt.Errorf("%w: Authorization scheme is not %s", ErrMalformed, SignatureType)
	}
	var vals [5]string
	var seen [5]bool
	for i := 0; ; i++ {
		if i > 0 {
			if rest == "" {
				break
			}
			if rest[0] != ',' {
				return a, fmt.Errorf("%w: Authorization: expected ',' at pair %d", ErrMalformed, i+1)
			}
			rest = strings.TrimLeft(rest[1:], " ")
		}
		if i >= len(authKeys) {
			return a, fmt.Errorf("%w: Authorization has more than %d pairs", ErrMalformed, len(authKeys))
		}
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return a, fmt.Errorf("%w: Authorization: pair %d has no name=", ErrMalformed, i+1)
		}
		name := rest[:eq]
		k := -1
		for j, want := range authKeys {
			if name == want {
				k = j
				break
			}
		}
		if k < 0 {
			return a, fmt.Errorf("%w: Authorization: unknown pair %.20q", ErrMalformed, name)
		}
		if seen[k] {
			return a, fmt.Errorf("%w: Authorization: %s given twice", ErrMalformed, name)
		}
		seen[k] = true
		rest = rest[eq+1:]
		if rest == "" || rest[0] != '"' {
			return a, fmt.Errorf("%w: Authorization: %s is not quoted", ErrMalformed, name)
		}
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return a, fmt.Errorf("%w: Authorization: %s has no closing quote", ErrMalformed, name)
		}
		v := rest[1 : 1+end]
		if v == "" || len(v) > maxAuthValueLen {
			return a, fmt.Errorf("%w: Authorization: %s is empty or too long", ErrMalformed, name)
		}
		for j := 0; j < len(v); j++ {
			if c := v[j]; c < 0x20 || c == 0x7f || c == '\\' {
				return a, fmt.Errorf("%w: Authorization: %s has a forbidden character", ErrMalformed, name)
			}
		}
		vals[k] = v
		rest = rest[1+end+1:]
	}
	for j, ok := range seen {
		if !ok {
			return a, fmt.Errorf("%w: Authorization: %s missing", ErrMalformed, authKeys[j])
		}
	}
	if _, ok := parseUnix(vals[3]); !ok {
		return a, fmt.Errorf("%w: Authorization: timestamp %.20q is not Unix seconds", ErrMalformed, vals[3])
	}
	a = Authorization{MchID: vals[0], NonceStr: vals[1], Signature: vals[2], Timestamp: vals[3], SerialNo: vals[4]}
	return a, nil
}

// String returns the header value in the order Signer.Authorization writes
// (mchid, nonce_str, timestamp, serial_no, signature).
func (a Authorization) String() string {
	return SignatureType + ` mchid="` + a.MchID + `",nonce_str="` + a.NonceStr + `",timestamp="` +
		a.Timestamp + `",serial_no="` + a.SerialNo + `",signature="` + a.Signature + `"`
}

// VerifyRequest checks a merchant request as WeChat does: the timestamp
// within window of now (either way; WeChat uses five minutes), then the
// signature over METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n with the merchant's
// public key. url is the path plus "?query" exactly as sent; body the exact
// bytes (empty for GET). Selecting pub by a.MchID and a.SerialNo is the
// caller's job. Errors wrap ErrBadTimestamp, ErrExpired,
// ErrBadSignatureEncoding or ErrBadSignature, in that order of checking.
func VerifyRequest(a Authorization, pub PublicKey, method, url string, body []byte, now time.Time, window time.Duration) error {
	ts, ok := parseUnix(a.Timestamp)
	if !ok {
		return fmt.Errorf("%w: %.20q", ErrBadTimestamp, a.Timestamp)
	}
	if d := now.Unix() - ts; d >= int64(window/time.Second) || -d >= int64(window/time.Second) {
		return fmt.Errorf("%w: %ds from now (mchid %.32s)", ErrExpired, -d, a.MchID)
	}
	if pub == nil {
		return fmt.Errorf("%w: no merchant key", ErrBadKey)
	}
	if len(a.Signature) > base64.StdEncoding.EncodedLen(maxSigBytes) {
		return fmt.Errorf("%w: mchid %.32s", ErrBadSignatureEncoding, a.MchID)
	}
	sc := sigPool.Get().(*sigScratch)
	defer sigPool.Put(sc)
	m := copy(sc.src[:], a.Signature)
	n, err := base64.StdEncoding.Decode(sc.sig[:], sc.src[:m])
	if err != nil || n != pub.Size() {
		return fmt.Errorf("%w: mchid %.32s", ErrBadSignatureEncoding, a.MchID)
	}
	bp := getBuf()
	b := append((*bp)[:0], method...)
	b = append(b, '\n')
	b = append(b, url...)
	b = append(b, '\n')
	b = append(b, a.Timestamp...) // as signed, even with leading zeros
	b = append(b, '\n')
	b = append(b, a.NonceStr...)
	b = append(b, '\n')
	b = append(b, body...)
	b = append(b, '\n')
	sc.digest = sha256.Sum256(b)
	*bp = b
	putBuf(bp)
	if err := pub.VerifyDigest(&sc.digest, sc.sig[:n]); err != nil {
		return fmt.Errorf("%w: mchid %.32s serial %.64s", ErrBadSignature, a.MchID, a.SerialNo)
	}
	return nil
}
