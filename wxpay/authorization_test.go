package wxpay

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// k9Auth is the K9 request signature (GET /v3/certificates, timestamp
// 1554208460, nonce 593BEC0C930BF1AFEB40B4A08C8FB242, K1 key) as a header
// in the documentation's pair order.
func k9Auth(t testing.TB) string {
	t.Helper()
	sig := strings.TrimSpace(string(readKAT(t, "k9_request_signature.txt")))
	return `WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",signature="` +
		sig + `",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"`
}

func TestParseAuthorization(t *testing.T) {
	t.Parallel()

	t.Run("the documentation's example parses into its five values", func(t *testing.T) {
		a, err := ParseAuthorization(k9Auth(t))
		if err != nil {
			t.Fatal(err)
		}
		if a.MchID != "1900009191" || a.NonceStr != "593BEC0C930BF1AFEB40B4A08C8FB242" ||
			a.Timestamp != "1554208460" || a.SerialNo != "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C" ||
			!strings.HasPrefix(a.Signature, "RjVFHMcrr9") {
			t.Fatalf("got %+v", a)
		}
	})

	t.Run("pairs in any order and spaces after commas give the same result", func(t *testing.T) {
		want, _ := ParseAuthorization(k9Auth(t))
		pairs := []string{
			`mchid="1900009191"`, `nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242"`,
			`signature="` + want.Signature + `"`, `timestamp="1554208460"`,
			`serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"`,
		}
		perms := [][]int{{4, 3, 2, 1, 0}, {2, 0, 4, 1, 3}, {0, 1, 3, 4, 2}, {3, 4, 0, 2, 1}}
		for _, p := range perms {
			var b []string
			for _, i := range p {
				b = append(b, pairs[i])
			}
			for _, sep := range []string{",", ", "} {
				got, err := ParseAuthorization(SignatureType + " " + strings.Join(b, sep))
				if err != nil || got != want {
					t.Fatalf("order %v sep %q: got %+v, %v", p, sep, got, err)
				}
			}
		}
	})

	t.Run("String writes what Signer.Authorization writes and parses back", func(t *testing.T) {
		s := katSigner(t)
		h, err := s.Authorization("GET", "/v3/certificates", nil, 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242")
		if err != nil {
			t.Fatal(err)
		}
		a, err := ParseAuthorization(h)
		if err != nil {
			t.Fatal(err)
		}
		if a.String() != h {
			t.Fatalf("String:\n got %s\nwant %s", a.String(), h)
		}
	})

	good := k9Auth(t)
	bad := []struct{ name, value string }{
		{"an empty value", ""},
		{"another scheme", strings.Replace(good, "WECHATPAY2-SHA256-RSA2048", "WECHATPAY2-SM2-WITH-SM3", 1)},
		{"a lower-case scheme", strings.ToLower(good[:25]) + good[25:]},
		{"no space after the scheme", strings.Replace(good, "RSA2048 ", "RSA2048", 1)},
		{"a missing pair", strings.Replace(good, `,timestamp="1554208460"`, "", 1)},
		{"a repeated pair", good + `,mchid="1900009191"`},
		{"a sixth unknown pair", good + `,extra="1"`},
		{"an unknown name replacing a known one", strings.Replace(good, "nonce_str=", "nonce=", 1)},
		{"an unquoted value", strings.Replace(good, `mchid="1900009191"`, `mchid=1900009191`, 1)},
		{"an unterminated quote", strings.TrimSuffix(good, `"`)},
		{"an empty value inside quotes", strings.Replace(good, `mchid="1900009191"`, `mchid=""`, 1)},
		{"a trailing comma", good + ","},
		{"a semicolon separator", strings.Replace(good, `",nonce_str`, `";nonce_str`, 1)},
		{"a space before the equals sign", strings.Replace(good, `mchid="`, `mchid ="`, 1)},
		{"a non-numeric timestamp", strings.Replace(good, `"1554208460"`, `"1554208460a"`, 1)},
		{"a 13-digit timestamp", strings.Replace(good, `"1554208460"`, `"1554208460000"`, 1)},
		{"a backslash in a value", strings.Replace(good, `mchid="1900009191"`, `mchid="19\00009191"`, 1)},
		{"a control character in a value", strings.Replace(good, `mchid="1900009191"`, "mchid=\"19\n0009191\"", 1)},
		{"an oversized header", good + strings.Repeat(" ", MaxAuthorizationLen)},
		{"text after the last pair", good + " x"},
	}
	for _, tc := range bad {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			_, err := ParseAuthorization(tc.value)
			if err == nil {
				t.Fatalf("accepted %q", tc.value)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrMissingHeader) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrMissingHeader", err)
			}
		})
	}
}

func TestVerifyRequest(t *testing.T) {
	t.Parallel()
	pub, err := GoBackend.NewPublicKey(katPublicKey(t))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseAuthorization(k9Auth(t))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1554208460, 0)

	t.Run("K9 the published request signature verifies", func(t *testing.T) {
		if err := VerifyRequest(a, pub, "GET", "/v3/certificates", nil, at.Add(299*time.Second), DefaultWindow); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a signature made by Signer verifies with a body and a query", func(t *testing.T) {
		s := katSigner(t)
		body := []byte(`{"mchid":"1900009191"}`)
		url := "/v3/pay/transactions/out-trade-no/A123456/close?x=1"
		h, err := s.Authorization("POST", url, body, at.Unix(), "N1")
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseAuthorization(h)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyRequest(b, pub, "POST", url, body, at, DefaultWindow); err != nil {
			t.Fatal(err)
		}
		if err := VerifyRequest(b, pub, "POST", url, append(body, ' '), at, DefaultWindow); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("changed body: %v", err)
		}
	})

	cases := []struct {
		name   string
		mod    func(a Authorization) Authorization
		method string
		url    string
		now    time.Time
		want   error
	}{
		{"a timestamp five minutes old is expired", nil, "GET", "/v3/certificates", at.Add(300 * time.Second), ErrExpired},
		{"a timestamp five minutes ahead is expired", nil, "GET", "/v3/certificates", at.Add(-300 * time.Second), ErrExpired},
		{"another method fails", nil, "POST", "/v3/certificates", at, ErrBadSignature},
		{"another URL fails", nil, "GET", "/v3/certificates?x=1", at, ErrBadSignature},
		{"another nonce fails", func(a Authorization) Authorization { a.NonceStr = "x"; return a }, "GET", "/v3/certificates", at, ErrBadSignature},
		{"a SIGNTEST probe of the right length fails", func(a Authorization) Authorization {
			a.Signature = SignTestPrefix + a.Signature[19:]
			return a
		}, "GET", "/v3/certificates", at, ErrBadSignature},
		{"a short signature is malformed", func(a Authorization) Authorization { a.Signature = "AAAA"; return a }, "GET", "/v3/certificates", at, ErrBadSignatureEncoding},
		{"a huge signature is malformed", func(a Authorization) Authorization {
			a.Signature = strings.Repeat("A", 2000)
			return a
		}, "GET", "/v3/certificates", at, ErrBadSignatureEncoding},
		{"a flipped signature byte fails", func(a Authorization) Authorization {
			a.Signature = "S" + a.Signature[1:]
			return a
		}, "GET", "/v3/certificates", at, ErrBadSignature},
		{"a bad timestamp is malformed", func(a Authorization) Authorization { a.Timestamp = "-1"; return a }, "GET", "/v3/certificates", at, ErrBadTimestamp},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := a
			if tc.mod != nil {
				b = tc.mod(a)
			}
			err := VerifyRequest(b, pub, tc.method, tc.url, nil, tc.now, DefaultWindow)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add(k9Auth(f))
	f.Add(`WECHATPAY2-SHA256-RSA2048 serial_no="S",timestamp="1",signature="x",nonce_str="n",mchid="m"`)
	f.Add(`WECHATPAY2-SHA256-RSA2048 mchid="m", mchid="m"`)
	f.Add(`WECHATPAY2-SHA256-RSA2048 `)
	f.Add(`WECHATPAY2-SHA256-RSA2048 mchid="`)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAuthorization(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrMissingHeader) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrMissingHeader", err)
			}
			return
		}
		b, err := ParseAuthorization(a.String())
		if err != nil || b != a {
			t.Fatalf("round trip of %q: %+v, %v", s, b, err)
		}
	})
}
