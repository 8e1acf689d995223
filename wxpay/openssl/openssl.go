//go:build cgo

package openssl

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"

	fips "github.com/golang-fips/openssl/v2"
	"github.com/golang-fips/openssl/v2/bbig"

	"github.com/wxpayd/wxpayd/wxpay"
)

// defaultLibs are the sonames New tries, in order, when libPath is "".
var defaultLibs = []string{"libcrypto.so.3", "libcrypto.so"}

// Key size bounds, in modulus bits. The lower bound is crypto/rsa's (it
// refuses smaller keys unless GODEBUG=rsa1024min=0); the upper bound is
// OpenSSL's OPENSSL_RSA_MAX_MODULUS_BITS. Enforcing both when a key is built
// keeps the two backends accepting exactly the same keys.
const (
	minKeyBits = 1024
	maxKeyBits = 16384
)

// lib records the one attempt to initialise libcrypto. golang-fips's Init is
// itself effective only once per process, so after the first attempt (success
// or failure) the outcome is final. Probing candidate files with
// fips.CheckVersion (dlopen, dlclose) happens before that attempt and does
// not count: a path that cannot be opened can be followed by another.
var lib struct {
	mu      sync.Mutex
	file    string // the file passed to fips.Init; "" before the attempt
	err     error  // fips.Init's result, wrapped in ErrUnavailable
	version string // fips.VersionText() after a successful Init
}

// New loads libcrypto through github.com/golang-fips/openssl/v2 and returns
// the OpenSSL backend, named "openssl".
//
// libPath is passed to dlopen verbatim; "" tries "libcrypto.so.3", then
// "libcrypto.so". OpenSSL 3 is the target (1.1.1 and 1.0.2 load too, as
// golang-fips supports them, but are neither tested nor tuned). libcrypto is
// initialised once per process: later calls return the same backend (or the
// same error) without reloading; a later call naming a different non-empty
// libPath than the loaded one fails. Errors caused by a missing or unusable
// libcrypto wrap ErrUnavailable.
//
// New is safe for concurrent use, and so are the backend and its keys.
func New(libPath string) (wxpay.Backend, error) {
	if err := load(libPath); err != nil {
		return nil, err
	}
	return backend{}, nil
}

func load(libPath string) error {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if lib.file != "" {
		if lib.err == nil && libPath != "" && libPath != lib.file {
			return fmt.Errorf("openssl: libcrypto already loaded from %q, cannot also load %q",
				lib.file, libPath)
		}
		return lib.err
	}
	candidates := defaultLibs
	if libPath != "" {
		candidates = []string{libPath}
	}
	for _, file := range candidates {
		if exists, _ := fips.CheckVersion(file); !exists {
			continue
		}
		lib.file = file
		if err := fips.Init(file); err != nil {
			lib.err = fmt.Errorf("%w: %s: %w", ErrUnavailable, file, err)
			return lib.err
		}
		lib.version = fips.VersionText()
		return nil
	}
	quoted := make([]string, len(candidates))
	for i, c := range candidates {
		quoted[i] = strconv.Quote(c)
	}
	return fmt.Errorf("%w: cannot dlopen %s", ErrUnavailable, strings.Join(quoted, " or "))
}

func loadedVersion() string {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	return lib.version
}

// backend is the OpenSSL wxpay.Backend. Only New returns it, after libcrypto
// is initialised.
type backend struct{}

func (backend) Name() string { return NameOpenSSL }

// NewPrivateKey converts k once into an OpenSSL EVP_PKEY (N, E, D and the CRT
// values P, Q, Dp, Dq, Qinv) and returns a key that signs with it. k itself
// is neither modified nor retained.
func (backend) NewPrivateKey(k *rsa.PrivateKey) (wxpay.PrivateKey, error) {
	if k == nil {
		return nil, fmt.Errorf("%w: nil private key", wxpay.ErrBadKey)
	}
	if len(k.Primes) != 2 {
		return nil, fmt.Errorf("%w: RSA key with %d primes (only two-prime keys are supported)",
			wxpay.ErrBadKey, len(k.Primes))
	}
	if err := checkPublic(&k.PublicKey); err != nil {
		return nil, err
	}
	if err := k.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", wxpay.ErrBadKey, err)
	}
	pub, err := newPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	p, q := k.Primes[0], k.Primes[1]
	dp, dq, qinv := k.Precomputed.Dp, k.Precomputed.Dq, k.Precomputed.Qinv
	if dp == nil || dq == nil || qinv == nil {
		// Computed here rather than by k.Precompute(), which would write to k.
		one := big.NewInt(1)
		dp = new(big.Int).Mod(k.D, new(big.Int).Sub(p, one))
		dq = new(big.Int).Mod(k.D, new(big.Int).Sub(q, one))
		qinv = new(big.Int).ModInverse(q, p)
		if qinv == nil {
			return nil, fmt.Errorf("%w: prime factors are not coprime", wxpay.ErrBadKey)
		}
	}
	priv, err := fips.NewPrivateKeyRSA(
		bbig.Enc(k.N), bbig.Enc(big.NewInt(int64(k.E))), bbig.Enc(k.D),
		bbig.Enc(p), bbig.Enc(q), bbig.Enc(dp), bbig.Enc(dq), bbig.Enc(qinv))
	if err != nil {
		return nil, fmt.Errorf("%w: openssl rejected the private key: %w", wxpay.ErrBadKey, err)
	}
	return &privateKey{k: priv, pub: pub}, nil
}

// NewPublicKey converts k once into an OpenSSL EVP_PKEY (N, E). k is neither
// modified nor retained.
func (backend) NewPublicKey(k *rsa.PublicKey) (wxpay.PublicKey, error) {
	if err := checkPublic(k); err != nil {
		return nil, err
	}
	return newPublicKey(k)
}

// checkPublic applies crypto/rsa's rules for public keys (odd modulus of at
// least 1024 bits, odd exponent in [3, 2³¹-1]) so that a key one backend
// accepts the other accepts too.
func checkPublic(k *rsa.PublicKey) error {
	switch {
	case k == nil || k.N == nil || k.N.Sign() <= 0:
		return fmt.Errorf("%w: nil public key", wxpay.ErrBadKey)
	case k.N.Bit(0) == 0:
		return fmt.Errorf("%w: even modulus", wxpay.ErrBadKey)
	case k.N.BitLen() < minKeyBits || k.N.BitLen() > maxKeyBits:
		return fmt.Errorf("%w: %d-bit modulus (want %d to %d bits)",
			wxpay.ErrBadKey, k.N.BitLen(), minKeyBits, maxKeyBits)
	case k.E < 3 || k.E&1 == 0 || k.E > 1<<31-1:
		return fmt.Errorf("%w: public exponent %d", wxpay.ErrBadKey, k.E)
	}
	return nil
}

func newPublicKey(k *rsa.PublicKey) (*publicKey, error) {
	pk, err := fips.NewPublicKeyRSA(bbig.Enc(k.N), bbig.Enc(big.NewInt(int64(k.E))))
	if err != nil {
		return nil, fmt.Errorf("%w: openssl rejected the public key: %w", wxpay.ErrBadKey, err)
	}
	pub := &publicKey{k: pk, size: k.Size()}
	lib.mu.Lock()
	file := lib.file
	lib.mu.Unlock()
	if file != "" && fastVerifyReady(file) {
		pub.fast = newCtxPool(k) // nil if OpenSSL refuses: golang-fips' path is used
	}
	return pub, nil
}

// privateKey signs with a cached golang-fips key (an EVP_PKEY freed by its
// finalizer). Each call gets its own EVP_PKEY_CTX inside golang-fips, so
// concurrent calls share nothing mutable.
type privateKey struct {
	k   *fips.PrivateKeyRSA
	pub *publicKey
}

var errSignLength = errors.New("openssl: rsa sign: signature length differs from the modulus size")

func (p *privateKey) SignDigest(d *[sha256.Size]byte) ([]byte, error) {
	sig, err := fips.SignRSAPKCS1v15(p.k, crypto.SHA256, d[:])
	if err != nil {
		return nil, fmt.Errorf("openssl: rsa sign: %w", err)
	}
	if len(sig) != p.pub.size {
		// OpenSSL pads PKCS#1 v1.5 signatures to the modulus size; this
		// guards the contract (key-size bytes) should that ever change.
		return nil, errSignLength
	}
	return sig, nil
}

func (p *privateKey) Public() wxpay.PublicKey { return p.pub }

// publicKey verifies through a pool of initialised OpenSSL contexts when
// OpenSSL 3's functions resolved (verifyctx.go), else with golang-fips,
// which sets a context up per call.
type publicKey struct {
	k    *fips.PublicKeyRSA
	fast *ctxPool
	size int
}

func (p *publicKey) VerifyDigest(d *[sha256.Size]byte, sig []byte) error {
	// crypto/rsa accepts only key-size signatures; OpenSSL would also take
	// shorter ones (it left-pads), so the length is checked here first.
	if len(sig) != p.size {
		return wxpay.ErrBadSignature
	}
	if p.fast != nil {
		if valid, ok := p.fast.verify(d, sig); ok {
			if !valid {
				return wxpay.ErrBadSignature
			}
			return nil
		}
	}
	// golang-fips drains OpenSSL's per-thread error queue into the error it
	// returns; its text is not useful to callers, so it is dropped, as the
	// crypto/rsa backend drops its own.
	if fips.VerifyRSAPKCS1v15(p.k, crypto.SHA256, d[:], sig) != nil {
		return wxpay.ErrBadSignature
	}
	return nil
}

func (p *publicKey) Size() int { return p.size }
