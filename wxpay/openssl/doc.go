// Package openssl is a wxpay.Backend on OpenSSL's libcrypto for RSASSA-PKCS1-v1_5
// with SHA-256, the only RSA scheme WeChat Pay APIv3 uses.
//
// Why: every prepay costs two RSA-2048 signs (the request Authorization header
// and the wx.requestPayment paySign). On the production CPU (AMD EPYC with
// AVX-512 IFMA) OpenSSL 3 signs in about a quarter of crypto/rsa's time
// (~255 µs against ~980 µs); verification is a little faster too. PKCS#1 v1.5
// signatures are deterministic, so this backend and wxpay.GoBackend produce
// byte-identical signatures, which the tests check.
//
// How: libcrypto is loaded at run time with dlopen through
// github.com/golang-fips/openssl/v2 (cgo, no link-time dependency, no OpenSSL
// headers needed to build). New loads it once per process; each key is
// converted once, when built, into an OpenSSL EVP_PKEY that the key object
// keeps. Every SignDigest/VerifyDigest is one golang-fips call, which sets up
// a fresh EVP_PKEY_CTX around the RSA operation.
//
// When it is chosen: Select maps the configured backend name. "auto" uses
// OpenSSL when libcrypto loads (libcrypto.so.3, then libcrypto.so, or the
// configured path) and falls back to wxpay.GoBackend otherwise; "openssl"
// insists on it; "go" never touches libcrypto. Log the chosen backend's Name
// and Version at start-up.
//
// Concurrency: New, Select and Version are safe for concurrent use, and so
// are the backend and every key it returns; keys hold no per-call state.
// OpenSSL 3 and 1.1 manage their own locking; nothing needs set-up per thread.
//
// CGO_ENABLED=0: the package still builds. New returns an error wrapping
// ErrUnavailable, Select("auto", ...) returns wxpay.GoBackend, and Version
// returns "".
package openssl
