package wxpay

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
)

// Sensitive request fields (a bank account, a person's name) travel
// encrypted with WeChat's public key: RSA-OAEP with SHA-1 and MGF1-SHA-1,
// no label, Base64 (standard, padded). The request names the key in
// Wechatpay-Serial. (wechatpay-go utils.EncryptOAEPWithPublicKey; WeChat's
// guide "如何使用微信支付公钥加密敏感字段".)

// EncryptSensitive encrypts one sensitive field for WeChat under pub, the
// key of the serial the request names (KeySet.Newest; VerifyKey.RSA). Each
// call gives a different ciphertext. An empty plaintext, or one longer than
// the key can hold (214 bytes for RSA-2048), wraps ErrSensitive; errors
// never carry the plaintext.
func EncryptSensitive(pub *rsa.PublicKey, plaintext string) (string, error) {
	if pub == nil {
		return "", fmt.Errorf("%w: no key", ErrSensitive)
	}
	if plaintext == "" {
		return "", fmt.Errorf("%w: empty field", ErrSensitive)
	}
	ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, []byte(plaintext), nil)
	if err != nil {
		return "", fmt.Errorf("%w: %d bytes do not fit a %d-bit key", ErrSensitive, len(plaintext), pub.N.BitLen())
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}

// DecryptSensitive opens a field EncryptSensitive encrypted, with the
// private key WeChat holds: for simulators and tests. Failures wrap
// ErrSensitive.
func DecryptSensitive(priv *rsa.PrivateKey, ciphertext string) (string, error) {
	if priv == nil {
		return "", fmt.Errorf("%w: no key", ErrSensitive)
	}
	ct, err := base64.StdEncoding.DecodeString(ciphertext)
	if err != nil {
		return "", fmt.Errorf("%w: not Base64", ErrSensitive)
	}
	plain, err := rsa.DecryptOAEP(sha1.New(), nil, priv, ct, nil)
	if err != nil {
		return "", fmt.Errorf("%w: does not decrypt", ErrSensitive)
	}
	return string(plain), nil
}
