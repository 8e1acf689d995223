package wxpay

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Known-answer tests K1-K5 and K9 from shared/docs/wechatpay-kat-vectors.md.
// The fixtures in testdata/kat are copied byte for byte from that file.

func readKAT(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "kat", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func katPrivateKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := ParsePrivateKeyPEM(readKAT(t, "merchant_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func katPublicKey(t testing.TB) *rsa.PublicKey {
	t.Helper()
	k, err := ParsePublicKeyPEM(readKAT(t, "wechatpay_public.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func katSigner(t testing.TB) *Signer {
	t.Helper()
	pk, err := GoBackend.NewPrivateKey(katPrivateKey(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner("1900009191", "MERCHANTSERIAL01", pk)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// katCertificate wraps the K1 public key in a certificate with the given
// serial, as WeChat's test certificates F5765756002FDD77 and
// D7CE59D1F522D701 do.
func katCertificate(t testing.TB, serialHex string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	serial, ok := new(big.Int).SetString(serialHex, 16)
	if !ok {
		t.Fatalf("bad serial %q", serialHex)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Tenpay.com sign", Organization: []string{"Tenpay.com"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, katPublicKey(t), katPrivateKey(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKAT(t *testing.T) {
	t.Parallel()

	t.Run("K1 the test key signs 'source' to the published signature and it verifies", func(t *testing.T) {
		s := katSigner(t)
		got, err := s.Sign([]byte("source"))
		if err != nil {
			t.Fatal(err)
		}
		want := string(readKAT(t, "k1_signature.txt"))
		if got != want {
			t.Fatalf("signature mismatch:\n got %s\nwant %s", got, want)
		}
		pub, err := GoBackend.NewPublicKey(katPublicKey(t))
		if err != nil {
			t.Fatal(err)
		}
		sig := mustB64(t, want)
		d := sha256.Sum256([]byte("source"))
		if err := pub.VerifyDigest(&d, sig); err != nil {
			t.Fatalf("published signature does not verify: %v", err)
		}
		d = sha256.Sum256([]byte("wrong source"))
		if err := pub.VerifyDigest(&d, sig); err == nil {
			t.Fatal("signature verified for 'wrong source'")
		}
	})

	t.Run("K2 AES-GCM with a 16-byte key opens to Hello World and fails with another key", func(t *testing.T) {
		a, err := newAEAD([]byte("testAPIv3Key0000"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Open(nil, "wCq51qZv4Yfg", "Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8", "FsdXzxryWfKwvLJKf8LG/ToRPTRh8RN9wROC")
		if err != nil || string(got) != "Hello World" {
			t.Fatalf("got %q, %v", got, err)
		}
		b, _ := newAEAD([]byte("testAPIv3Key1111"))
		if _, err := b.Open(nil, "wCq51qZv4Yfg", "Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8", "FsdXzxryWfKwvLJKf8LG/ToRPTRh8RN9wROC"); err == nil {
			t.Fatal("opened with the wrong key")
		}
	})

	t.Run("K3 AES-256-GCM seals and opens the published ciphertext", func(t *testing.T) {
		a, err := NewAEAD([]byte("a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"))
		if err != nil {
			t.Fatal(err)
		}
		const ct = "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI="
		got, err := a.Open(nil, "uluk4a9R25RW", "associatedData", ct)
		if err != nil || string(got) != "message" {
			t.Fatalf("got %q, %v", got, err)
		}
		sealed, err := a.Seal("uluk4a9R25RW", "associatedData", []byte("message"))
		if err != nil || sealed != ct {
			t.Fatalf("sealed %q, %v; want %q", sealed, err, ct)
		}
	})

	t.Run("K4 the published notification verifies and decrypts to the published plaintext", func(t *testing.T) {
		keys := NewKeySet(GoBackend)
		if err := keys.AddCertificate(katCertificate(t, "D7CE59D1F522D701", time.Unix(1600000000, 0), time.Unix(1800000000, 0))); err != nil {
			t.Fatal(err)
		}
		v := NewVerifier(keys, WithClock(func() time.Time { return time.Unix(1624523846, 0) }))
		a, err := newAEAD([]byte("testMchAPIv3Key0"))
		if err != nil {
			t.Fatal(err)
		}
		body := readKAT(t, "k4_body.json")
		if h := sha256.Sum256(body); hex.EncodeToString(h[:]) != "b6fdfc5e4afdc463950d873c4fdc3c494df05965016225c6a1e8e2e887cdc94d" {
			t.Fatal("fixture body changed")
		}
		h := &Headers{
			Timestamp: "1624523846", Nonce: "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz",
			Signature: string(readKAT(t, "k4_signature.txt")), Serial: "D7CE59D1F522D701",
		}
		var plain string
		n, err := NewNotifyParser(v, a).Parse(h, body, func(_ *Notification, p []byte) error {
			plain = string(p)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := string(readKAT(t, "k4_plaintext.json")); plain != want {
			t.Fatalf("plaintext:\n got %s\nwant %s", plain, want)
		}
		if n.ID != "3119dfba-e649-5eec-ab1e-3412bc4d2e17" || n.EventType != "PAYSCORE.USER_OPEN_SERVICE" ||
			n.Summary != "签约成功" || n.Resource.AssociatedData != "payscore" {
			t.Fatalf("envelope: %+v", n)
		}
	})

	t.Run("K5 the certificate download decrypts to a certificate with the listed serial", func(t *testing.T) {
		a, err := NewAEAD([]byte("a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb"))
		if err != nil {
			t.Fatal(err)
		}
		r := Resource{Algorithm: AlgorithmAESGCM, Nonce: "14b16c03dc1b", AssociatedData: "certificate",
			Ciphertext: string(readKAT(t, "k5_ciphertext.txt"))}
		pemBytes, err := r.Decrypt(a, nil)
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(pemBytes); hex.EncodeToString(h[:]) != "8693813ac0735cb54b6e67f25086a5924c103712255b8857049b8e502d564eb4" {
			t.Fatalf("plaintext hash mismatch (%d bytes)", len(pemBytes))
		}
		c, err := ParseCertificatePEM(pemBytes)
		if err != nil {
			t.Fatal(err)
		}
		if got := CertificateSerial(c); got != "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC" {
			t.Fatalf("serial %s", got)
		}
		if !strings.Contains(c.Subject.String(), "Tenpay.com sign") {
			t.Fatalf("subject %s", c.Subject)
		}
	})

	t.Run("K9 paySign and request signature with the test key match the derived values", func(t *testing.T) {
		s := katSigner(t)
		p, err := s.RequestPayment("wx8888888888888888", "wx201410272009395522657a690389285100", 1414561699, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS")
		if err != nil {
			t.Fatal(err)
		}
		if want := string(readKAT(t, "k9_paysign.txt")); p.PaySign != want {
			t.Fatalf("paySign:\n got %s\nwant %s", p.PaySign, want)
		}
		if p.Package != "prepay_id=wx201410272009395522657a690389285100" || p.SignType != "RSA" || p.TimeStamp != "1414561699" {
			t.Fatalf("params %+v", p)
		}
		auth, err := s.Authorization("GET", "/v3/certificates", nil, 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242")
		if err != nil {
			t.Fatal(err)
		}
		want := `WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",timestamp="1554208460",serial_no="MERCHANTSERIAL01",signature="` +
			string(readKAT(t, "k9_request_signature.txt")) + `"`
		if auth != want {
			t.Fatalf("authorization:\n got %s\nwant %s", auth, want)
		}
	})
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := decodeB64(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
