package peers

import (
	"testing"

	"github.com/wxpayd/wxpayd/wxpay"
)

// backends lists every backend the cross-checks run with. The OpenSSL
// backend (wxpay/openssl) joins when it lands.
func backends(testing.TB) []wxpay.Backend { return []wxpay.Backend{wxpay.GoBackend} }
