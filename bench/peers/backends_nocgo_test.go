//go:build !cgo

package peers

import (
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/wxpayd/wxpayd/wxpay"
)

// Without cgo only the Go backend exists; OpenSSL benchmarks are skipped.
func backends(testing.TB) []wxpay.Backend { return []wxpay.Backend{wxpay.GoBackend} }

func mustOpenSSL(tb testing.TB) wxpay.Backend {
	tb.Skip("built with CGO_ENABLED=0: no OpenSSL backend")
	return nil
}

var errNoCgo = errors.New("no cgo")

type fipsSigner struct{}

func newFIPSSigner(tb testing.TB, _ *rsa.PrivateKey) *fipsSigner {
	tb.Skip("built with CGO_ENABLED=0: no OpenSSL")
	return nil
}

func (*fipsSigner) sign(*[sha256.Size]byte) ([]byte, error) { return nil, errNoCgo }

type fipsVerifier struct{}

func newFIPSVerifier(tb testing.TB, _ *rsa.PublicKey) *fipsVerifier {
	tb.Skip("built with CGO_ENABLED=0: no OpenSSL")
	return nil
}

func (*fipsVerifier) verify(*[sha256.Size]byte, []byte) error { return errNoCgo }
