//go:build cgo

package openssl_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	fips "github.com/golang-fips/openssl/v2"
	"github.com/golang-fips/openssl/v2/bbig"

	"github.com/wxpayd/wxpayd/wxpay"
)

// benchSubjects returns the four ways to sign and verify that the benchmarks
// compare, all with the K1 RSA-2048 key: crypto/rsa called directly, the Go
// backend, golang-fips called directly with a pre-built key, and the OpenSSL
// backend. "bare" minus "backend" is this repository's overhead.
type benchSubject struct {
	name   string
	sign   func(d *[32]byte) ([]byte, error)
	verify func(d *[32]byte, sig []byte) error
}

func benchSubjects(b *testing.B) []benchSubject {
	b.Helper()
	k := k1Private(b)
	goKey := prepare(b, wxpay.GoBackend, k)
	osKey := prepare(b, mustOpenSSL(b), k)
	fPriv, err := fips.NewPrivateKeyRSA(bbig.Enc(k.N), bbig.Enc(bigE(k)), bbig.Enc(k.D),
		bbig.Enc(k.Primes[0]), bbig.Enc(k.Primes[1]),
		bbig.Enc(k.Precomputed.Dp), bbig.Enc(k.Precomputed.Dq), bbig.Enc(k.Precomputed.Qinv))
	if err != nil {
		b.Fatal(err)
	}
	fPub, err := fips.NewPublicKeyRSA(bbig.Enc(k.N), bbig.Enc(bigE(k)))
	if err != nil {
		b.Fatal(err)
	}
	return []benchSubject{
		{"go-crypto-rsa-bare",
			func(d *[32]byte) ([]byte, error) { return rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:]) },
			func(d *[32]byte, sig []byte) error { return rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, d[:], sig) }},
		{"go-backend", goKey.priv.SignDigest, goKey.pub.VerifyDigest},
		{"openssl-bare",
			func(d *[32]byte) ([]byte, error) { return fips.SignRSAPKCS1v15(fPriv, crypto.SHA256, d[:]) },
			func(d *[32]byte, sig []byte) error { return fips.VerifyRSAPKCS1v15(fPub, crypto.SHA256, d[:], sig) }},
		{"openssl-backend", osKey.priv.SignDigest, osKey.pub.VerifyDigest},
	}
}

// BenchmarkSign compares one RSA-2048 PKCS#1 v1.5 SHA-256 signature.
func BenchmarkSign(b *testing.B) {
	d := digest(k1Message)
	for _, s := range benchSubjects(b) {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.sign(d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify compares one RSA-2048 PKCS#1 v1.5 SHA-256 verification of
// a valid signature.
func BenchmarkVerify(b *testing.B) {
	d := digest(k1Message)
	sig := k1Sig(b)
	for _, s := range benchSubjects(b) {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := s.verify(d, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignParallel signs on every P at once (on the 2-core machines,
// expect at most twice BenchmarkSign's throughput).
func BenchmarkSignParallel(b *testing.B) {
	d := digest(k1Message)
	for _, s := range benchSubjects(b) {
		if s.name != "go-backend" && s.name != "openssl-backend" {
			continue
		}
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.sign(d); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
