package wxpay

import (
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestSensitiveFields(t *testing.T) {
	t.Parallel()
	pub, priv := katPublicKey(t), katPrivateKey(t)

	t.Run("a field is RSA-OAEP with SHA-1 under WeChat's key, in standard Base64", func(t *testing.T) {
		ct, err := EncryptSensitive(pub, "6225880137000000")
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(ct)
		if err != nil || len(raw) != pub.Size() {
			t.Fatalf("ciphertext %q: %d bytes, %v", ct, len(raw), err)
		}
		plain, err := rsa.DecryptOAEP(sha1.New(), nil, priv, raw, nil)
		if err != nil || string(plain) != "6225880137000000" {
			t.Fatalf("OAEP-SHA1 decrypt: %q, %v", plain, err)
		}
		if got, err := DecryptSensitive(priv, ct); err != nil || got != "6225880137000000" {
			t.Fatalf("DecryptSensitive: %q, %v", got, err)
		}
	})
	t.Run("each encryption differs", func(t *testing.T) {
		a, _ := EncryptSensitive(pub, "张三")
		b, _ := EncryptSensitive(pub, "张三")
		if a == "" || a == b {
			t.Fatalf("%q %q", a, b)
		}
	})
	t.Run("what cannot be encrypted fails without echoing it", func(t *testing.T) {
		long := strings.Repeat("9", 215) // RSA-2048 with OAEP-SHA1 holds 214 bytes
		for name, tc := range map[string]struct {
			pub   *rsa.PublicKey
			plain string
		}{"empty": {pub, ""}, "too long": {pub, long}, "no key": {nil, "6225880137000000"}} {
			_, err := EncryptSensitive(tc.pub, tc.plain)
			if !errors.Is(err, ErrSensitive) || (tc.plain != "" && strings.Contains(err.Error(), tc.plain)) {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, err := EncryptSensitive(pub, long[:214]); err != nil {
			t.Errorf("214 bytes: %v", err)
		}
	})
	t.Run("what does not decrypt fails", func(t *testing.T) {
		newFixture(t) // makes otherRSA
		other, _ := EncryptSensitive(&otherRSA.PublicKey, "x")
		for _, ct := range []string{"", "%%%", base64.StdEncoding.EncodeToString([]byte("short")), other} {
			if _, err := DecryptSensitive(priv, ct); !errors.Is(err, ErrSensitive) {
				t.Errorf("%q: %v", ct, err)
			}
		}
	})
}

func TestAbnormalRefundRequestRedacts(t *testing.T) {
	t.Parallel()
	r := AbnormalRefundRequest{OutRefundNo: "R1", Type: AbnormalRefundUserBankCard, BankType: "ICBC_DEBIT",
		BankAccount: "6225880137000000", RealName: "张三"}
	for _, s := range []string{r.String(), fmt.Sprint(r), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), fmt.Sprintf("%v", &r)} {
		if strings.Contains(s, "6225880137000000") || strings.Contains(s, "张三") || !strings.Contains(s, "ICBC_DEBIT") {
			t.Errorf("%s", s)
		}
	}
}

func TestValidRefundID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"50000000382019052709732678859": true, "1": true, strings.Repeat("9", 32): true,
		"": false, strings.Repeat("9", 33): false, "5000/0": false, "50 00": false, "R-1": false, "退款": false,
	} {
		if ValidRefundID(s) != want {
			t.Errorf("ValidRefundID(%q) != %v", s, want)
		}
	}
}
