package client

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
)

// Certificate refresh timing.
const (
	// DefaultRefreshInterval is how often CertRefresher.Run downloads the
	// platform certificates. WeChat advises polling more often than every
	// 12 hours (a new certificate is listed 24 hours before it signs);
	// 11 hours keeps two chances inside that day.
	DefaultRefreshInterval = 11 * time.Hour
	// MaxRefreshInterval is the exclusive upper bound of the interval.
	MaxRefreshInterval = 12 * time.Hour
	// MinRefreshInterval is the least time between two downloads started by
	// RefreshNow, and the least interval Run accepts.
	MinRefreshInterval = time.Minute
)

// certificateAAD is the associated_data of every encrypted certificate.
const certificateAAD = "certificate"

// Certificates downloads WeChat's platform certificates: GET
// /v3/certificates. The answer is verified with the client's key set (an
// unknown serial is an error here; it never triggers a refresh). Each entry
// is decrypted with aead (AEAD_AES_256_GCM, associated data "certificate"),
// parsed, and its serial must equal serial_no. It does not change any key
// set; CertRefresher does.
func (c *Client) Certificates(ctx context.Context, aead *wxpay.AEAD) ([]*x509.Certificate, error) {
	return c.certificates(ctx, aead, false)
}

func (c *Client) certificates(ctx context.Context, aead *wxpay.AEAD, bootstrap bool) ([]*x509.Certificate, error) {
	const op = "certificates"
	if aead == nil {
		return nil, fmt.Errorf("wxpay client: %s: %w: nil AEAD", op, ErrInvalidRequest)
	}
	var out []*x509.Certificate
	cl := &call{op: op, method: fasthttp.MethodGet, path: pathCertificates, bootstrap: bootstrap}
	cl.decode = func(_ int, h *wxpay.Headers, b []byte) error {
		certs, err := decodeCertificates(aead, b)
		if err != nil {
			return err
		}
		if cl.unverified {
			// Bootstrap: nothing to verify with yet. The certificates are
			// authenticated by the APIv3 key (AEAD); the answer must at
			// least be signed by one of them.
			if err := c.verifyWith(certs, h, b); err != nil {
				return fmt.Errorf("%w: bootstrap: %w", ErrUnsignedResponse, err)
			}
		}
		out = certs
		return nil
	}
	if err := c.do(ctx, cl); err != nil {
		return nil, err
	}
	return out, nil
}

// verifyWith verifies an answer with a key set made of certs only.
func (c *Client) verifyWith(certs []*x509.Certificate, h *wxpay.Headers, body []byte) error {
	ks := wxpay.NewKeySet(nil)
	for _, crt := range certs {
		if err := ks.AddCertificate(crt); err != nil {
			return err
		}
	}
	return wxpay.NewVerifier(ks, wxpay.WithClock(c.t.now)).Verify(h, body)
}

func decodeCertificates(aead *wxpay.AEAD, body []byte) ([]*x509.Certificate, error) {
	var doc wxpay.CertificatesResponse
	if json.Unmarshal(body, &doc) != nil {
		return nil, fmt.Errorf("%w: %w: certificates answer", ErrBadResponse, wxpay.ErrMalformed)
	}
	switch {
	case len(doc.Data) == 0:
		return nil, fmt.Errorf("%w: %w: data is empty", ErrBadResponse, wxpay.ErrMissingField)
	case len(doc.Data) > wxpay.MaxKeys:
		return nil, fmt.Errorf("%w: %d certificates, more than %d", ErrBadResponse, len(doc.Data), wxpay.MaxKeys)
	}
	out := make([]*x509.Certificate, 0, len(doc.Data))
	for i := range doc.Data {
		e := &doc.Data[i]
		if e.SerialNo == "" {
			return nil, fmt.Errorf("%w: %w: data[%d].serial_no", ErrBadResponse, wxpay.ErrMissingField, i)
		}
		if e.EncryptCertificate.AssociatedData != certificateAAD {
			return nil, fmt.Errorf("%w: certificate %.64s: associated_data is not %q", ErrBadResponse, e.SerialNo, certificateAAD)
		}
		pem, err := e.EncryptCertificate.Decrypt(aead, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %.64s: %w", ErrBadResponse, e.SerialNo, err)
		}
		crt, err := wxpay.ParseCertificatePEM(pem)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %.64s: %w", ErrBadResponse, e.SerialNo, err)
		}
		if got := wxpay.CertificateSerial(crt); !sameSerial(got, e.SerialNo) {
			return nil, fmt.Errorf("%w: certificate serial %.64s differs from serial_no %.64s", ErrBadResponse, got, e.SerialNo)
		}
		out = append(out, crt)
	}
	return out, nil
}

// sameSerial compares hexadecimal serials ignoring case and leading zeros.
func sameSerial(a, b string) bool {
	return strings.EqualFold(strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0"))
}

// CertRefresher keeps the platform certificates of a client's key set
// fresh from /v3/certificates: Run downloads at start and then every
// interval, adding the certificates and pruning expired ones; RefreshNow
// downloads on demand, at most once per MinRefreshInterval, and concurrent
// callers share one download. NewCertRefresher attaches it to its Client,
// which then answers a response signed by an unknown serial (certificate
// rotation) with RefreshNow and verifies once more.
//
// Every download is verified with the current key set. An empty key set
// cannot verify anything: the first download is then accepted only when
// AllowBootstrap is set. A CertRefresher is safe for concurrent use.
type CertRefresher struct {
	// AllowBootstrap accepts a download into an empty key set although no
	// trusted key can verify it (wechatpay-go's behaviour). The downloaded
	// certificates are still authenticated by the APIv3 key (AEAD) and the
	// answer must be signed by one of them, but trust then rests on TLS and
	// on the APIv3 key alone: whoever holds the APIv3 key and can answer in
	// WeChat's place (a TLS interception, a mistaken BaseURL) can plant
	// their own certificate, and every later answer and notification signed
	// with it is accepted. Prefer loading a known certificate or WeChat Pay
	// public key into the key set. Set before the first Run or RefreshNow.
	AllowBootstrap bool

	c        *Client
	keys     *wxpay.KeySet
	aead     *wxpay.AEAD
	interval time.Duration

	mu       sync.Mutex
	inflight *refreshCall // the download in progress, shared by callers
	last     time.Time    // when the last download started (client clock)
}

type refreshCall struct {
	done chan struct{}
	err  error
}

// NewCertRefresher returns a refresher for keys, which must be the key set
// of c's verifier (nil means that one), decrypting with aead. interval is
// Run's period: 0 means DefaultRefreshInterval (11 h); otherwise at least
// MinRefreshInterval and less than MaxRefreshInterval (12 h). The refresher
// is attached to c; a client takes one refresher only.
func NewCertRefresher(c *Client, keys *wxpay.KeySet, aead *wxpay.AEAD, interval time.Duration) (*CertRefresher, error) {
	switch {
	case c == nil:
		return nil, fmt.Errorf("wxpay client: %w: nil client", ErrInvalidConfig)
	case aead == nil:
		return nil, fmt.Errorf("wxpay client: %w: nil AEAD", ErrInvalidConfig)
	case keys != nil && keys != c.verifier.Keys():
		return nil, fmt.Errorf("wxpay client: %w: keys must be the client verifier's key set", ErrInvalidConfig)
	case interval == 0:
		interval = DefaultRefreshInterval
	case interval < MinRefreshInterval || interval >= MaxRefreshInterval:
		return nil, fmt.Errorf("wxpay client: %w: refresh interval %v must be in [%v, %v)", ErrInvalidConfig, interval, MinRefreshInterval, MaxRefreshInterval)
	}
	r := &CertRefresher{c: c, keys: c.verifier.Keys(), aead: aead, interval: interval}
	if !c.refresher.CompareAndSwap(nil, r) {
		return nil, fmt.Errorf("wxpay client: %w: the client already has a certificate refresher", ErrInvalidConfig)
	}
	return r, nil
}

// Run refreshes at once, then every interval, until ctx ends; then it
// returns nil. A failed refresh is retried after MinRefreshInterval,
// doubling up to the interval; failures are visible to the client's
// Observer (op "certificates"). If the first refresh fails while the key
// set is still empty, Run returns that error: nothing could be verified.
// Run uses real timers; the client's clock only drives the rate limit.
func (r *CertRefresher) Run(ctx context.Context) error {
	err := r.RefreshNow(ctx)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil && !errors.Is(err, ErrRefreshLimited) && r.keys.Len() == 0 {
		return err
	}
	backoff := MinRefreshInterval
	for {
		wait := r.interval
		if err != nil && !errors.Is(err, ErrRefreshLimited) {
			wait = backoff
			backoff = min(2*backoff, r.interval)
		} else {
			backoff = MinRefreshInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		r.keys.Prune(r.c.t.now())
		err = r.RefreshNow(ctx)
	}
}

// RefreshNow downloads the certificates once, adds the unexpired ones to
// the key set and prunes expired ones. If a download is in progress it
// waits for that one; if one started less than MinRefreshInterval ago it
// returns an error wrapping ErrRefreshLimited without downloading. The
// download runs on its own, bounded by the client's Timeout, so a caller
// whose ctx ends returns at once without cancelling it for the others.
func (r *CertRefresher) RefreshNow(ctx context.Context) error {
	if ctx.Err() != nil {
		return fmt.Errorf("wxpay client: certificates: %w", ctxError(ctx))
	}
	r.mu.Lock()
	f := r.inflight
	if f == nil {
		now := r.c.t.now()
		if since := now.Sub(r.last); !r.last.IsZero() && since >= 0 && since < MinRefreshInterval {
			r.mu.Unlock()
			return fmt.Errorf("wxpay client: certificates: %w: last download %v ago", ErrRefreshLimited, since.Round(time.Second))
		}
		f = &refreshCall{done: make(chan struct{})}
		dctx := context.WithoutCancel(ctx)
		ok := r.c.t.spawn(func() {
			err := r.download(dctx)
			r.mu.Lock()
			f.err = err
			r.inflight = nil
			r.mu.Unlock()
			close(f.done)
		})
		if !ok {
			r.mu.Unlock()
			return fmt.Errorf("wxpay client: certificates: %w", ErrClosed)
		}
		r.inflight = f
		r.last = now
	}
	r.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("wxpay client: certificates: %w", ctxError(ctx))
	}
}

// download fetches, verifies and installs the certificates.
func (r *CertRefresher) download(ctx context.Context) error {
	bootstrap := r.AllowBootstrap && r.keys.Len() == 0
	certs, err := r.c.certificates(ctx, r.aead, bootstrap)
	if err != nil {
		if !bootstrap && r.keys.Len() == 0 && errors.Is(err, wxpay.ErrUnknownSerial) {
			return fmt.Errorf("%w (the key set is empty: load a trusted key or set AllowBootstrap)", err)
		}
		return err
	}
	// Install exactly what WeChat lists now: a certificate it stopped
	// listing (withdrawn) no longer verifies anything.
	added, err := r.keys.ReplaceCertificates(certs, r.c.t.now())
	if err != nil {
		return fmt.Errorf("wxpay client: certificates: %w", err)
	}
	if added == 0 {
		return fmt.Errorf("wxpay client: certificates: %w: every certificate has expired", ErrBadResponse)
	}
	return nil
}
