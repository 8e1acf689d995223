package webhook

import "errors"

// The deliverer's errors; Verify's are in signature.go, which stands alone.
var (
	// ErrConfig: the configuration is invalid.
	ErrConfig = errors.New("webhook: invalid config")
	// ErrClosed: the Deliverer was closed or already ran.
	ErrClosed = errors.New("webhook: closed")
)
