//go:build !race

package wxpay

import (
	"testing"
)

// Allocation pins for the hot paths. A change that adds allocations fails
// here; lower the pin when an allocation is removed.

func TestAllocations(t *testing.T) {
	f := newFixture(t)
	h, body := f.notification(t, testTransaction, f.pubKeyID)
	dst := make([]byte, 0, 1024)
	r := Resource{Algorithm: AlgorithmAESGCM, Nonce: "a1b2c3d4e5f6", AssociatedData: "transaction"}
	r.Ciphertext, _ = f.aead.Seal(r.Nonce, r.AssociatedData, []byte(testTransaction))
	s := katSigner(t)

	cases := []struct {
		name string
		max  float64
		fn   func()
	}{
		{"AEAD.Open into a buffer", 0, func() { _, _ = f.aead.Open(dst[:0], r.Nonce, r.AssociatedData, r.Ciphertext) }},
		{"ParseNotification", 1, func() { _, _ = ParseNotification(body) }},
		{"DecodeTransaction", 1, func() { _, _ = DecodeTransaction([]byte(testTransaction)) }},
		{"NotifyParser.ParseTransaction minus RSA verify", 2, func() {
			n, _ := ParseNotification(body)
			plain, _ := n.Resource.Decrypt(f.aead, dst[:0])
			_, _ = DecodeTransaction(plain)
		}},
		// crypto/rsa's verify allocates its big-number state per call; the
		// pin covers it so a regression in our code still shows.
		{"Verifier.Verify (go backend)", 12, func() { _ = f.verifier.Verify(h, body) }},
		{"Signer.Authorization (go backend)", 12, func() {
			_, _ = s.Authorization("POST", "/v3/pay/transactions/jsapi", body, 1700000000, "593BEC0C930BF1AFEB40B4A08C8FB242")
		}},
	}
	for _, tc := range cases {
		got := testing.AllocsPerRun(50, tc.fn)
		t.Logf("%s: %.0f allocs", tc.name, got)
		if got > tc.max {
			t.Errorf("%s: %.0f allocs, want <= %.0f", tc.name, got, tc.max)
		}
	}
}
