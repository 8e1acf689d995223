package wxpay

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"fmt"
	"sync"
)

// AEAD decrypts and encrypts AEAD_AES_256_GCM resources with the APIv3 key:
// nonce = the ASCII bytes of resource.nonce (12), AAD = the ASCII bytes of
// associated_data, data = Base64(ciphertext || 16-byte tag). The cipher is
// built once; AEAD is safe for concurrent use.
type AEAD struct {
	gcm cipher.AEAD
}

// NewAEAD returns an AEAD for a 32-byte APIv3 key.
func NewAEAD(apiV3Key []byte) (*AEAD, error) {
	if len(apiV3Key) != 32 {
		return nil, fmt.Errorf("%w: got %d bytes", ErrKeyLength, len(apiV3Key))
	}
	return newAEAD(apiV3Key)
}

// newAEAD accepts any AES key size: the published test vectors K2 and K4 use
// 16-byte keys. Production code goes through NewAEAD.
func newAEAD(key []byte) (*AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyLength, err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("wxpay: gcm: %w", err)
	}
	return &AEAD{gcm: gcm}, nil
}

// maxCiphertext bounds a resource's Base64 ciphertext (a platform
// certificate is ~2 KiB; transactions with promotions stay far below).
const maxCiphertext = 64 << 10

type aeadScratch struct{ b []byte }

var aeadPool = sync.Pool{New: func() any { return &aeadScratch{b: make([]byte, 0, 2048)} }}

// Open authenticates and decrypts ciphertextB64 and appends the plaintext to
// dst. Errors wrap ErrBadNonce, ErrBadCiphertext or ErrDecrypt.
func (a *AEAD) Open(dst []byte, nonce, associatedData, ciphertextB64 string) ([]byte, error) {
	if len(nonce) != a.gcm.NonceSize() {
		return nil, fmt.Errorf("%w: got %d bytes", ErrBadNonce, len(nonce))
	}
	if len(ciphertextB64) > maxCiphertext {
		return nil, fmt.Errorf("%w: %d bytes is too long", ErrBadCiphertext, len(ciphertextB64))
	}
	sc := aeadPool.Get().(*aeadScratch)
	defer func() {
		if cap(sc.b) <= 4*maxCiphertext {
			aeadPool.Put(sc)
		}
	}()
	// One pooled buffer: nonce | aad | ciphertext source | decoded ciphertext.
	b := append(sc.b[:0], nonce...)
	b = append(b, associatedData...)
	b = append(b, ciphertextB64...)
	srcEnd := len(b)
	// The source is read from the same backing array; AppendDecode writes
	// only past srcEnd (or into a new array when it grows).
	b, err := base64.StdEncoding.AppendDecode(b, b[len(nonce)+len(associatedData):srcEnd])
	sc.b = b
	if err != nil {
		return nil, fmt.Errorf("%w: not Base64", ErrBadCiphertext)
	}
	ct := b[srcEnd:]
	if len(ct) < a.gcm.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the tag", ErrBadCiphertext, len(ct))
	}
	out, err := a.gcm.Open(dst, b[:len(nonce)], ct, b[len(nonce):len(nonce)+len(associatedData)])
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}

// Seal encrypts plaintext and returns Base64(ciphertext || tag), as WeChat
// does for notifications and certificates. nonce must be 12 bytes.
func (a *AEAD) Seal(nonce, associatedData string, plaintext []byte) (string, error) {
	if len(nonce) != a.gcm.NonceSize() {
		return "", fmt.Errorf("%w: got %d bytes", ErrBadNonce, len(nonce))
	}
	ct := a.gcm.Seal(nil, []byte(nonce), plaintext, []byte(associatedData))
	return base64.StdEncoding.EncodeToString(ct), nil
}
