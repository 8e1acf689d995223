//go:build cgo

package peers

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"math/big"
	"testing"

	fips "github.com/golang-fips/openssl/v2"
	"github.com/golang-fips/openssl/v2/bbig"

	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/openssl"
)

// mustOpenSSL returns the OpenSSL backend. With cgo a missing libcrypto is a
// failure, not a skip: production selects this backend.
func mustOpenSSL(tb testing.TB) wxpay.Backend {
	tb.Helper()
	b, err := openssl.Select(openssl.NameOpenSSL, "")
	if err != nil {
		tb.Fatalf("openssl backend unavailable (install libcrypto.so.3): %v", err)
	}
	return b
}

// backends lists every backend this build can test, Go first.
func backends(tb testing.TB) []wxpay.Backend {
	tb.Helper()
	return []wxpay.Backend{wxpay.GoBackend, mustOpenSSL(tb)}
}

// fipsSigner is the bare golang-fips/openssl sign call on a key built once:
// the floor for the OpenSSL backend.
type fipsSigner struct{ k *fips.PrivateKeyRSA }

func newFIPSSigner(tb testing.TB, k *rsa.PrivateKey) *fipsSigner {
	tb.Helper()
	mustOpenSSL(tb) // initialises libcrypto
	k = rsaCopy(tb, k)
	k.Precompute()
	p, err := fips.NewPrivateKeyRSA(bbig.Enc(k.N), bbig.Enc(big.NewInt(int64(k.E))), bbig.Enc(k.D),
		bbig.Enc(k.Primes[0]), bbig.Enc(k.Primes[1]),
		bbig.Enc(k.Precomputed.Dp), bbig.Enc(k.Precomputed.Dq), bbig.Enc(k.Precomputed.Qinv))
	if err != nil {
		tb.Fatal(err)
	}
	return &fipsSigner{k: p}
}

func (s *fipsSigner) sign(d *[sha256.Size]byte) ([]byte, error) {
	return fips.SignRSAPKCS1v15(s.k, crypto.SHA256, d[:])
}

// fipsVerifier is the bare golang-fips/openssl verify call.
type fipsVerifier struct{ k *fips.PublicKeyRSA }

func newFIPSVerifier(tb testing.TB, k *rsa.PublicKey) *fipsVerifier {
	tb.Helper()
	mustOpenSSL(tb)
	p, err := fips.NewPublicKeyRSA(bbig.Enc(k.N), bbig.Enc(big.NewInt(int64(k.E))))
	if err != nil {
		tb.Fatal(err)
	}
	return &fipsVerifier{k: p}
}

func (v *fipsVerifier) verify(d *[sha256.Size]byte, sig []byte) error {
	return fips.VerifyRSAPKCS1v15(v.k, crypto.SHA256, d[:], sig)
}
