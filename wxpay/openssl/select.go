package openssl

import (
	"errors"
	"fmt"

	"github.com/wxpayd/wxpayd/wxpay"
)

// ErrUnavailable reports that the OpenSSL backend cannot be used: the binary
// was built with CGO_ENABLED=0, or no supported libcrypto could be loaded.
var ErrUnavailable = errors.New("openssl: libcrypto unavailable")

// Backend names accepted by Select.
const (
	// NameAuto selects OpenSSL when libcrypto loads and crypto/rsa otherwise.
	NameAuto = "auto"
	// NameGo selects wxpay.GoBackend (crypto/rsa).
	NameGo = "go"
	// NameOpenSSL selects this package's backend and fails if it is unavailable.
	NameOpenSSL = "openssl"
)

// Select returns the RSA backend configured by name:
//
//   - "auto": the OpenSSL backend if libcrypto loads (see New), else
//     wxpay.GoBackend; it never fails.
//   - "go": wxpay.GoBackend; libcrypto is not touched.
//   - "openssl": the OpenSSL backend, or an error wrapping ErrUnavailable.
//
// Any other name, including "", is an error naming the value. libPath is
// passed to New. Select is safe for concurrent use; log the chosen backend's
// Name and Version at start-up.
func Select(name, libPath string) (wxpay.Backend, error) {
	switch name {
	case NameAuto:
		b, err := New(libPath)
		if err != nil {
			return wxpay.GoBackend, nil
		}
		return b, nil
	case NameGo:
		return wxpay.GoBackend, nil
	case NameOpenSSL:
		return New(libPath)
	default:
		return nil, fmt.Errorf("openssl: unknown RSA backend %q (want %q, %q or %q)",
			name, NameAuto, NameGo, NameOpenSSL)
	}
}

// Version returns the version text of the libcrypto this package loaded, such
// as "OpenSSL 3.0.19 27 Jan 2026", or "" when none is loaded (New has not
// succeeded yet, or the build has no cgo). It is safe for concurrent use.
func Version() string { return loadedVersion() }
