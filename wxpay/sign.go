package wxpay

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"sync"
)

// Signer holds a merchant's identity and API private key and produces APIv3
// Authorization headers and wx.requestPayment signatures. It is safe for
// concurrent use.
type Signer struct {
	mchID  string
	serial string
	key    PrivateKey
}

// NewSigner returns a Signer for merchant mchID whose API certificate has the
// given serial. The key is prepared once by its backend.
func NewSigner(mchID, serial string, key PrivateKey) (*Signer, error) {
	if mchID == "" {
		return nil, fmt.Errorf("%w: mchid", ErrMissingField)
	}
	if serial == "" {
		return nil, fmt.Errorf("%w: merchant serial", ErrMissingField)
	}
	if key == nil {
		return nil, fmt.Errorf("%w: nil merchant key", ErrBadKey)
	}
	return &Signer{mchID: mchID, serial: serial, key: key}, nil
}

// MchID returns the merchant id.
func (s *Signer) MchID() string { return s.mchID }

// Serial returns the merchant certificate serial.
func (s *Signer) Serial() string { return s.serial }

// Key returns the merchant private key.
func (s *Signer) Key() PrivateKey { return s.key }

// bufPool holds scratch buffers for the messages that are hashed and signed.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 64<<10 { // do not keep huge bodies alive
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// Sign returns the Base64 RSASSA-PKCS1-v1_5 SHA-256 signature of msg.
func (s *Signer) Sign(msg []byte) (string, error) {
	d := sha256.Sum256(msg)
	sig, err := s.key.SignDigest(&d)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// Authorization returns the Authorization header value for an APIv3 request:
// method in upper case, url the path plus "?query" exactly as sent, body the
// exact bytes sent (nil for GET). timestamp is Unix seconds; nonce must be
// the one sent (NewNonce makes one).
func (s *Signer) Authorization(method, url string, body []byte, timestamp int64, nonce string) (string, error) {
	bp := getBuf()
	b := *bp
	b = append(b, method...)
	b = append(b, '\n')
	b = append(b, url...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, timestamp, 10)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	b = append(b, body...)
	b = append(b, '\n')
	d := sha256.Sum256(b)
	*bp = b
	putBuf(bp)
	sig, err := s.key.SignDigest(&d)
	if err != nil {
		return "", err
	}
	// WECHATPAY2-SHA256-RSA2048 mchid="",nonce_str="",timestamp="",serial_no="",signature=""
	const scheme = SignatureType + ` mchid="`
	n := len(scheme) + len(s.mchID) + len(nonce) + len(s.serial) + base64.StdEncoding.EncodedLen(len(sig)) + 80
	h := make([]byte, 0, n)
	h = append(h, scheme...)
	h = append(h, s.mchID...)
	h = append(h, `",nonce_str="`...)
	h = append(h, nonce...)
	h = append(h, `",timestamp="`...)
	h = strconv.AppendInt(h, timestamp, 10)
	h = append(h, `",serial_no="`...)
	h = append(h, s.serial...)
	h = append(h, `",signature="`...)
	h = base64.StdEncoding.AppendEncode(h, sig)
	h = append(h, '"')
	return string(h), nil
}

const nonceAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewNonce returns a 32-character random string of [0-9A-Za-z] from
// crypto/rand, as WeChat Pay's SDKs send.
func NewNonce() string {
	var raw [32]byte
	var out [32]byte
	fillNonce(&raw, &out)
	return string(out[:])
}

func fillNonce(raw, out *[32]byte) {
	// 62 symbols: reject bytes >= 248 (4*62) to keep the distribution uniform.
	n := 0
	for n < len(out) {
		if _, err := rand.Read(raw[:]); err != nil {
			panic("wxpay: crypto/rand failed: " + err.Error()) // crypto/rand never fails on Linux
		}
		for _, c := range raw {
			if c >= 248 {
				continue
			}
			out[n] = nonceAlphabet[c%62]
			n++
			if n == len(out) {
				break
			}
		}
	}
}

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
