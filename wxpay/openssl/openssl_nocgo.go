//go:build !cgo

package openssl

import (
	"fmt"

	"github.com/wxpayd/wxpayd/wxpay"
)

// New always fails in builds without cgo: the error wraps ErrUnavailable.
// libPath is ignored. Use Select("auto", ...) to fall back to wxpay.GoBackend.
func New(libPath string) (wxpay.Backend, error) {
	return nil, fmt.Errorf("%w: built with CGO_ENABLED=0", ErrUnavailable)
}

func loadedVersion() string { return "" }
