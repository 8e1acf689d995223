//go:build cgo

package openssl_test

import (
	"testing"

	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/openssl"
)

const cgoBuild = true

// mustOpenSSL returns the OpenSSL backend. With cgo the tests require a
// loadable libcrypto (Debian: libssl3 / libssl3t64): a missing library is a
// failure, not a skip, because production selects this backend.
func mustOpenSSL(tb testing.TB) wxpay.Backend {
	tb.Helper()
	b, err := openssl.New("")
	if err != nil {
		tb.Fatalf("openssl backend unavailable (install libcrypto.so.3): %v", err)
	}
	return b
}

// backends lists every backend this build can test.
func backends(tb testing.TB) []wxpay.Backend {
	return []wxpay.Backend{wxpay.GoBackend, mustOpenSSL(tb)}
}
