package openssl_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/wxpayd/wxpayd/wxpay"
)

// TestK1KnownAnswer checks every backend this build has against the K1
// vector: the fixed key signs "source" to the published signature, which
// verifies, and does not verify for another message.
func TestK1KnownAnswer(t *testing.T) {
	want := k1Sig(t)
	for _, b := range backends(t) {
		t.Run(b.Name(), func(t *testing.T) {
			priv, err := b.NewPrivateKey(k1Private(t))
			if err != nil {
				t.Fatal(err)
			}
			pub, err := b.NewPublicKey(k1Public(t))
			if err != nil {
				t.Fatal(err)
			}
			got, err := priv.SignDigest(digest(k1Message))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("signature of %q:\n got %s\nwant %s", k1Message,
					base64.StdEncoding.EncodeToString(got), k1Signature)
			}
			for name, p := range map[string]wxpay.PublicKey{"NewPublicKey": pub, "Public()": priv.Public()} {
				if p.Size() != 256 {
					t.Errorf("%s: Size() = %d, want 256", name, p.Size())
				}
				if err := p.VerifyDigest(digest(k1Message), want); err != nil {
					t.Errorf("%s: K1 signature does not verify: %v", name, err)
				}
				if err := p.VerifyDigest(digest("wrong source"), want); !errors.Is(err, wxpay.ErrBadSignature) {
					t.Errorf("%s: K1 signature verifies for %q: err = %v", name, "wrong source", err)
				}
			}
		})
	}
}
