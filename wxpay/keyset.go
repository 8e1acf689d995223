package wxpay

import (
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxKeys bounds a KeySet. WeChat has at most two platform certificates in
// use during a rotation plus one public key; the bound keeps a misbehaving
// certificate endpoint from growing memory.
const MaxKeys = 16

// KeyKind tells a platform certificate from a WeChat Pay public key.
type KeyKind uint8

// Key kinds.
const (
	KindCertificate KeyKind = iota + 1 // platform certificate, serial = upper-case hex
	KindPublicKey                      // WeChat Pay public key, id = PUB_KEY_ID_...
)

// VerifyKey is one WeChat key in a KeySet.
type VerifyKey struct {
	Serial    string    // certificate serial or PUB_KEY_ID_...
	Kind      KeyKind   // certificate or public key
	Key       PublicKey // prepared by the KeySet's backend
	NotBefore time.Time // zero for public keys
	NotAfter  time.Time // zero for public keys (no expiry)
	rsa       *rsa.PublicKey
}

// RSA returns the key as a crypto/rsa public key (for encrypting sensitive
// request fields).
func (k *VerifyKey) RSA() *rsa.PublicKey { return k.rsa }

// KeySet maps Wechatpay-Serial values to WeChat's verification keys. It holds
// platform certificates and WeChat Pay public keys at the same time, so a
// merchant in the 7-day migration verifies both. Lookups are lock-free
// (copy-on-write); updates are serialised. Safe for concurrent use.
type KeySet struct {
	backend Backend
	mu      sync.Mutex // serialises writers
	keys    atomic.Pointer[map[string]*VerifyKey]
}

// NewKeySet returns an empty key set whose keys are prepared by backend
// (GoBackend when nil).
func NewKeySet(backend Backend) *KeySet {
	if backend == nil {
		backend = GoBackend
	}
	s := &KeySet{backend: backend}
	m := map[string]*VerifyKey{}
	s.keys.Store(&m)
	return s
}

// AddPublicKey adds a WeChat Pay public key under its id (PUB_KEY_ID_...).
func (s *KeySet) AddPublicKey(id string, k *rsa.PublicKey) error {
	if !strings.HasPrefix(id, PublicKeyIDPrefix) || len(id) == len(PublicKeyIDPrefix) || len(id) > 64 {
		return fmt.Errorf("%w: public key id %q must start with %s", ErrBadKey, id, PublicKeyIDPrefix)
	}
	pk, err := s.backend.NewPublicKey(k)
	if err != nil {
		return err
	}
	return s.put(&VerifyKey{Serial: id, Kind: KindPublicKey, Key: pk, rsa: k})
}

// AddCertificate adds a platform certificate under its serial.
func (s *KeySet) AddCertificate(c *x509.Certificate) error {
	k, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: certificate key is not RSA", ErrBadKey)
	}
	pk, err := s.backend.NewPublicKey(k)
	if err != nil {
		return err
	}
	return s.put(&VerifyKey{
		Serial: CertificateSerial(c), Kind: KindCertificate, Key: pk, rsa: k,
		NotBefore: c.NotBefore, NotAfter: c.NotAfter,
	})
}

func (s *KeySet) put(k *VerifyKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.keys.Load()
	if _, exists := old[k.Serial]; !exists && len(old) >= MaxKeys {
		return fmt.Errorf("%w: key set full (%d keys)", ErrBadKey, MaxKeys)
	}
	m := make(map[string]*VerifyKey, len(old)+1)
	for serial, v := range old {
		m[serial] = v
	}
	m[k.Serial] = k
	s.keys.Store(&m)
	return nil
}

// Lookup returns the key for a Wechatpay-Serial value.
func (s *KeySet) Lookup(serial string) (*VerifyKey, bool) {
	k, ok := (*s.keys.Load())[serial]
	return k, ok
}

// Keys returns the keys sorted by serial.
func (s *KeySet) Keys() []*VerifyKey {
	m := *s.keys.Load()
	out := make([]*VerifyKey, 0, len(m))
	for _, k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Serial < out[j].Serial })
	return out
}

// Len returns the number of keys.
func (s *KeySet) Len() int { return len(*s.keys.Load()) }

// Prune removes certificates that expired before now and returns how many.
// Public keys do not expire.
func (s *KeySet) Prune(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.keys.Load()
	m := make(map[string]*VerifyKey, len(old))
	for serial, k := range old {
		if k.Kind == KindCertificate && !k.NotAfter.IsZero() && now.After(k.NotAfter) {
			continue
		}
		m[serial] = k
	}
	s.keys.Store(&m)
	return len(old) - len(m)
}

// Newest returns the key to name in a request's Wechatpay-Serial when
// encrypting sensitive fields: the public key if there is one, else the
// certificate with the latest NotBefore that is valid at now.
func (s *KeySet) Newest(now time.Time) (*VerifyKey, bool) {
	var best *VerifyKey
	for _, k := range *s.keys.Load() {
		if k.Kind == KindPublicKey {
			if best == nil || best.Kind != KindPublicKey || k.Serial > best.Serial {
				best = k
			}
			continue
		}
		if best != nil && best.Kind == KindPublicKey {
			continue
		}
		if now.Before(k.NotBefore) || (!k.NotAfter.IsZero() && now.After(k.NotAfter)) {
			continue
		}
		if best == nil || k.NotBefore.After(best.NotBefore) {
			best = k
		}
	}
	return best, best != nil
}

// ReplaceCertificates makes certs the key set's platform certificates in one
// atomic step: certificates WeChat no longer lists stop verifying, public
// keys are kept, and certificates expired at now are skipped. It returns how
// many certificates were installed.
func (s *KeySet) ReplaceCertificates(certs []*x509.Certificate, now time.Time) (int, error) {
	fresh := make([]*VerifyKey, 0, len(certs))
	for _, c := range certs {
		if now.After(c.NotAfter) {
			continue
		}
		k, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok {
			return 0, fmt.Errorf("%w: certificate key is not RSA", ErrBadKey)
		}
		pk, err := s.backend.NewPublicKey(k)
		if err != nil {
			return 0, err
		}
		fresh = append(fresh, &VerifyKey{Serial: CertificateSerial(c), Kind: KindCertificate, Key: pk, rsa: k,
			NotBefore: c.NotBefore, NotAfter: c.NotAfter})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]*VerifyKey, len(fresh)+1)
	for serial, k := range *s.keys.Load() {
		if k.Kind == KindPublicKey {
			m[serial] = k
		}
	}
	for _, k := range fresh {
		m[k.Serial] = k
	}
	if len(m) > MaxKeys {
		return 0, fmt.Errorf("%w: key set full (%d keys)", ErrBadKey, MaxKeys)
	}
	s.keys.Store(&m)
	return len(fresh), nil
}
