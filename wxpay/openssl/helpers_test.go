package openssl_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/wxpayd/wxpayd/wxpay"
)

// k1Message and k1Signature are the K1 known answer from wechatpay-go's test
// fixtures (see /work/shared/docs/wechatpay-kat-vectors.md, section A): the
// key in testdata/k1_private_key.pem signs the six bytes "source" to this.
const (
	k1Message   = "source"
	k1Signature = "BKyAfU4iMCuvXMXS0Wzam3V/cnxZ+JaqigPM5OhljS2iOT95OO6Fsuml2JkFANJU9K6q9bLlDhPXuoVz+pp4hAm6pHU4ld815U4jsKu1RkyaII+1CYBUYC8TK0XtJ8FwUXXz8vZHh58rrAVN1XwNyvD1vfpxrMT4SL536GLwvpUHlCqIMzoZUguLli/K8V29QiOhuH6IEqLNJn8e9b3nwNcQ7be3CzYGpDAKBfDGPCqCv8Rw5zndhlffk2FEA70G4hvMwe51qMN/RAJbknXG23bSlObuTCN7Ndj1aJGH6/L+hdwfLpUtJm4QYVazzW7DFD27EpSQEqA8bX9+8m1rLg=="
)

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// k1Private parses the K1 private key afresh (callers may hand it to backends
// that keep it).
func k1Private(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	k, err := wxpay.ParsePrivateKeyPEM(readTestdata(tb, "k1_private_key.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func k1Public(tb testing.TB) *rsa.PublicKey {
	tb.Helper()
	k, err := wxpay.ParsePublicKeyPEM(readTestdata(tb, "k1_public_key.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func k1Sig(tb testing.TB) []byte {
	tb.Helper()
	sig, err := base64.StdEncoding.DecodeString(k1Signature)
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

func digest(msg string) *[sha256.Size]byte {
	d := sha256.Sum256([]byte(msg))
	return &d
}

// keyPair is one key prepared by one backend.
type keyPair struct {
	priv wxpay.PrivateKey
	pub  wxpay.PublicKey // built by NewPublicKey, not taken from priv.Public()
}

func prepare(tb testing.TB, b wxpay.Backend, k *rsa.PrivateKey) keyPair {
	tb.Helper()
	priv, err := b.NewPrivateKey(k)
	if err != nil {
		tb.Fatalf("%s: NewPrivateKey: %v", b.Name(), err)
	}
	pub, err := b.NewPublicKey(&k.PublicKey)
	if err != nil {
		tb.Fatalf("%s: NewPublicKey: %v", b.Name(), err)
	}
	return keyPair{priv: priv, pub: pub}
}

const cryptoSHA256 = crypto.SHA256

func bigE(k *rsa.PrivateKey) *big.Int { return big.NewInt(int64(k.E)) }
