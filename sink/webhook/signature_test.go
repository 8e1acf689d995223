package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec-0123456789abcdef")
	body := []byte(`{"v":1,"event_id":"01X:2","type":"order.paid"}`)
	at := time.Unix(1_800_000_000, 0)
	good := Sign(secret, at.Unix(), body)
	other := Sign([]byte("another-secret-0123456789"), at.Unix(), body)
	cases := []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"a fresh signature verifies", good, body, at.Add(time.Minute), nil},
		{"a second v1 for a rotated secret verifies", other + ",v1=" + strings.Split(good, "v1=")[1], body, at, nil},
		{"unknown keys are ignored", "x=1," + good + ",v0=abc", body, at, nil},
		{"a changed body does not", good, append([]byte(nil), append(body, ' ')...), at, ErrBadSignature},
		{"another secret does not", other, body, at, ErrBadSignature},
		{"a changed timestamp does not", strings.Replace(good, "t=1800000000", "t=1800000001", 1), body, at, ErrBadSignature},
		{"older than the tolerance is stale", good, body, at.Add(5*time.Minute + time.Second), ErrStale},
		{"far in the future is stale", good, body, at.Add(-6 * time.Minute), ErrStale},
		{"no header", "", body, at, ErrNoSignature},
		{"no v1", "t=1800000000", body, at, ErrNoSignature},
		{"no t", "v1=" + strings.Split(good, "v1=")[1], body, at, ErrNoSignature},
		{"two t", good + ",t=1", body, at, ErrNoSignature},
		{"a v1 that is not hex", "t=1800000000,v1=zz", body, at, ErrNoSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Verify(secret, c.header, c.body, c.now, 0); !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

// TestSignIsHMACOverTimestampDotBody holds Sign to the documented scheme,
// computed here without the package.
func TestSignIsHMACOverTimestampDotBody(t *testing.T) {
	t.Parallel()
	secret, body := []byte("0123456789abcdef"), []byte(`{"a":1}`)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("1700000000.{\"a\":1}"))
	want := "t=1700000000,v1=" + hex.EncodeToString(m.Sum(nil))
	if got := Sign(secret, 1_700_000_000, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func FuzzVerify(f *testing.F) {
	secret := []byte("0123456789abcdef")
	f.Add(Sign(secret, 1_700_000_000, []byte("{}")), []byte("{}"))
	f.Add("t=,v1=", []byte(""))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := Verify(secret, header, body, time.Unix(1_700_000_000, 0), time.Minute)
		if err != nil && !errors.Is(err, ErrNoSignature) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrStale) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
