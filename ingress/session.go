package ingress

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// Sessions are stateless: token = base64url(payload) "." base64url(mac),
// payload = version(1) | expiry unix seconds (8, big endian) | openid.
// Any node holding the session secret can check one.

var (
	errNoSession      = errors.New("ingress: missing session")
	errBadSession     = errors.New("ingress: invalid session")
	errExpiredSession = errors.New("ingress: session expired")
)

const sessionVersion = 1

type sessions struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

func (s *sessions) issue(openid string) (string, time.Duration) {
	exp := s.now().Add(s.ttl).Unix()
	p := make([]byte, 0, 9+len(openid))
	p = append(p, sessionVersion)
	p = binary.BigEndian.AppendUint64(p, uint64(exp))
	p = append(p, openid...)
	mac := hmac.New(sha256.New, s.secret)
	mac.Write(p)
	enc := base64.RawURLEncoding
	out := make([]byte, 0, enc.EncodedLen(len(p))+1+enc.EncodedLen(sha256.Size))
	out = enc.AppendEncode(out, p)
	out = append(out, '.')
	out = enc.AppendEncode(out, mac.Sum(nil))
	return string(out), s.ttl
}

// check returns the openid of a valid, unexpired token.
func (s *sessions) check(token []byte) (string, error) {
	if len(token) == 0 {
		return "", errNoSession
	}
	if len(token) > 512 {
		return "", errBadSession
	}
	dot := -1
	for i, c := range token {
		if c == '.' {
			dot = i
			break
		}
	}
	if dot < 0 {
		return "", errBadSession
	}
	enc := base64.RawURLEncoding
	p, err := enc.AppendDecode(nil, token[:dot])
	if err != nil || len(p) < 10 || p[0] != sessionVersion {
		return "", errBadSession
	}
	sig, err := enc.AppendDecode(nil, token[dot+1:])
	if err != nil {
		return "", errBadSession
	}
	mac := hmac.New(sha256.New, s.secret)
	mac.Write(p)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return "", errBadSession
	}
	if int64(binary.BigEndian.Uint64(p[1:9])) < s.now().Unix() {
		return "", errExpiredSession
	}
	return string(p[9:]), nil
}
