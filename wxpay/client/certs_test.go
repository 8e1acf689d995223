package client

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

func TestCertificates(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := newTestClient(t, f, Config{}, nil)

	t.Run("certificates are downloaded, decrypted and parsed", func(t *testing.T) {
		certs, err := c.Certificates(context.Background(), f.keys.aead)
		if err != nil {
			t.Fatal(err)
		}
		if len(certs) != 2 || wxpay.CertificateSerial(certs[0]) != f.keys.a.serial || wxpay.CertificateSerial(certs[1]) != f.keys.b.serial {
			t.Fatalf("got %d certificates", len(certs))
		}
		if r := f.lastRequest(t); r.uri != pathCertificates || r.authErr != nil {
			t.Fatalf("%s %v", r.uri, r.authErr)
		}
	})

	otherAEAD, err := wxpay.NewAEAD([]byte("another APIv3 key of 32 bytes..."))
	if err != nil {
		t.Fatal(err)
	}
	entry := func(mutate func(e map[string]any)) []byte {
		var doc map[string]any
		_ = json.Unmarshal(f.certificatesJSON(f.keys.a), &doc)
		e := doc["data"].([]any)[0].(map[string]any)
		mutate(e)
		b, _ := json.Marshal(doc)
		return b
	}
	for _, tc := range []struct {
		name string
		body []byte
		aead *wxpay.AEAD
		want []error
		key  *wxKey // signs the answer (default: the fake's key)
	}{
		{"a certificate whose serial differs from serial_no is refused",
			entry(func(e map[string]any) { e["serial_no"] = f.keys.b.serial }), nil, []error{ErrBadResponse}, nil},
		{"a certificate under other associated data is refused",
			entry(func(e map[string]any) { e["encrypt_certificate"].(map[string]any)["associated_data"] = "transaction" }), nil, []error{ErrBadResponse}, nil},
		{"another algorithm is refused",
			entry(func(e map[string]any) { e["encrypt_certificate"].(map[string]any)["algorithm"] = "AEAD_SM4_GCM" }), nil, []error{ErrBadResponse, wxpay.ErrUnsupportedAlgorithm}, nil},
		{"a certificate that does not decrypt is refused",
			f.certificatesJSON(f.keys.a), otherAEAD, []error{ErrBadResponse, wxpay.ErrDecrypt}, nil},
		{"an empty list is refused", []byte(`{"data":[]}`), nil, []error{ErrBadResponse, wxpay.ErrMissingField}, nil},
		{"more certificates than a key set holds are refused",
			f.certificatesJSON(repeatKey(f.keys.a, wxpay.MaxKeys+1)...), nil, []error{ErrBadResponse}, nil},
		{"an answer that is not JSON is refused", []byte(`[1,2`), nil, []error{ErrBadResponse, wxpay.ErrMalformed}, nil},
		{"a list signed by a key the set lacks is refused, even if it lists that key",
			f.certificatesJSON(f.keys.a, f.keys.b), nil, []error{ErrUnsignedResponse, wxpay.ErrUnknownSerial}, f.keys.b},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := answerOpts{key: tc.key}
			f.setRoute("GET", pathCertificates, func(*recorded) (int, []byte, answerOpts) { return 200, tc.body, o })
			aead := tc.aead
			if aead == nil {
				aead = f.keys.aead
			}
			certs, err := c.Certificates(context.Background(), aead)
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("err = %v, want it to wrap %v", err, w)
				}
			}
			if certs != nil {
				t.Error("certificates returned with an error")
			}
			f.assertNoSecrets(t, err)
		})
	}
}

func repeatKey(k *wxKey, n int) []*wxKey {
	out := make([]*wxKey, n)
	for i := range out {
		out[i] = k
	}
	return out
}

func TestCertificateRotation(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	clock := &testClock{}
	keys := keySetWith(t, f.keys.a)
	c := newTestClient(t, f, Config{}, keys, WithClock(clock.now))
	if _, err := NewCertRefresher(c, nil, f.keys.aead, 0); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// WeChat starts signing with certificate b, which the key set lacks;
	// /v3/certificates (still signed by a) lists a and b.
	f.setSignKey(f.keys.b)
	got, err := c.Prepay(ctx, prepayRequest())
	if err != nil {
		t.Fatalf("an answer signed by a new certificate: %v", err)
	}
	if got.PrepayID == "" || f.certDownloads.Load() != 1 {
		t.Fatalf("prepay %+v after %d downloads", got, f.certDownloads.Load())
	}
	if _, ok := keys.Lookup(f.keys.b.serial); !ok {
		t.Fatal("certificate b was not added")
	}

	// Within a minute another unknown serial does not download again.
	f.setCertList(f.keys.a, f.keys.b, f.keys.c)
	f.setSignKey(f.keys.c)
	_, err = c.Prepay(ctx, prepayRequest())
	if !errors.Is(err, wxpay.ErrUnknownSerial) || !errors.Is(err, ErrRefreshLimited) || !errors.Is(err, ErrUnsignedResponse) {
		t.Fatalf("err = %v, want ErrUnknownSerial and ErrRefreshLimited", err)
	}
	if n := f.certDownloads.Load(); n != 1 {
		t.Fatalf("%d downloads within a minute", n)
	}

	// A minute later the refresh is allowed again.
	clock.advance(MinRefreshInterval + time.Second)
	if _, err := c.Prepay(ctx, prepayRequest()); err != nil {
		t.Fatalf("after the rate limit: %v", err)
	}
	if n := f.certDownloads.Load(); n != 2 {
		t.Fatalf("%d downloads, want 2", n)
	}
}

func TestCertRefresher(t *testing.T) {
	t.Parallel()

	t.Run("constructor arguments are checked", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		c := newTestClient(t, f, Config{}, nil)
		for name, fn := range map[string]func() error{
			"a nil AEAD":              func() error { _, err := NewCertRefresher(c, nil, nil, 0); return err },
			"another key set":         func() error { _, err := NewCertRefresher(c, wxpay.NewKeySet(nil), f.keys.aead, 0); return err },
			"an interval of 12 hours": func() error { _, err := NewCertRefresher(c, nil, f.keys.aead, 12*time.Hour); return err },
			"an interval of 1 second": func() error { _, err := NewCertRefresher(c, nil, f.keys.aead, time.Second); return err },
			"a negative interval":     func() error { _, err := NewCertRefresher(c, nil, f.keys.aead, -time.Hour); return err },
			"a nil client":            func() error { _, err := NewCertRefresher(nil, nil, f.keys.aead, 0); return err },
		} {
			if err := fn(); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%s: err = %v", name, err)
			}
		}
		r, err := NewCertRefresher(c, nil, f.keys.aead, 0)
		if err != nil || r.interval != DefaultRefreshInterval {
			t.Fatalf("default: %v", err)
		}
		if _, err := NewCertRefresher(c, nil, f.keys.aead, 0); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("a second refresher on one client: %v", err)
		}
	})

	t.Run("an empty key set is not bootstrapped without consent", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		keys := wxpay.NewKeySet(nil)
		c := newTestClient(t, f, Config{}, keys)
		r, err := NewCertRefresher(c, keys, f.keys.aead, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = r.Run(context.Background())
		if !errors.Is(err, wxpay.ErrUnknownSerial) || !strings.Contains(err.Error(), "AllowBootstrap") {
			t.Fatalf("Run = %v", err)
		}
		if keys.Len() != 0 {
			t.Fatal("keys were added")
		}
	})

	t.Run("a bootstrap download fills the key set and skips expired certificates", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.setCertList(f.keys.a, f.keys.b, f.keys.expired)
		keys := wxpay.NewKeySet(nil)
		c := newTestClient(t, f, Config{}, keys)
		r, err := NewCertRefresher(c, keys, f.keys.aead, 0)
		if err != nil {
			t.Fatal(err)
		}
		r.AllowBootstrap = true
		if err := r.RefreshNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		if keys.Len() != 2 {
			t.Fatalf("%d keys", keys.Len())
		}
		if _, ok := keys.Lookup(f.keys.expired.serial); ok {
			t.Fatal("an expired certificate was added")
		}
	})

	t.Run("a bootstrap answer signed by an unlisted key is refused", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.setCertList(f.keys.b) // the answer is signed by a
		keys := wxpay.NewKeySet(nil)
		c := newTestClient(t, f, Config{}, keys)
		r, err := NewCertRefresher(c, keys, f.keys.aead, 0)
		if err != nil {
			t.Fatal(err)
		}
		r.AllowBootstrap = true
		if err := r.RefreshNow(context.Background()); !errors.Is(err, ErrUnsignedResponse) || !errors.Is(err, wxpay.ErrUnknownSerial) {
			t.Fatalf("err = %v", err)
		}
		if keys.Len() != 0 {
			t.Fatal("keys were added")
		}
	})

	t.Run("concurrent callers share one download", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		gate := make(chan struct{})
		f.setRoute("GET", pathCertificates, func(*recorded) (int, []byte, answerOpts) {
			f.certDownloads.Add(1)
			<-gate
			return 200, f.certificatesJSON(f.keys.a, f.keys.b), answerOpts{}
		})
		keys := keySetWith(t, f.keys.a)
		c := newTestClient(t, f, Config{}, keys)
		r, err := NewCertRefresher(c, keys, f.keys.aead, 0)
		if err != nil {
			t.Fatal(err)
		}
		const callers = 8
		errs := make(chan error, callers)
		var started sync.WaitGroup
		started.Add(callers)
		for range callers {
			go func() {
				started.Done()
				errs <- r.RefreshNow(context.Background())
			}()
		}
		started.Wait()
		eventually(t, "the download to start", func() bool { return f.certDownloads.Load() == 1 })
		time.Sleep(20 * time.Millisecond) // let the other callers join the download in flight
		close(gate)
		ok := 0
		for range callers {
			err := <-errs
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrRefreshLimited): // arrived after the download ended
			default:
				t.Errorf("RefreshNow: %v", err)
			}
		}
		if n := f.certDownloads.Load(); n != 1 || ok == 0 {
			t.Fatalf("%d downloads, %d successes", n, ok)
		}
		if keys.Len() != 2 {
			t.Fatalf("%d keys", keys.Len())
		}
	})

	t.Run("a caller whose context ends leaves the shared download running", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		gate := make(chan struct{})
		f.setRoute("GET", pathCertificates, func(*recorded) (int, []byte, answerOpts) {
			<-gate
			return 200, f.certificatesJSON(f.keys.a, f.keys.b), answerOpts{}
		})
		keys := keySetWith(t, f.keys.a)
		c := newTestClient(t, f, Config{}, keys)
		r, err := NewCertRefresher(c, keys, f.keys.aead, 0)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := r.RefreshNow(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		close(gate)
		eventually(t, "the download to finish", func() bool { return keys.Len() == 2 })
	})

	t.Run("Run refreshes at start and every interval, pruning expired certificates", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		clock := &testClock{}
		keys := keySetWith(t, f.keys.a, f.keys.expired)
		c := newTestClient(t, f, Config{}, keys, WithClock(clock.now))
		r, err := NewCertRefresher(c, keys, f.keys.aead, 0)
		if err != nil {
			t.Fatal(err)
		}
		r.interval = 10 * time.Millisecond // below the public minimum, for the test only
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		eventually(t, "the first refresh", func() bool {
			_, ok := keys.Lookup(f.keys.b.serial)
			return ok && keys.Len() == 2
		})
		if _, ok := keys.Lookup(f.keys.expired.serial); ok {
			t.Fatal("the expired certificate was not pruned")
		}
		f.setCertList(f.keys.a, f.keys.b, f.keys.c)
		clock.advance(MinRefreshInterval + time.Second)
		eventually(t, "the periodic refresh", func() bool { return keys.Len() == 3 })
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
	})
}
