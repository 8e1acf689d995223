//go:build !cgo

package openssl_test

import (
	"testing"

	"github.com/wxpayd/wxpayd/wxpay"
)

const cgoBuild = false

// backends lists every backend this build can test.
func backends(testing.TB) []wxpay.Backend { return []wxpay.Backend{wxpay.GoBackend} }
