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

	// The server's path, NotifyParser.ParseNotice, beyond its RSA verify:
	// one copy of the body for the envelope, one of the plaintext for the
	// transaction.
	verify := testing.AllocsPerRun(50, func() { _ = f.verifier.Verify(h, body) })
	notice := testing.AllocsPerRun(50, func() {
		if n, err := f.parser.ParseNotice(h, body); err != nil || n.Kind != NoticePayment {
			t.Fatal(n.Kind, err)
		}
	})
	t.Logf("NotifyParser.ParseNotice: %.0f allocs, %.0f beyond Verify", notice, notice-verify)
	if notice-verify > 2 {
		t.Errorf("NotifyParser.ParseNotice: %.0f allocs beyond Verify's %.0f, want <= 2", notice-verify, verify)
	}
}
