package webhook

// This file uses nothing outside the standard library, so a shop's Go
// backend can copy it whole (or import the package) to check wxpayd's
// webhooks; docs/webhooks.md shows the same check in other words.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the header that carries a delivery's signature:
//
//	Wxpayd-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
//
// Receivers ignore keys they do not know, and accept the request if any
// v1 matches (so more than one may be sent while a secret is rotated).
const SignatureHeader = "Wxpayd-Signature"

// DefaultTolerance is how far a signature's timestamp may be from the
// receiver's clock, either way, before Verify refuses it as a replay.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify, one per reason to refuse a delivery.
var (
	// ErrNoSignature: the header is missing or not t=…,v1=….
	ErrNoSignature = errors.New("webhook: missing or malformed signature header")
	// ErrBadSignature: no v1 matches the body and timestamp.
	ErrBadSignature = errors.New("webhook: signature does not match")
	// ErrStale: the timestamp is outside the tolerance (a replay, or a
	// clock far off).
	ErrStale = errors.New("webhook: timestamp outside the tolerance")
)

// Sign returns the signature header's value for body sent at time t
// (Unix seconds) with secret.
func Sign(secret []byte, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery: header is the Wxpayd-Signature value, body the
// raw request body (exactly as received, before any JSON decoding), now
// the receiver's clock and tolerance the largest accepted distance
// between now and the signed timestamp (DefaultTolerance if zero or
// less). It returns nil, ErrNoSignature, ErrBadSignature or ErrStale.
//
// A delivery that verifies may still be a redelivery of one already
// processed: deduplicate on the event's event_id.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts := ""
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrNoSignature
			}
			ts = v
		case "v1":
			if s, err := hex.DecodeString(v); err == nil && len(s) == sha256.Size {
				sigs = append(sigs, s)
			}
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}
