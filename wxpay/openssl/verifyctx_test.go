//go:build cgo

package openssl

import (
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
)

// TestPooledVerifyIsUsedWithOpenSSL3 guards against a silent fallback to
// golang-fips' per-call contexts: with OpenSSL 3 loaded, public keys verify
// through the pool.
func TestPooledVerifyIsUsedWithOpenSSL3(t *testing.T) {
	b, err := New("")
	if err != nil {
		t.Fatalf("libcrypto must load with cgo: %v", err)
	}
	if !strings.HasPrefix(Version(), "OpenSSL 3") {
		t.Skipf("libcrypto is %q, not OpenSSL 3: the pool needs OpenSSL 3's functions", Version())
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := b.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if pub.(*publicKey).fast == nil {
		t.Fatal("OpenSSL 3 is loaded but verification does not use the pooled contexts")
	}
}
