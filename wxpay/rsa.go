package wxpay

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
)

// Backend builds RSA keys for PKCS#1 v1.5 SHA-256 signing and verification.
// Implementations are safe for concurrent use, and so are the keys they return.
type Backend interface {
	// Name identifies the backend in logs and configuration ("go", "openssl").
	Name() string
	// NewPrivateKey prepares k for signing. The backend may precompute and
	// cache per-key state; k must not be modified afterwards.
	NewPrivateKey(k *rsa.PrivateKey) (PrivateKey, error)
	// NewPublicKey prepares k for verification.
	NewPublicKey(k *rsa.PublicKey) (PublicKey, error)
}

// PrivateKey signs SHA-256 digests with RSASSA-PKCS1-v1_5.
type PrivateKey interface {
	// SignDigest returns the signature (key-size bytes, newly allocated) of
	// a SHA-256 digest.
	SignDigest(digest *[sha256.Size]byte) ([]byte, error)
	// Public returns the matching public key, prepared by the same backend.
	Public() PublicKey
}

// PublicKey verifies RSASSA-PKCS1-v1_5 SHA-256 signatures.
type PublicKey interface {
	// VerifyDigest returns nil when sig is a valid signature of digest and an
	// error wrapping ErrBadSignature otherwise.
	VerifyDigest(digest *[sha256.Size]byte, sig []byte) error
	// Size is the modulus size in bytes (the signature length).
	Size() int
}

// GoBackend is the pure-Go backend on crypto/rsa. It is always available and
// the only one in builds with CGO_ENABLED=0.
var GoBackend Backend = goBackend{}

type goBackend struct{}

func (goBackend) Name() string { return "go" }

func (goBackend) NewPrivateKey(k *rsa.PrivateKey) (PrivateKey, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: nil private key", ErrBadKey)
	}
	if err := k.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	k.Precompute()
	return &goPrivateKey{k: k, pub: &goPublicKey{k: &k.PublicKey}}, nil
}

func (goBackend) NewPublicKey(k *rsa.PublicKey) (PublicKey, error) {
	if k == nil || k.N == nil || k.N.Sign() <= 0 {
		return nil, fmt.Errorf("%w: nil public key", ErrBadKey)
	}
	return &goPublicKey{k: k}, nil
}

type goPrivateKey struct {
	k   *rsa.PrivateKey
	pub *goPublicKey
}

func (p *goPrivateKey) SignDigest(d *[sha256.Size]byte) ([]byte, error) {
	// PKCS#1 v1.5 is deterministic; crypto/rsa ignores the reader for it.
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.k, crypto.SHA256, d[:])
	if err != nil {
		return nil, fmt.Errorf("wxpay: rsa sign: %w", err)
	}
	return sig, nil
}

func (p *goPrivateKey) Public() PublicKey { return p.pub }

type goPublicKey struct{ k *rsa.PublicKey }

func (p *goPublicKey) VerifyDigest(d *[sha256.Size]byte, sig []byte) error {
	if err := rsa.VerifyPKCS1v15(p.k, crypto.SHA256, d[:], sig); err != nil {
		return ErrBadSignature
	}
	return nil
}

func (p *goPublicKey) Size() int { return p.k.Size() }

// ParsePrivateKeyPEM parses a merchant API key (apiclient_key.pem): PKCS#8
// "PRIVATE KEY", or PKCS#1 "RSA PRIVATE KEY". Errors never include key bytes.
func ParsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrBadKey)
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#8: %w", ErrBadKey, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: not an RSA key (%T)", ErrBadKey, k)
		}
		return rk, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#1: %w", ErrBadKey, err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("%w: unexpected PEM type %q", ErrBadKey, block.Type)
	}
}

// ParsePublicKeyPEM parses a WeChat Pay public key (PKIX "PUBLIC KEY" or
// PKCS#1 "RSA PUBLIC KEY").
func ParsePublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrBadKey)
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKIX: %w", ErrBadKey, err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: not an RSA key (%T)", ErrBadKey, k)
		}
		return rk, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: PKCS#1: %w", ErrBadKey, err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("%w: unexpected PEM type %q", ErrBadKey, block.Type)
	}
}

// ParseCertificatePEM parses one X.509 certificate holding an RSA key.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: no CERTIFICATE PEM block", ErrBadKey)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %w", ErrBadKey, err)
	}
	if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("%w: certificate key is not RSA", ErrBadKey)
	}
	return c, nil
}

// CertificateSerial returns a certificate's serial as WeChat writes it:
// upper-case hexadecimal without leading zeros.
func CertificateSerial(c *x509.Certificate) string {
	return serialHex(c.SerialNumber)
}

func serialHex(n *big.Int) string { return strings.ToUpper(n.Text(16)) }
