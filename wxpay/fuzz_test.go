package wxpay

import (
	"bytes"
	"testing"
)

// Fuzzers for every parser of untrusted input on the APIv3 path. Seeds live
// in testdata/fuzz/<Name>; `make fuzz` runs each for a bounded time.

// FuzzNotification feeds arbitrary bodies to the envelope parser and the
// transaction and refund decoders: they must never panic, and whatever the
// envelope parser accepts must carry the required members.
func FuzzNotification(f *testing.F) {
	f.Add([]byte(`{"id":"EV-1","event_type":"TRANSACTION.SUCCESS","resource":{"algorithm":"AEAD_AES_256_GCM","ciphertext":"YQ==","nonce":"123456789012"}}`))
	f.Add([]byte(testTransaction))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := ParseNotification(body)
		if err == nil && (n.ID == "" || n.EventType == "" || n.Resource.Ciphertext == "" || n.Resource.Nonce == "") {
			t.Fatalf("accepted an envelope without required members: %+v", n)
		}
		tx, err := DecodeTransaction(body)
		if err == nil && (tx.OutTradeNo == "" || tx.MchID == "" || tx.AppID == "") {
			t.Fatalf("accepted a transaction without required members: %+v", tx)
		}
		_, _ = DecodeRefundNotice(body)
	})
}

// FuzzVerify mutates a correctly signed notification's headers and body: the
// verifier must never panic, and it must accept only the original bytes.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	h, body := fx.notification(f, testTransaction, fx.pubKeyID)
	f.Add(h.Timestamp, h.Nonce, h.Signature, h.Serial, body)
	f.Add("", "", "", "", []byte{})
	f.Fuzz(func(t *testing.T, ts, nonce, sig, serial string, b []byte) {
		err := fx.verifier.Verify(&Headers{Timestamp: ts, Nonce: nonce, Signature: sig, Serial: serial}, b)
		if err == nil && (ts != h.Timestamp || nonce != h.Nonce || !bytes.Equal(b, body)) {
			t.Fatalf("verified a modified message: ts=%q nonce=%q body=%q", ts, nonce, b)
		}
	})
}

// FuzzDecrypt feeds arbitrary resources to the AEAD: it must never panic and
// must open only what was sealed with the key.
func FuzzDecrypt(f *testing.F) {
	a, err := NewAEAD([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	ct, _ := a.Seal("a1b2c3d4e5f6", "transaction", []byte(testTransaction))
	f.Add("a1b2c3d4e5f6", "transaction", ct)
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, nonce, aad, ciphertext string) {
		plain, err := a.Open(nil, nonce, aad, ciphertext)
		if err == nil && !(nonce == "a1b2c3d4e5f6" && aad == "transaction" && string(plain) == testTransaction) {
			// Anything else that opens must re-seal to the same ciphertext.
			again, err := a.Seal(nonce, aad, plain)
			if err != nil || again != ciphertext {
				t.Fatalf("opened a forged ciphertext: %q", ciphertext)
			}
		}
	})
}
