//go:build cgo

package openssl_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	fips "github.com/golang-fips/openssl/v2"
	"github.com/golang-fips/openssl/v2/bbig"

	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/openssl"
)

// testKey is a private key and where it came from.
type testKey struct {
	name string
	k    *rsa.PrivateKey
}

var (
	keysOnce sync.Once
	keys     []testKey
	keysErr  error
)

// freshKeys returns the key pool for the cross-backend tests: the fixed K1
// key plus keys generated for this run, half by crypto/rsa and half by
// OpenSSL (so neither generator's conventions, e.g. which prime is P, are
// assumed by the other backend): six RSA-2048, one RSA-3072, one RSA-4096.
func freshKeys(t *testing.T) []testKey {
	t.Helper()
	mustOpenSSL(t)
	keysOnce.Do(func() {
		pem, err := os.ReadFile("testdata/k1_private_key.pem")
		if err != nil {
			keysErr = err
			return
		}
		k1, err := wxpay.ParsePrivateKeyPEM(pem)
		if err != nil {
			keysErr = err
			return
		}
		keys = append(keys, testKey{"k1-2048", k1})
		type spec struct {
			bits    int
			openssl bool
		}
		specs := []spec{
			{2048, false}, {2048, true}, {2048, false}, {2048, true}, {2048, false}, {2048, true},
			{3072, false}, {4096, true},
		}
		for i, s := range specs {
			var k *rsa.PrivateKey
			var err error
			src := "go"
			if s.openssl {
				src = "openssl"
				k, err = opensslGenerate(s.bits)
			} else {
				k, err = rsa.GenerateKey(rand.Reader, s.bits)
			}
			if err != nil {
				keysErr = fmt.Errorf("generate %d-bit key with %s: %w", s.bits, src, err)
				return
			}
			keys = append(keys, testKey{fmt.Sprintf("gen%d-%d-%s", i, s.bits, src), k})
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keys
}

func opensslGenerate(bits int) (*rsa.PrivateKey, error) {
	N, E, D, P, Q, _, _, _, err := fips.GenerateKeyRSA(bits)
	if err != nil {
		return nil, err
	}
	k := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: bbig.Dec(N), E: int(bbig.Dec(E).Int64())},
		D:         bbig.Dec(D),
		Primes:    []*big.Int{bbig.Dec(P), bbig.Dec(Q)},
	}
	k.Precompute()
	return k, k.Validate()
}

// testMessages returns the empty message and n random ones of random lengths
// in [0, 4096].
func testMessages(r *mrand.Rand, n int) [][]byte {
	msgs := [][]byte{{}}
	for range n {
		m := make([]byte, r.IntN(4097))
		for i := range m {
			m[i] = byte(r.Uint32())
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func TestBackendsAgreeByteForByte(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("message seed %d", seed)
	r := mrand.New(mrand.NewPCG(seed, 0x5eed))
	pool := freshKeys(t)
	ossl := mustOpenSSL(t)

	all := make([]prepared, len(pool))
	for i, k := range pool {
		all[i] = prepared{k, prepare(t, wxpay.GoBackend, k.k), prepare(t, ossl, k.k)}
	}

	for i, k := range all {
		// Another key of the same size, for "signed by another key".
		var other *prepared
		for j := range all {
			if j != i && all[j].k.Size() == k.k.Size() {
				other = &all[j]
				break
			}
		}
		t.Run(k.name, func(t *testing.T) {
			verifiers := map[string]wxpay.PublicKey{
				"go":               k.goKey.pub,
				"openssl":          k.osKey.pub,
				"go Public()":      k.goKey.priv.Public(),
				"openssl Public()": k.osKey.priv.Public(),
			}
			for name, v := range verifiers {
				if v.Size() != k.k.Size() {
					t.Fatalf("%s: Size() = %d, want %d", name, v.Size(), k.k.Size())
				}
			}
			for mi, msg := range testMessages(r, 15) {
				d := sha256.Sum256(msg)
				goSig, err := k.goKey.priv.SignDigest(&d)
				if err != nil {
					t.Fatalf("message %d (%d bytes): go sign: %v", mi, len(msg), err)
				}
				osSig, err := k.osKey.priv.SignDigest(&d)
				if err != nil {
					t.Fatalf("message %d (%d bytes): openssl sign: %v", mi, len(msg), err)
				}
				if !bytes.Equal(goSig, osSig) {
					t.Fatalf("message %d (%d bytes): signatures differ\n go     %x\n openssl %x", mi, len(msg), goSig, osSig)
				}
				// Each backend verifies the other's signature (and its own).
				for name, v := range verifiers {
					if err := v.VerifyDigest(&d, osSig); err != nil {
						t.Fatalf("message %d: %s rejects the openssl signature: %v", mi, name, err)
					}
					if err := v.VerifyDigest(&d, goSig); err != nil {
						t.Fatalf("message %d: %s rejects the go signature: %v", mi, name, err)
					}
				}
				bad := badSignatures(r, goSig, &d, msg, other)
				for name, v := range verifiers {
					for _, c := range bad {
						err := v.VerifyDigest(c.digest, c.sig)
						if !errors.Is(err, wxpay.ErrBadSignature) {
							t.Fatalf("message %d: %s accepts %s: err = %v", mi, name, c.name, err)
						}
					}
				}
			}
		})
	}
}

// prepared is a test key built by both backends.
type prepared struct {
	testKey
	goKey, osKey keyPair
}

type badCase struct {
	name   string
	digest *[sha256.Size]byte
	sig    []byte
}

// badSignatures derives signatures that must not verify from a good one.
func badSignatures(r *mrand.Rand, sig []byte, d *[sha256.Size]byte, msg []byte, other *prepared) []badCase {
	flipped := bytes.Clone(sig)
	bit := r.IntN(len(sig) * 8)
	flipped[bit/8] ^= 1 << (bit % 8)
	firstBit := bytes.Clone(sig)
	firstBit[len(sig)-1] ^= 1
	lastBit := bytes.Clone(sig)
	lastBit[0] ^= 0x80
	otherMsg := sha256.Sum256(append(bytes.Clone(msg), 'x'))
	ones := bytes.Repeat([]byte{0xff}, len(sig)) // >= the modulus
	cases := []badCase{
		{fmt.Sprintf("bit %d flipped", bit), d, flipped},
		{"lowest bit flipped", d, firstBit},
		{"highest bit flipped", d, lastBit},
		{"truncated by one byte", d, sig[:len(sig)-1]},
		{"truncated to half", d, sig[:len(sig)/2]},
		{"one byte too long (trailing zero)", d, append(bytes.Clone(sig), 0)},
		{"one byte too long (leading zero)", d, append([]byte{0}, sig...)},
		{"nil", d, nil},
		{"empty", d, []byte{}},
		{"all zero", d, make([]byte, len(sig))},
		{"all 0xff (not below the modulus)", d, ones},
		{"the digest of another message", &otherMsg, sig},
	}
	if other != nil {
		otherSig, err := other.osKey.priv.SignDigest(d)
		if err != nil {
			panic(err)
		}
		cases = append(cases, badCase{"a signature by another key (" + other.name + ")", d, otherSig})
	}
	return cases
}

func TestConcurrentSignVerify(t *testing.T) {
	ossl := mustOpenSSL(t)
	pool := freshKeys(t)[:3]
	type job struct {
		priv wxpay.PrivateKey
		pub  wxpay.PublicKey
		d    [sha256.Size]byte
		want []byte
	}
	var jobs []job
	for ki, k := range pool {
		priv, err := ossl.NewPrivateKey(k.k)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ossl.NewPublicKey(&k.k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		gk, err := wxpay.GoBackend.NewPrivateKey(k.k)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			d := sha256.Sum256(fmt.Appendf(nil, "key %d message %d", ki, i))
			want, err := gk.SignDigest(&d)
			if err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, job{priv, pub, d, want})
		}
	}

	workers := 4 * runtime.GOMAXPROCS(0)
	if workers < 8 {
		workers = 8
	}
	const iterations = 40
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			// The load path and Version are shared state too.
			if _, err := openssl.Select("auto", ""); err != nil {
				errs <- err
				return
			}
			if openssl.Version() == "" {
				errs <- errors.New("Version() is empty after a successful load")
				return
			}
			for i := range iterations {
				j := jobs[(w+i)%len(jobs)]
				sig, err := j.priv.SignDigest(&j.d)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(sig, j.want) {
					errs <- fmt.Errorf("worker %d: concurrent signature differs", w)
					return
				}
				if err := j.pub.VerifyDigest(&j.d, sig); err != nil {
					errs <- fmt.Errorf("worker %d: verify: %w", w, err)
					return
				}
				sig[i%len(sig)] ^= 0x10 // the caller owns the returned slice
				if err := j.priv.Public().VerifyDigest(&j.d, sig); !errors.Is(err, wxpay.ErrBadSignature) {
					errs <- fmt.Errorf("worker %d: tampered signature: err = %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSignatureIsNewlyAllocated(t *testing.T) {
	priv, err := mustOpenSSL(t).NewPrivateKey(k1Private(t))
	if err != nil {
		t.Fatal(err)
	}
	a, err := priv.SignDigest(digest(k1Message))
	if err != nil {
		t.Fatal(err)
	}
	clear(a)
	b, err := priv.SignDigest(digest(k1Message))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, k1Sig(t)) {
		t.Fatal("a later signature changed with the caller's copy of an earlier one")
	}
}

func TestNewPrivateKeyDoesNotModifyTheKey(t *testing.T) {
	k := k1Private(t)
	bare := &rsa.PrivateKey{PublicKey: k.PublicKey, D: k.D, Primes: k.Primes} // no Precomputed
	priv, err := mustOpenSSL(t).NewPrivateKey(bare)
	if err != nil {
		t.Fatal(err)
	}
	if bare.Precomputed.Dp != nil || bare.Precomputed.Dq != nil || bare.Precomputed.Qinv != nil {
		t.Fatal("NewPrivateKey wrote Precomputed into the caller's key")
	}
	sig, err := priv.SignDigest(digest(k1Message))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sig, k1Sig(t)) {
		t.Fatal("key without precomputed CRT values signs differently")
	}
}

func TestBadKeysAreRejected(t *testing.T) {
	b := mustOpenSSL(t)
	k := k1Private(t)
	withPub := func(f func(p *rsa.PublicKey)) *rsa.PublicKey {
		p := &rsa.PublicKey{N: new(big.Int).Set(k.N), E: k.E}
		f(p)
		return p
	}
	small, _ := new(big.Int).SetString("d94fe31a2cc5d8cd5e2cc0c37f0cbc9c3ba7a5fbd0af9c48b5f8c27c0e7a3a1f1c0e7d3bbf5b5d9ee77a0e0c33f0d4fba51e2b7f1a5e5b2d8c7d0a9b2a3c4d5e7", 16)
	publics := map[string]*rsa.PublicKey{
		"nil key":                 nil,
		"nil modulus":             {E: 65537},
		"zero modulus":            {N: new(big.Int), E: 65537},
		"even modulus":            withPub(func(p *rsa.PublicKey) { p.N.SetBit(p.N, 0, 0) }),
		"modulus under 1024 bits": {N: small, E: 65537},
		"modulus over 16384 bits": {N: new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 16384), big.NewInt(1)), E: 65537},
		"exponent 1":              withPub(func(p *rsa.PublicKey) { p.E = 1 }),
		"even exponent":           withPub(func(p *rsa.PublicKey) { p.E = 65536 }),
		"negative exponent":       withPub(func(p *rsa.PublicKey) { p.E = -3 }),
		"exponent over 2^31-1":    withPub(func(p *rsa.PublicKey) { p.E = 1 << 32 }),
	}
	for name, p := range publics {
		t.Run("public: "+name, func(t *testing.T) {
			if _, err := b.NewPublicKey(p); !errors.Is(err, wxpay.ErrBadKey) {
				t.Fatalf("NewPublicKey: err = %v, want ErrBadKey", err)
			}
		})
	}

	wrongD := *k
	wrongD.D = new(big.Int).Add(k.D, big.NewInt(2))
	wrongD.Precomputed = rsa.PrecomputedValues{}
	threePrimes := *k
	threePrimes.Primes = []*big.Int{k.Primes[0], k.Primes[1], big.NewInt(3)}
	privates := map[string]*rsa.PrivateKey{
		"nil key":        nil,
		"inconsistent D": &wrongD,
		"three primes":   &threePrimes,
		"one prime":      {PublicKey: k.PublicKey, D: k.D, Primes: k.Primes[:1]},
	}
	for name, p := range privates {
		t.Run("private: "+name, func(t *testing.T) {
			if _, err := b.NewPrivateKey(p); !errors.Is(err, wxpay.ErrBadKey) {
				t.Fatalf("NewPrivateKey: err = %v, want ErrBadKey", err)
			}
		})
	}
}

// freshProcessEnv names the scenario TestLoadingInFreshProcess runs in a
// child test process, where libcrypto has not been loaded yet.
const freshProcessEnv = "WXPAYD_OPENSSL_FRESH_PROCESS"

// TestLoadingInFreshProcess checks New's once-per-process loading rules in
// child processes, since a load cannot be undone.
func TestLoadingInFreshProcess(t *testing.T) {
	if os.Getenv(freshProcessEnv) != "" {
		t.Skip("child process")
	}
	for _, scenario := range []string{"missing-then-default", "not-libcrypto"} {
		t.Run(scenario, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestFreshProcessScenario$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), freshProcessEnv+"="+scenario)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "--- PASS: TestFreshProcessScenario") {
				t.Fatalf("child process: %v\n%s", err, out)
			}
		})
	}
}

// TestFreshProcessScenario runs only as TestLoadingInFreshProcess's child.
func TestFreshProcessScenario(t *testing.T) {
	scenario := os.Getenv(freshProcessEnv)
	const missing = "/nonexistent/libcrypto.so.3"
	switch scenario {
	case "":
		t.Skip("runs only as a child of TestLoadingInFreshProcess")

	case "missing-then-default":
		// A path that cannot be opened is reported and does not use up
		// the one load.
		if v := openssl.Version(); v != "" {
			t.Fatalf("Version() before loading = %q", v)
		}
		if _, err := openssl.New(missing); !errors.Is(err, openssl.ErrUnavailable) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("New(missing) err = %v, want ErrUnavailable naming the path", err)
		}
		if b, err := openssl.Select("auto", missing); err != nil || b != wxpay.GoBackend {
			t.Fatalf("Select(auto, missing) = %v, %v; want wxpay.GoBackend", b, err)
		}
		if _, err := openssl.Select("openssl", missing); !errors.Is(err, openssl.ErrUnavailable) {
			t.Fatalf("Select(openssl, missing) err = %v, want ErrUnavailable", err)
		}
		if v := openssl.Version(); v != "" {
			t.Fatalf("Version() after failed loads = %q", v)
		}
		if _, err := openssl.New(""); err != nil {
			t.Fatalf("New(\"\") after a missing path: %v", err)
		}
		if v := openssl.Version(); !strings.HasPrefix(v, "OpenSSL ") {
			t.Fatalf("Version() = %q", v)
		}
		// Loaded: the same default again is fine; another file is refused.
		if _, err := openssl.New(""); err != nil {
			t.Fatal(err)
		}
		if _, err := openssl.New("libcrypto.so.3"); err != nil {
			t.Fatalf("New(libcrypto.so.3) after loading it: %v", err)
		}
		if _, err := openssl.New(missing); err == nil || !strings.Contains(err.Error(), "already loaded") {
			t.Fatalf("New(another file) after loading: err = %v", err)
		}

	case "not-libcrypto":
		// A library that opens but is not libcrypto fails the one load for good.
		notCrypto := "libz.so.1"
		if exists, _ := fips.CheckVersion(notCrypto); !exists {
			notCrypto = "libc.so.6"
		}
		_, err := openssl.New(notCrypto)
		if !errors.Is(err, openssl.ErrUnavailable) {
			t.Fatalf("New(%s) err = %v, want ErrUnavailable", notCrypto, err)
		}
		if _, err2 := openssl.New(""); !errors.Is(err2, openssl.ErrUnavailable) {
			t.Fatalf("New(\"\") after a failed initialisation: err = %v, want the first error", err2)
		}
		if b, err := openssl.Select("auto", ""); err != nil || b != wxpay.GoBackend {
			t.Fatalf("Select(auto) = %v, %v; want wxpay.GoBackend", b, err)
		}
		if v := openssl.Version(); v != "" {
			t.Fatalf("Version() = %q, want empty", v)
		}

	default:
		t.Fatalf("unknown scenario %q", scenario)
	}
}
