package client

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/wxpayd/wxpayd/sink/itest"
	"github.com/wxpayd/wxpayd/wxpay"
)

// Test identities. The merchant key is the known-answer key of package
// wxpay; WeChat's keys are generated once per test binary.
const (
	testMchID          = "1230000109"
	testMerchantSerial = "3775B6A45ACD588826D15E583A95F5DD7F5A0C06"
	testAppID          = "wxd678efh567hg6787"
	testAPIv3Key       = "0123456789abcdefghijABCDEFGHIJ01"
	testBaseURL        = "http://wechat.test"
)

// wxKey is one WeChat signing key with its platform certificate.
type wxKey struct {
	priv   wxpay.PrivateKey
	rsa    *rsa.PrivateKey // decrypts the sensitive fields of requests
	cert   *x509.Certificate
	pem    []byte
	serial string
}

type testKeySet struct {
	merchant *rsa.PrivateKey
	signer   *wxpay.Signer
	// a, b and c are valid platform certificates; expired wraps a's key
	// in a certificate that expired a year ago.
	a, b, c, expired *wxKey
	aead             *wxpay.AEAD
}

var (
	keysOnce sync.Once
	keysVal  *testKeySet
	keysErr  error
)

func testKeys(t testing.TB) *testKeySet {
	t.Helper()
	keysOnce.Do(func() { keysVal, keysErr = makeTestKeys() })
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysVal
}

func makeTestKeys() (*testKeySet, error) {
	pemBytes, err := os.ReadFile("../testdata/kat/merchant_key.pem")
	if err != nil {
		return nil, err
	}
	mk, err := wxpay.ParsePrivateKeyPEM(pemBytes)
	if err != nil {
		return nil, err
	}
	pk, err := wxpay.GoBackend.NewPrivateKey(mk)
	if err != nil {
		return nil, err
	}
	signer, err := wxpay.NewSigner(testMchID, testMerchantSerial, pk)
	if err != nil {
		return nil, err
	}
	ks := &testKeySet{merchant: mk, signer: signer}
	now := time.Now()
	mk3 := func(serial string, rk *rsa.PrivateKey, notBefore, notAfter time.Time) (*wxKey, error) {
		if rk == nil {
			if rk, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				return nil, err
			}
		}
		n, _ := new(big.Int).SetString(serial, 16)
		tmpl := &x509.Certificate{
			SerialNumber: n,
			Subject:      pkix.Name{CommonName: "Tenpay.com Root CA test " + serial, Organization: []string{"Tenpay.com"}},
			NotBefore:    notBefore,
			NotAfter:     notAfter,
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rk.PublicKey, rk)
		if err != nil {
			return nil, err
		}
		crt, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		priv, err := wxpay.GoBackend.NewPrivateKey(rk)
		if err != nil {
			return nil, err
		}
		return &wxKey{priv: priv, rsa: rk, cert: crt, serial: wxpay.CertificateSerial(crt),
			pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
	}
	year := 365 * 24 * time.Hour
	if ks.a, err = mk3("5157F09EFDC096DE15EBE81A47057A7232F1B8E1", nil, now.Add(-year), now.Add(4*year)); err != nil {
		return nil, err
	}
	if ks.b, err = mk3("6B2F1C2A9E5D4F3B7C8A1E0D2C3B4A5968778695", nil, now.Add(-time.Hour), now.Add(5*year)); err != nil {
		return nil, err
	}
	if ks.c, err = mk3("7C3A2D1B0F9E8D7C6B5A493827160504F3E2D1C0", nil, now.Add(-time.Minute), now.Add(5*year)); err != nil {
		return nil, err
	}
	if ks.expired, err = mk3("1E2D3C4B5A69788796A5B4C3D2E1F00112233445", nil, now.Add(-6*year), now.Add(-year)); err != nil {
		return nil, err
	}
	if ks.aead, err = wxpay.NewAEAD([]byte(testAPIv3Key)); err != nil {
		return nil, err
	}
	return ks, nil
}

// keySetWith returns a key set holding the given platform certificates.
func keySetWith(t testing.TB, keys ...*wxKey) *wxpay.KeySet {
	t.Helper()
	ks := wxpay.NewKeySet(nil)
	for _, k := range keys {
		if err := ks.AddCertificate(k.cert); err != nil {
			t.Fatal(err)
		}
	}
	return ks
}

// answerOpts says how the fake signs one answer.
type answerOpts struct {
	key       *wxKey        // signing key (default: the server's)
	unsigned  bool          // omit every Wechatpay-* header
	tamper    bool          // change the body after signing
	tsOffset  time.Duration // added to the signing timestamp
	signature string        // replaces the signature
	sigType   string        // Wechatpay-Signature-Type (default WECHATPAY2-SHA256-RSA2048)
}

// route answers one request: status, body and signing options.
type route func(r *recorded) (status int, body []byte, o answerOpts)

// recorded is a request as the fake received it.
type recorded struct {
	method  string
	uri     string // raw request URI, as signed
	path    string // decoded path
	query   map[string]string
	header  map[string]string
	body    []byte
	authErr error
}

// fakeWeChat is a small WeChat Pay API on fasthttp over an in-memory
// listener: it checks the client's Authorization with the merchant public
// key and signs its answers as WeChat does.
type fakeWeChat struct {
	t    testing.TB
	keys *testKeySet
	ln   *fasthttputil.InmemoryListener
	srv  *fasthttp.Server

	mu        sync.Mutex
	signKey   *wxKey            // signs answers unless a route says otherwise
	certsKey  *wxKey            // signs /v3/certificates answers
	certList  []*wxKey          // listed by /v3/certificates
	routes    map[string]route  // "METHOD path" overrides
	requests  []*recorded       // everything received
	fixedSigs map[string]string // benchmark: body -> signature with fixed ts/nonce

	certDownloads atomic.Int32
	hits          atomic.Int32
	release       chan struct{} // blocked handlers wait on it
	releaseOnce   sync.Once
	fixedTS       string
	fixedNonce    string
	fixed         bool
}

func newFake(t testing.TB) *fakeWeChat {
	t.Helper()
	k := testKeys(t)
	f := &fakeWeChat{
		t: t, keys: k, ln: fasthttputil.NewInmemoryListener(),
		signKey: k.a, certsKey: k.a, certList: []*wxKey{k.a, k.b},
		routes: map[string]route{}, release: make(chan struct{}),
		fixedSigs: map[string]string{},
	}
	f.srv = &fasthttp.Server{Handler: f.handle, ReadTimeout: 10 * time.Second, Logger: quietLogger{}}
	go func() { _ = f.srv.Serve(f.ln) }()
	t.Cleanup(func() {
		f.releaseAll()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.srv.ShutdownWithContext(ctx)
		_ = f.ln.Close()
	})
	return f
}

// quietLogger drops fasthttp's server log (closed in-memory connections).
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func (f *fakeWeChat) dial(string) (net.Conn, error) { return f.ln.Dial() }

// releaseAll unblocks every handler waiting in block.
func (f *fakeWeChat) releaseAll() { f.releaseOnce.Do(func() { close(f.release) }) }

// block waits until the test releases blocked handlers.
func (f *fakeWeChat) block() { <-f.release }

func (f *fakeWeChat) setRoute(method, path string, r route) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[method+" "+path] = r
}

func (f *fakeWeChat) setSignKey(k *wxKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signKey = k
}

func (f *fakeWeChat) setCertList(keys ...*wxKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.certList = keys
}

func (f *fakeWeChat) recordedRequests() []*recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*recorded(nil), f.requests...)
}

func (f *fakeWeChat) lastRequest(t testing.TB) *recorded {
	t.Helper()
	rs := f.recordedRequests()
	if len(rs) == 0 {
		t.Fatal("the fake server received no request")
	}
	return rs[len(rs)-1]
}

func (f *fakeWeChat) handle(ctx *fasthttp.RequestCtx) {
	f.hits.Add(1)
	r := &recorded{
		method: string(ctx.Method()),
		uri:    string(ctx.RequestURI()),
		path:   string(ctx.URI().Path()),
		query:  map[string]string{},
		header: map[string]string{},
		body:   append([]byte(nil), ctx.PostBody()...),
	}
	ctx.QueryArgs().VisitAll(func(k, v []byte) { r.query[string(k)] = string(v) })
	ctx.Request.Header.VisitAll(func(k, v []byte) { r.header[string(k)] = string(v) })
	f.mu.Lock()
	f.requests = append(f.requests, r)
	rt := f.routes[r.method+" "+r.path]
	f.mu.Unlock()

	if strings.HasPrefix(r.path, "/sns/") { // the login API is not signed
		if rt == nil {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			return
		}
		status, body, _ := rt(r)
		ctx.SetStatusCode(status)
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
		return
	}

	r.authErr = checkAuthorization(r.header["Authorization"], r.method, r.uri, r.body, &f.keys.merchant.PublicKey, time.Now())
	var (
		status int
		body   []byte
		o      answerOpts
	)
	switch {
	case r.authErr != nil:
		status, body = 401, []byte(`{"code":"SIGN_ERROR","message":"签名错误"}`)
	case rt != nil:
		status, body, o = rt(r)
	default:
		status, body, o = f.defaultRoute(r)
	}
	f.answer(ctx, status, body, o, r.path == pathCertificates)
}

// answer writes a signed answer.
func (f *fakeWeChat) answer(ctx *fasthttp.RequestCtx, status int, body []byte, o answerOpts, certs bool) {
	f.mu.Lock()
	key := f.signKey
	if certs {
		key = f.certsKey
	}
	f.mu.Unlock()
	if o.key != nil {
		key = o.key
	}
	ctx.SetStatusCode(status)
	ctx.Response.Header.Set("Request-ID", "08F78BB5AF0610D302A8DBB30F0000")
	if len(body) > 0 {
		ctx.SetContentType("application/json; charset=utf-8")
	}
	if !o.unsigned {
		ts := strconv.FormatInt(time.Now().Add(o.tsOffset).Unix(), 10)
		nonce := wxpay.NewNonce()
		sig := o.signature
		if sig == "" {
			sig = f.sign(key, &ts, &nonce, body)
		}
		sigType := o.sigType
		if sigType == "" {
			sigType = wxpay.SignatureType
		}
		h := &ctx.Response.Header
		h.Set(wxpay.HeaderTimestamp, ts)
		h.Set(wxpay.HeaderNonce, nonce)
		h.Set(wxpay.HeaderSignature, sig)
		h.Set(wxpay.HeaderSerial, key.serial)
		h.Set(wxpay.HeaderSignatureType, sigType)
	}
	if o.tamper {
		if bytes.Contains(body, []byte(`"`)) {
			body = bytes.Replace(body, []byte(`"`), []byte(`'`), 1)
		} else {
			body = append(body, ' ')
		}
	}
	ctx.SetBody(body)
}

// sign signs an answer; in fixed mode (benchmarks) each body is signed once
// with one timestamp and nonce, so the fake's RSA cost stays out of the
// client's numbers.
func (f *fakeWeChat) sign(key *wxKey, ts, nonce *string, body []byte) string {
	if f.fixed {
		*ts, *nonce = f.fixedTS, f.fixedNonce
		f.mu.Lock()
		defer f.mu.Unlock()
		if sig, ok := f.fixedSigs[key.serial+string(body)]; ok {
			return sig
		}
	}
	sig, err := wxpay.SignResponse(key.priv, *ts, *nonce, body)
	if err != nil {
		f.t.Error(err)
	}
	if f.fixed {
		f.fixedSigs[key.serial+string(body)] = sig
	}
	return sig
}

func (f *fakeWeChat) useFixedSignatures() {
	f.fixed = true
	f.fixedTS = strconv.FormatInt(time.Now().Unix(), 10)
	f.fixedNonce = wxpay.NewNonce()
}

// defaultRoute answers like WeChat Pay for the happy paths.
func (f *fakeWeChat) defaultRoute(r *recorded) (int, []byte, answerOpts) {
	switch {
	case r.method == "POST" && r.path == pathPrepay:
		var req wxpay.PrepayRequest
		if err := json.Unmarshal(r.body, &req); err != nil || req.MchID != testMchID {
			return 400, []byte(`{"code":"PARAM_ERROR","message":"bad body"}`), answerOpts{}
		}
		return 200, []byte(`{"prepay_id":"wx201410272009395522657a690389285100"}`), answerOpts{}

	case r.method == "POST" && strings.HasPrefix(r.path, pathOutTradeNo) && strings.HasSuffix(r.path, "/close"):
		if string(r.body) != `{"mchid":"`+testMchID+`"}` {
			return 400, []byte(`{"code":"PARAM_ERROR","message":"bad body"}`), answerOpts{}
		}
		return 204, nil, answerOpts{}

	case r.method == "GET" && strings.HasPrefix(r.path, pathOutTradeNo):
		no := strings.TrimPrefix(r.path, pathOutTradeNo)
		tx := wxpay.Transaction{
			AppID: testAppID, MchID: r.query["mchid"], OutTradeNo: no, TransactionID: "1217752501201407033233368018",
			TradeType: "JSAPI", TradeState: wxpay.TradeStateSuccess, TradeStateDesc: "支付成功", BankType: "CMC",
			SuccessTime: "2018-06-08T10:34:56+08:00", Payer: wxpay.Payer{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
			Amount: wxpay.TransactionAmount{Total: 100, PayerTotal: 100, Currency: "CNY", PayerCurrency: "CNY"},
		}
		b, _ := json.Marshal(tx)
		return 200, b, answerOpts{}

	case r.method == "POST" && r.path == pathRefunds:
		var req wxpay.RefundRequest
		if err := json.Unmarshal(r.body, &req); err != nil || req.Amount.Currency != "CNY" {
			return 400, []byte(`{"code":"PARAM_ERROR","message":"bad body"}`), answerOpts{}
		}
		return 200, refundJSON(req.OutRefundNo, "PROCESSING"), answerOpts{}

	case r.method == "GET" && strings.HasPrefix(r.path, pathRefunds+"/"):
		return 200, refundJSON(strings.TrimPrefix(r.path, pathRefunds+"/"), "CLOSE"), answerOpts{}

	case r.method == "GET" && r.path == pathCertificates:
		f.certDownloads.Add(1)
		f.mu.Lock()
		list := append([]*wxKey(nil), f.certList...)
		f.mu.Unlock()
		return 200, f.certificatesJSON(list...), answerOpts{}
	}
	return 404, []byte(`{"code":"RESOURCE_NOT_EXISTS","message":"no such route"}`), answerOpts{}
}

func refundJSON(outRefundNo, status string) []byte {
	b, _ := json.Marshal(wxpay.Refund{
		RefundID: "50000000382019052709732678859", OutRefundNo: outRefundNo,
		TransactionID: "1217752501201407033233368018", OutTradeNo: "1217752501201407033233368018",
		Channel: "ORIGINAL", UserReceivedAccount: "招商银行信用卡0403", CreateTime: "2020-12-01T16:18:12+08:00",
		Status: status, Amount: wxpay.RefundDetailAmount{Total: 100, Refund: 100, PayerTotal: 100, PayerRefund: 100, Currency: "CNY"},
	})
	return b
}

// certificatesJSON builds a /v3/certificates answer listing keys.
func (f *fakeWeChat) certificatesJSON(keys ...*wxKey) []byte {
	var doc wxpay.CertificatesResponse
	for i, k := range keys {
		nonce := fmt.Sprintf("nonce%07d", i)
		ct, err := f.keys.aead.Seal(nonce, "certificate", k.pem)
		if err != nil {
			f.t.Error(err)
		}
		doc.Data = append(doc.Data, wxpay.Certificate{
			SerialNo:      k.serial,
			EffectiveTime: k.cert.NotBefore.Format(time.RFC3339),
			ExpireTime:    k.cert.NotAfter.Format(time.RFC3339),
			EncryptCertificate: wxpay.Resource{
				Algorithm: wxpay.AlgorithmAESGCM, Nonce: nonce, AssociatedData: "certificate", Ciphertext: ct,
			},
		})
	}
	b, _ := json.Marshal(doc)
	return b
}

// checkAuthorization is the server's check of an APIv3 Authorization
// header: the scheme, exactly the five pairs in any order, the merchant id
// and serial, a fresh timestamp, a 32-character nonce, and the signature of
// METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n under the merchant public key.
func checkAuthorization(auth, method, uri string, body []byte, pub *rsa.PublicKey, now time.Time) error {
	const scheme = wxpay.SignatureType + " "
	rest, ok := strings.CutPrefix(auth, scheme)
	if !ok {
		return errors.New("wrong scheme")
	}
	pairs := map[string]string{}
	for _, kv := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return fmt.Errorf("malformed pair %q", k)
		}
		if _, dup := pairs[k]; dup {
			return fmt.Errorf("duplicate %q", k)
		}
		pairs[k] = v[1 : len(v)-1]
	}
	for _, k := range []string{"mchid", "nonce_str", "signature", "timestamp", "serial_no"} {
		if pairs[k] == "" {
			return fmt.Errorf("missing %q", k)
		}
	}
	if len(pairs) != 5 {
		return fmt.Errorf("%d pairs, want 5", len(pairs))
	}
	if pairs["mchid"] != testMchID || pairs["serial_no"] != testMerchantSerial {
		return errors.New("wrong merchant")
	}
	ts, err := strconv.ParseInt(pairs["timestamp"], 10, 64)
	if err != nil {
		return errors.New("bad timestamp")
	}
	if d := now.Unix() - ts; d >= 300 || d <= -300 {
		return fmt.Errorf("timestamp %ds off", d)
	}
	if n := pairs["nonce_str"]; len(n) != 32 || strings.Trim(n, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
		return errors.New("bad nonce")
	}
	msg := method + "\n" + uri + "\n" + pairs["timestamp"] + "\n" + pairs["nonce_str"] + "\n" + string(body) + "\n"
	sig, err := base64.StdEncoding.DecodeString(pairs["signature"])
	if err != nil {
		return errors.New("signature not Base64")
	}
	d := sha256.Sum256([]byte(msg))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
}

// testClock is a settable clock that starts at the real time.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// newTestClient returns a Client talking to f that verifies with keys
// (default: a key set holding certificate a).
func newTestClient(t testing.TB, f *fakeWeChat, cfg Config, keys *wxpay.KeySet, opts ...Option) *Client {
	t.Helper()
	if cfg.BaseURL == "" {
		cfg.BaseURL = testBaseURL
	}
	if keys == nil {
		keys = keySetWith(t, f.keys.a)
	}
	c, err := New(cfg, f.keys.signer, wxpay.NewVerifier(keys), append([]Option{WithDial(f.dial)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.releaseAll() // abandoned exchanges end once the fake answers
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return c
}

// eventually polls cond every 2 ms until it holds or 2 s pass
// (itest.Eventually).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	itest.Eventually(t, 2*time.Second, 2*time.Millisecond, what, func() (bool, string) { return cond(), "" })
}

// assertNoSecrets fails if err's text holds anything secret: an
// Authorization value or signature the fake received, the APIv3 key or a
// piece of the merchant key.
func (f *fakeWeChat) assertNoSecrets(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	secrets := []string{testAPIv3Key, base64.StdEncoding.EncodeToString(f.keys.merchant.D.Bytes()[:16])}
	for _, r := range f.recordedRequests() {
		if a := r.header["Authorization"]; a != "" {
			secrets = append(secrets, a)
			if _, sig, ok := strings.Cut(a, `signature="`); ok {
				secrets = append(secrets, sig[:20])
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("error %q contains a secret", msg)
		}
	}
}

func TestFakeServerRejectsABadAuthorization(t *testing.T) {
	k := testKeys(t)
	now := time.Now()
	ts := now.Unix()
	nonce := wxpay.NewNonce()
	auth, err := k.signer.Authorization("GET", "/v3/certificates", nil, ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	pub := &k.merchant.PublicKey
	if err := checkAuthorization(auth, "GET", "/v3/certificates", nil, pub, now); err != nil {
		t.Fatalf("a good header was refused: %v", err)
	}
	for name, tc := range map[string]struct {
		auth, method, uri string
		now               time.Time
	}{
		"another URL does not verify":       {auth, "GET", "/v3/certificates?x=1", now},
		"another method does not verify":    {auth, "POST", "/v3/certificates", now},
		"a stale timestamp is refused":      {auth, "GET", "/v3/certificates", now.Add(6 * time.Minute)},
		"another scheme is refused":         {strings.Replace(auth, "WECHATPAY2", "WECHATPAY3", 1), "GET", "/v3/certificates", now},
		"a duplicated pair is refused":      {auth + `,mchid="1"`, "GET", "/v3/certificates", now},
		"a missing pair is refused":         {strings.Replace(auth, "nonce_str", "nonce", 1), "GET", "/v3/certificates", now},
		"a changed signature does not pass": {strings.Replace(auth, `signature="`, `signature="AAAA`, 1), "GET", "/v3/certificates", now},
	} {
		t.Run(name, func(t *testing.T) {
			if err := checkAuthorization(tc.auth, tc.method, tc.uri, nil, pub, tc.now); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
