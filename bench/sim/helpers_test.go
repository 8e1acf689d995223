package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/sink/itest"
	"github.com/wxpayd/wxpayd/wxpay"
)

// Test helpers: one identity per test binary (RSA key generation is slow),
// a simulator on 127.0.0.1:0, a merchant client that signs like wxpayd and
// verifies every answer, and a merchant notification endpoint.

var (
	testIDOnce sync.Once
	testID     *Identity
	testIDErr  error
)

func identity(t testing.TB) *Identity {
	t.Helper()
	testIDOnce.Do(func() { testID, testIDErr = NewIdentity(KeygenOptions{}) })
	if testIDErr != nil {
		t.Fatal(testIDErr)
	}
	return testID
}

// t0 is a fixed start for fake clocks.
var t0 = time.Date(2026, 5, 20, 13, 29, 35, 0, beijing)

type testSim struct {
	*Server
	clock *FakeClock // nil with the system clock
	c     *client
}

// startSim starts a simulator with cfg adjusted by mod. A fake clock is
// used unless mod sets Clock to SystemClock.
func startSim(t testing.TB, mod func(*Config)) *testSim {
	t.Helper()
	fc := NewFakeClock(t0)
	cfg := Config{Identity: identity(t), Listen: "127.0.0.1:0", Clock: fc, Seed: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	if cfg.Clock != Clock(fc) {
		fc = nil
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Longer than a delivery's 5 s timeout: Close waits for deliveries in flight.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	ts := &testSim{Server: s, clock: fc}
	ts.c = newClient(t, s, func() time.Time { return s.clock.Now() })
	// Runs before Close (cleanups run last first): connections the client
	// dialled but never used would hold fasthttp's shutdown for 5 s.
	t.Cleanup(func() { ts.c.http.CloseIdleConnections() })
	return ts
}

// client is a merchant: it signs requests with the merchant key and checks
// every answer's signature with WeChat's keys.
type client struct {
	t        testing.TB
	base     string
	signer   *wxpay.Signer
	verifier *wxpay.Verifier
	now      func() time.Time
	http     *http.Client
	serial   string // Wechatpay-Serial to send ("" = none)
}

func newClient(t testing.TB, s *Server, now func() time.Time) *client {
	t.Helper()
	id := s.Identity()
	mk, err := wxpay.GoBackend.NewPrivateKey(id.MerchantKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := wxpay.NewSigner(id.MchID, id.MerchantSerial, mk)
	if err != nil {
		t.Fatal(err)
	}
	ks := wxpay.NewKeySet(nil)
	if err := ks.AddPublicKey(id.PublicKeyID, &id.WechatPayKey.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := ks.AddCertificate(id.PlatformCert); err != nil {
		t.Fatal(err)
	}
	return &client{
		t: t, base: s.URL(), signer: signer, now: now,
		verifier: wxpay.NewVerifier(ks, wxpay.WithClock(now)),
		http:     &http.Client{Timeout: 10 * time.Second},
	}
}

// answer is a checked APIv3 answer.
type answer struct {
	status int
	body   []byte
	header http.Header
	err    *wxpay.APIError
}

// do sends a signed request; body is marshalled unless it is []byte or nil.
// Every answer must carry a valid WeChat signature.
func (c *client) do(method, path string, body any) answer {
	c.t.Helper()
	a, err := c.try(method, path, body, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return a
}

// try is do with an optional request rewrite after signing (to tamper).
func (c *client) try(method, path string, body any, tamper func(*http.Request)) (answer, error) {
	resp, rb, err := c.send(method, path, body, tamper)
	if err != nil {
		return answer{}, err
	}
	return c.check(method, path, resp, rb)
}

// send signs and sends a request and returns the answer unverified.
func (c *client) send(method, path string, body any, tamper func(*http.Request)) (*http.Response, []byte, error) {
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return nil, nil, err
		}
	}
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(raw))
	if err != nil {
		return nil, nil, err
	}
	auth, err := c.signer.Authorization(method, req.URL.RequestURI(), raw, c.now().Unix(), wxpay.NewNonce())
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", "application/json")
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.serial != "" {
		req.Header.Set(wxpay.HeaderSerial, c.serial)
	}
	if tamper != nil {
		tamper(req)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, rb, nil
}

// check verifies an answer's signature and decodes an error body.
func (c *client) check(method, path string, resp *http.Response, rb []byte) (answer, error) {
	h := &wxpay.Headers{
		Timestamp: resp.Header.Get(wxpay.HeaderTimestamp), Nonce: resp.Header.Get(wxpay.HeaderNonce),
		Signature: resp.Header.Get(wxpay.HeaderSignature), Serial: resp.Header.Get(wxpay.HeaderSerial),
		SignatureType: resp.Header.Get(wxpay.HeaderSignatureType), RequestID: resp.Header.Get(wxpay.HeaderRequestID),
	}
	if err := c.verifier.Verify(h, rb); err != nil {
		return answer{}, fmt.Errorf("%s %s: answer %d not signed correctly: %w", method, path, resp.StatusCode, err)
	}
	if h.RequestID == "" {
		return answer{}, fmt.Errorf("%s %s: no Request-ID", method, path)
	}
	a := answer{status: resp.StatusCode, body: rb, header: resp.Header}
	if resp.StatusCode >= 300 {
		var e wxpay.APIError
		if err := json.Unmarshal(rb, &e); err != nil {
			return answer{}, fmt.Errorf("error body %q: %w", rb, err)
		}
		e.Status = resp.StatusCode
		a.err = &e
	}
	return a, nil
}

// wantErr fails unless a is the given error answer.
func (a answer) wantErr(t testing.TB, status int, code string) *wxpay.APIError {
	t.Helper()
	if a.status != status || a.err == nil || a.err.Code != code {
		t.Fatalf("got %d %s, want %d %s", a.status, a.body, status, code)
	}
	return a.err
}

func (a answer) wantOK(t testing.TB, status int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("got %d %s, want %d", a.status, a.body, status)
	}
}

// prepayReq returns a valid prepay body for the test identity.
func prepayReq(id *Identity, otn, openid, notify string) map[string]any {
	return map[string]any{
		"appid": id.AppID, "mchid": id.MchID, "description": "Image形象店-深圳腾大-QQ公仔",
		"out_trade_no": otn, "notify_url": notify,
		"amount": map[string]any{"total": 100, "currency": "CNY"},
		"payer":  map[string]any{"openid": openid},
	}
}

// prepay creates an order and returns its prepay_id.
func (c *client) prepay(otn, openid, notify string) string {
	c.t.Helper()
	a := c.do("POST", "/v3/pay/transactions/jsapi", prepayReq(testID, otn, openid, notify))
	a.wantOK(c.t, 200)
	var r wxpay.PrepayResponse
	if err := json.Unmarshal(a.body, &r); err != nil || len(r.PrepayID) != 36 {
		c.t.Fatalf("prepay answer %s: %v", a.body, err)
	}
	return r.PrepayID
}

// query returns the decoded transaction.
func (c *client) query(otn string) wxpay.Transaction {
	c.t.Helper()
	a := c.do("GET", "/v3/pay/transactions/out-trade-no/"+otn+"?mchid="+testID.MchID, nil)
	a.wantOK(c.t, 200)
	tx, err := wxpay.DecodeTransaction(a.body)
	if err != nil {
		c.t.Fatalf("query answer %s: %v", a.body, err)
	}
	return tx
}

// simPost posts JSON to the control API.
func (c *client) simPost(path string, body any, out any) int {
	c.t.Helper()
	raw, _ := json.Marshal(body)
	resp, err := c.http.Post(c.base+path, "application/json", bytes.NewReader(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			c.t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func (c *client) simGet(path string, out any) int {
	c.t.Helper()
	resp, err := c.http.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			c.t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// pay pays via /sim/v1/pay and returns the status and body code.
func (c *client) pay(prepayID, openid string) (int, string) {
	c.t.Helper()
	var out map[string]string
	st := c.simPost("/sim/v1/pay", map[string]string{"prepay_id": prepayID, "openid": openid}, &out)
	if st == 201 {
		return st, out["transaction_id"]
	}
	return st, out["code"]
}

// merchant is a notification endpoint on 127.0.0.1 that verifies and
// decrypts like wxpayd and records what arrived.
type merchant struct {
	t      testing.TB
	url    string
	parser *wxpay.NotifyParser
	v2key  *wxpay.V2Key
	clock  func() time.Time
	status func(n int) int // answer for the n-th delivery (0-based); default 204 when valid, 400 when not

	mu       sync.Mutex
	arrivals []arrival
	ch       chan arrival
}

type arrival struct {
	at      time.Time // the simulator clock at arrival
	valid   bool
	err     error
	event   string
	tx      wxpay.Transaction
	refund  wxpay.RefundNotice
	v2      map[string]string
	serial  string
	sig     string
	id      string
	answer  int
	rawBody []byte
}

func newMerchant(t testing.TB, s *Server, status func(n int) int) *merchant {
	t.Helper()
	id := s.Identity()
	ks := wxpay.NewKeySet(nil)
	if err := ks.AddPublicKey(id.PublicKeyID, &id.WechatPayKey.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := ks.AddCertificate(id.PlatformCert); err != nil {
		t.Fatal(err)
	}
	aead, err := wxpay.NewAEAD(id.APIv3Key)
	if err != nil {
		t.Fatal(err)
	}
	v2k, err := wxpay.NewV2Key(id.APIv2Key)
	if err != nil {
		t.Fatal(err)
	}
	m := &merchant{
		t: t, clock: s.clock.Now, status: status, v2key: v2k, ch: make(chan arrival, 1024),
		parser: wxpay.NewNotifyParser(wxpay.NewVerifier(ks, wxpay.WithClock(s.clock.Now)), aead),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Minute}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	m.url = "http://" + ln.Addr().String() + "/wxpay/v3/notify"
	return m
}

func (m *merchant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a := arrival{at: m.clock(), rawBody: body, serial: r.Header.Get(wxpay.HeaderSerial),
		sig: r.Header.Get(wxpay.HeaderSignature)}
	if r.Header.Get("Content-Type") == "text/xml" {
		p, err := wxpay.ParseV2XML(body)
		if err == nil {
			err = m.v2key.VerifyAuto(p)
		}
		a.v2, a.err, a.valid, a.event = p, err, err == nil, "APIV2.PAY"
	} else {
		h := &wxpay.Headers{
			Timestamp: r.Header.Get(wxpay.HeaderTimestamp), Nonce: r.Header.Get(wxpay.HeaderNonce),
			Signature: r.Header.Get(wxpay.HeaderSignature), Serial: a.serial,
			SignatureType: r.Header.Get(wxpay.HeaderSignatureType), RequestID: r.Header.Get(wxpay.HeaderRequestID),
		}
		n, err := m.parser.Parse(h, body, func(n *wxpay.Notification, plain []byte) error {
			var err error
			switch n.EventType {
			case wxpay.EventTransactionSuccess:
				a.tx, err = wxpay.DecodeTransaction(plain)
			case wxpay.EventRefundSuccess, wxpay.EventRefundClosed, wxpay.EventRefundAbnormal:
				a.refund, err = wxpay.DecodeRefundNotice(plain)
			}
			return err
		})
		a.err, a.valid, a.event, a.id = err, err == nil, n.EventType, n.ID
	}
	m.mu.Lock()
	idx := len(m.arrivals)
	a.answer = 204
	if !a.valid {
		a.answer = 400
	}
	if m.status != nil {
		a.answer = m.status(idx)
	}
	m.arrivals = append(m.arrivals, a)
	m.mu.Unlock()
	if a.v2 != nil && a.answer < 300 {
		w.WriteHeader(200)
		io.WriteString(w, wxpay.V2NotifySuccessReply)
	} else {
		w.WriteHeader(a.answer)
	}
	m.ch <- a
}

// next waits for the next arrival.
func (m *merchant) next(t testing.TB) arrival {
	t.Helper()
	select {
	case a := <-m.ch:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no notification arrived within 10 s")
		return arrival{}
	}
}

// none fails if a notification arrives within d (real time).
func (m *merchant) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case a := <-m.ch:
		t.Fatalf("unexpected notification at %v: %s", a.at, a.event)
	case <-time.After(d):
	}
}

// eventually polls cond every 5 ms until it holds or 10 s pass
// (itest.Eventually).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	itest.Eventually(t, 10*time.Second, 5*time.Millisecond, what, func() (bool, string) { return cond(), "" })
}

// waitIdle waits until the fake clock has a pending timer and the
// simulator's workers are idle, i.e. the scheduler sleeps.
func (ts *testSim) waitSleeping(t testing.TB) {
	t.Helper()
	eventually(t, "the scheduler to sleep", func() bool {
		return ts.clock.Waiters() > 0 && len(ts.notifier.work) == 0
	})
}

func otn(t testing.TB, n int) string {
	return "T" + strconv.FormatInt(time.Now().UnixNano()%1e12, 36) + "x" + strconv.Itoa(n)
}

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// noKeepAlive makes the client open a connection per request, so a cut
// connection is never retried by net/http on a reused one.
func (c *client) noKeepAlive() {
	c.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// ledger reads GET /sim/v1/ledger[?out_trade_no=].
func (c *client) ledger(outTradeNo string) Ledger {
	c.t.Helper()
	var l Ledger
	path := "/sim/v1/ledger"
	if outTradeNo != "" {
		path += "?out_trade_no=" + outTradeNo
	}
	if st := c.simGet(path, &l); st != 200 {
		c.t.Fatalf("ledger: %d", st)
	}
	return l
}

// ledgerOrder returns one out_trade_no's ledger entry, from orders or
// unknown_orders (TradeState "" when absent from both).
func (c *client) ledgerOrder(outTradeNo string) LedgerOrder {
	c.t.Helper()
	l := c.ledger(outTradeNo)
	if len(l.Orders)+len(l.Unknown) > 1 {
		c.t.Fatalf("ledger for %s: %+v", outTradeNo, l)
	}
	for _, o := range append(l.Orders, l.Unknown...) {
		return o
	}
	return LedgerOrder{}
}

// paidOrder creates an order of total fen and pays it, waiting for its
// notification; it returns the transaction_id.
func (ts *testSim) paidOrder(t testing.TB, m *merchant, otn string, total int64) string {
	t.Helper()
	b := prepayReq(testID, otn, "oBuyer", m.url)
	b["amount"] = map[string]any{"total": total, "currency": "CNY"}
	a := ts.c.do("POST", "/v3/pay/transactions/jsapi", b)
	a.wantOK(t, 200)
	var r wxpay.PrepayResponse
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatal(err)
	}
	st, txn := ts.c.pay(r.PrepayID, "oBuyer")
	if st != 201 {
		t.Fatalf("pay %s: %d %s", otn, st, txn)
	}
	if a := m.next(t); a.tx.OutTradeNo != otn {
		t.Fatalf("notification for %s, want %s", a.tx.OutTradeNo, otn)
	}
	return txn
}
