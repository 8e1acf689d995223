package ingress

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/bench/sim"
	"github.com/wxpayd/wxpayd/sink/itest"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
	"github.com/wxpayd/wxpayd/wxpay/openssl"
)

// The end-to-end tests run the real pieces: wxpaysim plays WeChat Pay
// (verifying our signatures, signing its answers, delivering encrypted
// notifications), and wxpayd's store, actors and HTTP server run on
// loopback. Only the business clock of wxpayd is shifted, to reach TTLs
// without waiting; every signature uses real time.

var (
	identOnce sync.Once
	ident     *sim.Identity
	identErr  error
)

func identity(t testing.TB) *sim.Identity {
	t.Helper()
	identOnce.Do(func() { ident, identErr = sim.NewIdentity(sim.KeygenOptions{}) })
	if identErr != nil {
		t.Fatal(identErr)
	}
	return ident
}

// offsetClock is real time plus an adjustable offset.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.off.Add(int64(d)) }

type stack struct {
	t     testing.TB
	id    *sim.Identity
	sim   *sim.Server
	srv   *Server
	sys   *actors.System
	st    *store.Store
	url   string
	clock *offsetClock
	prep  *timedPrepayer
	v2    *wxpay.V2Merchant // the APIv2 merchant (stackOpts.api "v2"); nil on APIv3
	admin string
	http  *http.Client
	stop  func()
}

// timedPrepayer is the WeChat client the order actors call, recording how
// long WeChat (the simulator) took for each prepay, so benchmarks can
// subtract it from the request's latency.
type timedPrepayer struct {
	actors.WeChat // *client.Client, or *client.V2Client for an APIv2 stack
	mu            sync.Mutex
	took          map[string]time.Duration
}

func (p *timedPrepayer) Prepay(ctx context.Context, req *wxpay.PrepayRequest) (wxpay.PrepayResponse, error) {
	t0 := time.Now()
	r, err := p.WeChat.Prepay(ctx, req)
	d := time.Since(t0)
	p.mu.Lock()
	p.took[req.OutTradeNo] = d
	p.mu.Unlock()
	return r, err
}

type stackOpts struct {
	deadNotifyURL bool // prepay with a notify_url nobody answers (notifications lost)
	simCfg        func(*sim.Config)
	prepayQPS     int
	idle          time.Duration // order actors' idle time before passivation (default 1 s)
	// api "v2" runs the merchant on APIv2 as wxpayd's WXPAY_API=v2 does:
	// the APIv2 client (client certificate TLS to the simulator's TLS
	// listener for refunds), v2 notify URLs, v2 paySign with v2SignType
	// (MD5 when empty), and no APIv3 notification parser.
	api        string
	v2SignType wxpay.V2SignType
	// wechatURL, when set, is where the WeChat Pay client sends its calls
	// instead of the simulator (benchmarks answer from a constant).
	wechatURL string
	// store are the store's options (webhooks: bench_test.go)
	store store.Options
	// trustedProxies is Config.TrustedProxies.
	trustedProxies []netip.Prefix
}

func newStack(t testing.TB, o stackOpts) *stack {
	t.Helper()
	id := identity(t)
	simBackend, err := openssl.Select("auto", "")
	if err != nil {
		t.Fatal(err)
	}
	scfg := sim.Config{Identity: id, Listen: "127.0.0.1:0", NotifySpeedup: 1000, RateLimit: sim.RateLimitOff, Backend: simBackend,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if o.simCfg != nil {
		o.simCfg(&scfg)
	}
	sm, err := sim.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sm.Start(); err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, id: id, sim: sm, clock: &offsetClock{}, admin: "admin-token-0123456789", http: &http.Client{Timeout: 20 * time.Second}}

	// The production choice: OpenSSL when libcrypto loads, else Go.
	backend, err := openssl.Select("auto", "")
	if err != nil {
		t.Fatal(err)
	}
	mk, err := backend.NewPrivateKey(id.MerchantKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := wxpay.NewSigner(id.MchID, id.MerchantSerial, mk)
	if err != nil {
		t.Fatal(err)
	}
	keys := wxpay.NewKeySet(backend)
	if err := keys.AddPublicKey(id.PublicKeyID, &id.WechatPayKey.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := keys.AddCertificate(id.PlatformCert); err != nil {
		t.Fatal(err)
	}
	verifier := wxpay.NewVerifier(keys)
	aead, err := wxpay.NewAEAD(id.APIv3Key)
	if err != nil {
		t.Fatal(err)
	}
	var pay interface {
		actors.WeChat
		Close(context.Context) error
	}
	var paySigner PaySigner = signer
	notifyPath, notifyParser := "/wxpay/v3/notify", wxpay.NewNotifyParser(verifier, aead)
	if o.api == "v2" {
		s.v2 = v2Merchant(t, id, o.v2SignType)
		paySigner, notifyPath, notifyParser = s.v2, "/wxpay/v2/notify", nil
	} else if pay, err = client.New(client.Config{BaseURL: cmp.Or(o.wechatURL, sm.URL())}, signer, verifier); err != nil {
		t.Fatal(err)
	}
	login, err := client.NewLoginClient(client.LoginConfig{BaseURL: sm.URL(), AppID: id.AppID, AppSecret: id.AppSecret})
	if err != nil {
		t.Fatal(err)
	}
	if s.st, err = store.Open(t.TempDir(), o.store); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + ln.Addr().String()
	// Every exchange with wxpayd is held to its OpenAPI description, and
	// so is every notification the simulator delivers (through a checking
	// proxy: its client is fasthttp's, which takes no RoundTripper).
	// Benchmarks leave both out: the hop, and the parsed description on
	// the heap, which the collector would trace in every timed cycle.
	notifyBase := s.url
	if _, ok := t.(*testing.T); ok {
		spec := openAPISpec(t)
		s.http.Transport = spec.Transport(t, s.url, nil)
		proxy, err := spec.Proxy(t, s.url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(proxy.Close) // after stop (cleanups run last first): no delivery is left
		notifyBase = proxy.URL
	}
	notifyURL, refundURL := notifyBase+notifyPath, notifyBase+"/wxpay/v2/refund-notify"
	if o.deadNotifyURL {
		dead, _ := net.Listen("tcp", "127.0.0.1:0")
		notifyURL = "http://" + dead.Addr().String() + notifyPath
		refundURL = "http://" + dead.Addr().String() + "/wxpay/v2/refund-notify"
		_ = dead.Close()
	}
	if o.api == "v2" {
		pay = v2Client(t, id, s.v2, cmp.Or(o.wechatURL, sm.URL()), sm.TLSURL(), refundURL)
	}
	if o.idle <= 0 {
		o.idle = time.Second
	}
	s.prep = &timedPrepayer{WeChat: pay, took: map[string]time.Duration{}}
	if s.sys, err = actors.New(actors.Config{AppID: id.AppID, MchID: id.MchID, NotifyURL: notifyURL, Now: s.clock.now,
		Idle: o.idle, PrepayQPS: o.prepayQPS}, s.st, s.prep); err != nil {
		t.Fatal(err)
	}
	v2key, err := wxpay.NewV2Key(id.APIv2Key)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if s.srv, err = New(Config{
		AppID: id.AppID, MchID: id.MchID, SessionSecret: bytes.Repeat([]byte("s"), 32),
		AdminToken: []byte(s.admin), ShopToken: []byte(shopToken), Now: s.clock.now, TrustedProxies: o.trustedProxies,
	}, Deps{
		Actors: s.sys, Signer: paySigner, Notify: notifyParser, Login: login,
		V2Key: v2key, Registry: reg, Gatherer: reg,
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = s.sys.Run(ctx); done <- struct{}{} }()
	go func() { _ = s.srv.Run(ln); done <- struct{}{} }()
	s.srv.SetReady(true)
	s.stop = func() {
		c, cc := context.WithTimeout(context.Background(), 10*time.Second)
		defer cc()
		_ = s.srv.Close(c)
		_ = s.sys.Close(c)
		cancel()
		<-done
		<-done
		_ = sm.Close(c)
		_ = pay.Close(c)
		_ = login.Close(c)
		_ = s.st.Close()
	}
	t.Cleanup(s.stop)
	return s
}

func (s *stack) do(method, path, token string, body any, hdr ...string) (int, []byte, http.Header) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func (s *stack) loginAs(buyer string) string {
	s.t.Helper()
	st, b, _ := s.do("POST", "/api/v1/login", "", map[string]string{"code": "code-" + buyer + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)})
	if st != 200 {
		s.t.Fatalf("login: %d %s", st, b)
	}
	var r struct {
		Token     string `json:"token"`
		ExpiresIn int64  `json:"expires_in"`
	}
	_ = json.Unmarshal(b, &r)
	if r.Token == "" || r.ExpiresIn <= 0 {
		s.t.Fatalf("login answer %s", b)
	}
	return r.Token
}

func (s *stack) putSKU(sku string, stock int64) {
	s.t.Helper()
	st, b, _ := s.do("PUT", "/admin/v1/skus/"+sku, s.admin, map[string]any{"description": "限量 " + sku, "price": 1999, "stock": stock, "per_buyer_limit": 2})
	if st != 200 {
		s.t.Fatalf("put sku: %d %s", st, b)
	}
}

type created struct {
	OutTradeNo string          `json:"out_trade_no"`
	State      string          `json:"state"`
	Amount     wxpay.Amount    `json:"amount"`
	Payment    wxpay.PayParams `json:"payment"`
	Refunded   int64           `json:"refunded"`
}

func (s *stack) order(token, sku string) (int, created, []byte) {
	s.t.Helper()
	st, b, _ := s.do("POST", "/api/v1/orders", token, map[string]any{"sku": sku, "quantity": 1})
	var c created
	_ = json.Unmarshal(b, &c)
	return st, c, b
}

func (s *stack) get(token, otn string) created {
	s.t.Helper()
	st, b, _ := s.do("GET", "/api/v1/orders/"+otn, token, nil)
	if st != 200 {
		s.t.Fatalf("get order: %d %s", st, b)
	}
	var c created
	_ = json.Unmarshal(b, &c)
	return c
}

func (s *stack) simPay(prepayPackage, openid string) int {
	s.t.Helper()
	b, _ := json.Marshal(map[string]string{"prepay_id": strings.TrimPrefix(prepayPackage, "prepay_id="), "openid": openid})
	resp, err := s.http.Post(s.sim.URL()+"/sim/v1/pay", "application/json", bytes.NewReader(b))
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *stack) openid(token string) string {
	o, err := s.srv.sess.check([]byte(token))
	if err != nil {
		s.t.Fatal(err)
	}
	return o
}

func (s *stack) sku(sku string) actors.SKUView {
	s.t.Helper()
	st, b, _ := s.do("GET", "/admin/v1/skus/"+sku, s.admin, nil)
	if st != 200 {
		s.t.Fatalf("get sku: %d %s", st, b)
	}
	var v actors.SKUView
	_ = json.Unmarshal(b, &v)
	return v
}

// eventually is the module's one poll (itest.Eventually): 15 s, every 10 ms.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	itest.Eventually(t, 15*time.Second, 10*time.Millisecond, what, func() (bool, string) { return cond(), "" })
}

func TestEndToEndPayAndRefund(t *testing.T) {
	s := newStack(t, stackOpts{})
	s.putSKU("phone", 3)
	tok := s.loginAs("alice")
	st, c, b := s.order(tok, "phone")
	if st != 201 || c.State != "PREPAID" || c.Amount.Total != 1999 || c.Payment.SignType != "RSA" ||
		!strings.HasPrefix(c.Payment.Package, "prepay_id=") || c.Payment.AppID != s.id.AppID {
		t.Fatalf("create: %d %s", st, b)
	}
	// The paySign verifies with the merchant's public key over the
	// documented message.
	if err := verifyPaySign(s.id, c.Payment); err != nil {
		t.Fatal(err)
	}
	if v := s.sku("phone"); v.Left != 2 || v.Reserved != 1 {
		t.Fatalf("after prepay: %+v", v)
	}
	if code := s.simPay(c.Payment.Package, s.openid(tok)); code != 201 {
		t.Fatalf("sim pay: %d", code)
	}
	eventually(t, "notification makes the order PAID", func() bool { return s.get(tok, c.OutTradeNo).State == "PAID" })
	if v := s.sku("phone"); v.Sold != 1 || v.Reserved != 0 || v.Left != 2 {
		t.Fatalf("after payment: %+v", v)
	}
	// Another buyer cannot see it.
	other := s.loginAs("mallory")
	if st, _, _ := s.do("GET", "/api/v1/orders/"+c.OutTradeNo, other, nil); st != 404 {
		t.Fatalf("other buyer got %d", st)
	}
	// Amounts past what an int64 sum can hold are refused at the door,
	// and nothing is recorded.
	for _, amt := range []int64{math.MaxInt64, math.MaxInt64 - 1000, maxRefundFen + 1, 2000} {
		if st, b, _ := s.do("POST", "/admin/v1/orders/"+c.OutTradeNo+"/refunds", s.admin, map[string]any{"amount": amt}); st != 400 {
			t.Fatalf("refund of %d: %d %s", amt, st, b)
		}
	}
	// Refund through WeChat; REFUND.SUCCESS completes it.
	st, b, _ = s.do("POST", "/admin/v1/orders/"+c.OutTradeNo+"/refunds", s.admin, map[string]any{"amount": 1999, "reason": "退货"})
	if st != 200 {
		t.Fatalf("refund: %d %s", st, b)
	}
	eventually(t, "refund notification makes it REFUNDED", func() bool {
		g := s.get(tok, c.OutTradeNo)
		return g.State == "REFUNDED" && g.Refunded == 1999
	})
	st, b, _ = s.do("GET", "/admin/v1/orders/"+c.OutTradeNo, s.admin, nil)
	var full adminView
	_ = json.Unmarshal(b, &full)
	var types []string
	for _, e := range full.Events {
		types = append(types, e.Type)
	}
	want := "order.created,order.prepaid,order.paid,order.refund_requested,order.refunded"
	if st != 200 || strings.Join(types, ",") != want {
		t.Fatalf("history %d: %v, want %s", st, types, want)
	}
}

// TestEndToEndAbnormalRefundIsApplied: WeChat ends the refund ABNORMAL
// (REFUND.ABNORMAL); wxpayd keeps it pending with one alert, and the
// admin's apply-abnormal completes it.
func TestEndToEndAbnormalRefundIsApplied(t *testing.T) {
	s := newStack(t, stackOpts{simCfg: func(c *sim.Config) { c.RefundOutcomes = "abnormal=1" }})
	s.putSKU("card", 1)
	tok := s.loginAs("dora")
	_, c, _ := s.order(tok, "card")
	if code := s.simPay(c.Payment.Package, s.openid(tok)); code != 201 {
		t.Fatalf("sim pay: %d", code)
	}
	eventually(t, "paid", func() bool { return s.get(tok, c.OutTradeNo).State == "PAID" })
	st, b, _ := s.do("POST", "/admin/v1/orders/"+c.OutTradeNo+"/refunds", s.admin, map[string]any{"amount": 1999}, "Idempotency-Key", "abn-1")
	var v adminView
	_ = json.Unmarshal(b, &v)
	if st != 200 || len(v.Order.Refunds) != 1 {
		t.Fatalf("refund: %d %s", st, b)
	}
	no := v.Order.Refunds[0].OutRefundNo
	adminOrder := func() adminView {
		_, b, _ := s.do("GET", "/admin/v1/orders/"+c.OutTradeNo, s.admin, nil)
		var v adminView
		_ = json.Unmarshal(b, &v)
		return v
	}
	eventually(t, "ABNORMAL recorded", func() bool { return adminOrder().Order.Refunds[0].Status == "ABNORMAL" })
	path := "/admin/v1/orders/" + c.OutTradeNo + "/refunds/" + no + "/apply-abnormal"
	if st, b, _ := s.do("POST", path, s.admin, map[string]any{"type": "USER_BANK_CARD"}); st != 400 {
		t.Fatalf("apply without bank fields: %d %s", st, b)
	}
	if st, b, _ := s.do("POST", path, s.admin, map[string]any{"type": "MERCHANT_BANK_CARD"}); st != 200 {
		t.Fatalf("apply: %d %s", st, b)
	}
	eventually(t, "refunded", func() bool {
		g := s.get(tok, c.OutTradeNo)
		return g.State == "REFUNDED" && g.Refunded == 1999
	})
	abnormal := 0
	for _, e := range adminOrder().Events {
		if e.Type == "order.refund_abnormal" {
			abnormal++
		}
	}
	if abnormal != 1 {
		t.Fatalf("%d order.refund_abnormal events, want 1", abnormal)
	}
}

func verifyPaySign(id *sim.Identity, p wxpay.PayParams) error {
	pk, err := wxpay.GoBackend.NewPrivateKey(id.MerchantKey)
	if err != nil {
		return err
	}
	ts, _ := strconv.ParseInt(p.TimeStamp, 10, 64)
	sg, _ := wxpay.NewSigner(id.MchID, id.MerchantSerial, pk)
	again, err := sg.RequestPayment(p.AppID, strings.TrimPrefix(p.Package, "prepay_id="), ts, p.NonceStr)
	if err != nil {
		return err
	}
	if again.PaySign != p.PaySign {
		return fmt.Errorf("paySign does not match the documented message")
	}
	return nil
}

func TestEndToEndSoldOutAndLimits(t *testing.T) {
	s := newStack(t, stackOpts{})
	s.putSKU("rare", 1)
	a, b := s.loginAs("a"), s.loginAs("b")
	if st, _, body := s.order(a, "rare"); st != 201 {
		t.Fatalf("first: %d %s", st, body)
	}
	st, _, body := s.order(b, "rare")
	if st != 409 || !strings.Contains(string(body), "SOLD_OUT") {
		t.Fatalf("second: %d %s", st, body)
	}
	if st, _, body := s.order(b, "nope"); st != 404 || !strings.Contains(string(body), "UNKNOWN_SKU") {
		t.Fatalf("unknown sku: %d %s", st, body)
	}
	if st, _, _ := s.do("POST", "/api/v1/orders", "", map[string]any{"sku": "rare"}); st != 401 {
		t.Fatalf("no session: %d", st)
	}
	if st, _, _ := s.do("POST", "/api/v1/orders", a+"x", map[string]any{"sku": "rare"}); st != 401 {
		t.Fatalf("forged session: %d", st)
	}
	for _, bad := range []any{map[string]any{"sku": "rare", "quantity": 0.5}, map[string]any{"sku": "rare", "price": 1},
		map[string]any{"sku": "a b"}, map[string]any{"sku": "rare", "quantity": 100}} {
		if st, _, _ := s.do("POST", "/api/v1/orders", a, bad); st != 400 {
			t.Fatalf("%v: %d", bad, st)
		}
	}
}

func TestEndToEndIdempotencyKey(t *testing.T) {
	s := newStack(t, stackOpts{})
	s.putSKU("idem", 5)
	tok := s.loginAs("carol")
	st1, b1, _ := s.do("POST", "/api/v1/orders", tok, map[string]any{"sku": "idem"}, "Idempotency-Key", "k-1")
	st2, b2, _ := s.do("POST", "/api/v1/orders", tok, map[string]any{"sku": "idem"}, "Idempotency-Key", "k-1")
	var c1, c2 created
	_ = json.Unmarshal(b1, &c1)
	_ = json.Unmarshal(b2, &c2)
	if st1 != 201 || st2 != 200 || c1.OutTradeNo != c2.OutTradeNo || c2.Payment.PaySign == "" {
		t.Fatalf("retry: %d %s / %d %s", st1, b1, st2, b2)
	}
	if v := s.sku("idem"); v.Reserved != 1 {
		t.Fatalf("a retry reserved twice: %+v", v)
	}
	// Fresh payment parameters: same prepay_id, new nonce and signature.
	st, b, _ := s.do("POST", "/api/v1/orders/"+c1.OutTradeNo+"/payment", tok, nil)
	var p created
	_ = json.Unmarshal(b, &p)
	if st != 200 || p.Payment.Package != c1.Payment.Package || p.Payment.NonceStr == c1.Payment.NonceStr {
		t.Fatalf("payment: %d %s", st, b)
	}
}

// TestEndToEndIdempotencyKeyRace: one buyer races the same keys with other
// SKUs and quantities. Every answer is the key's one order with the
// request's own parameters, or 422 IDEMPOTENCY_KEY_REUSED, or a stock
// refusal; stock in memory equals stock on disk equals the orders.
func TestEndToEndIdempotencyKeyRace(t *testing.T) {
	s := newStack(t, stackOpts{})
	s.putSKU("race-a", 150)
	s.putSKU("race-b", 150)
	tok := s.loginAs("mallory")
	type body struct {
		SKU      string `json:"sku"`
		Quantity int64  `json:"quantity"`
	}
	variants := []body{{"race-a", 1}, {"race-a", 99}, {"race-b", 1}, {"race-a", 2}}
	const keys, perKey = 4, 60
	type result struct {
		req  body
		st   int
		resp []byte
	}
	results := make([][]result, keys)
	var wg sync.WaitGroup
	for k := 0; k < keys; k++ {
		results[k] = make([]result, perKey)
		for i := 0; i < perKey; i++ {
			wg.Add(1)
			go func(k, i int) {
				defer wg.Done()
				req := variants[(i+k)%len(variants)]
				st, b, _ := s.do("POST", "/api/v1/orders", tok, req, "Idempotency-Key", fmt.Sprintf("race-%d", k))
				results[k][i] = result{req, st, b}
			}(k, i)
		}
	}
	wg.Wait()
	held := map[string]int64{}
	for k := 0; k < keys; k++ {
		var otn string
		var own body
		for _, r := range results[k] {
			var v struct {
				created
				SKU      string `json:"sku"`
				Quantity int64  `json:"quantity"`
				Error    struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			_ = json.Unmarshal(r.resp, &v)
			switch r.st {
			case 200, 201:
				if v.SKU != r.req.SKU || v.Quantity != r.req.Quantity {
					t.Fatalf("key %d: asked %+v, answered %d %s", k, r.req, r.st, r.resp)
				}
				if otn != "" && (v.OutTradeNo != otn || own != r.req) {
					t.Fatalf("key %d: two orders or parameters: %s %+v / %s %+v", k, otn, own, v.OutTradeNo, r.req)
				}
				otn, own = v.OutTradeNo, r.req
			case 422:
				if v.Error.Code != "IDEMPOTENCY_KEY_REUSED" {
					t.Fatalf("key %d: 422 %s", k, r.resp)
				}
			case 409:
				if c := v.Error.Code; c != "LIMIT_EXCEEDED" && c != "SOLD_OUT" && c != "ORDER_IN_PROGRESS" {
					t.Fatalf("key %d: 409 %s", k, r.resp)
				}
			default:
				t.Fatalf("key %d: %d %s", k, r.st, r.resp)
			}
		}
		if otn != "" {
			held[own.SKU] += own.Quantity
			// Every 422 was for other parameters than the order's.
			for _, r := range results[k] {
				if r.st == 422 && r.req == own {
					t.Fatalf("key %d: its own parameters refused", k)
				}
			}
		}
	}
	for _, sku := range []string{"race-a", "race-b"} {
		v := s.sku(sku)
		var disk int64
		_ = s.st.Reservations(sku, func(_ string, r store.Reservation) error { disk += r.Quantity; return nil })
		if v.Reserved != held[sku] || disk != held[sku] || held[sku] > 2 {
			t.Fatalf("%s: memory %d, disk %d, orders %d (per-buyer limit 2)", sku, v.Reserved, disk, held[sku])
		}
	}
}

func TestEndToEndTimeoutClosesAndReleasesStock(t *testing.T) {
	s := newStack(t, stackOpts{})
	s.putSKU("ttl", 1)
	tok := s.loginAs("dave")
	st, c, b := s.order(tok, "ttl")
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	s.clock.advance(16 * time.Minute)
	eventually(t, "the order closes at its TTL", func() bool { return s.get(tok, c.OutTradeNo).State == "CLOSED" })
	eventually(t, "stock comes back", func() bool { return s.sku("ttl").Left == 1 })
	// WeChat closed it too: paying now is refused.
	if code := s.simPay(c.Payment.Package, s.openid(tok)); code != 409 {
		t.Fatalf("paying a closed order: %d", code)
	}
}

func TestEndToEndQueryWhenNotificationsAreLost(t *testing.T) {
	s := newStack(t, stackOpts{deadNotifyURL: true})
	s.putSKU("q", 1)
	tok := s.loginAs("erin")
	st, c, b := s.order(tok, "q")
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	if code := s.simPay(c.Payment.Package, s.openid(tok)); code != 201 {
		t.Fatalf("sim pay: %d", code)
	}
	time.Sleep(100 * time.Millisecond)
	if s.get(tok, c.OutTradeNo).State != "PREPAID" {
		t.Fatal("paid without a notification or a query")
	}
	s.clock.advance(61 * time.Second)
	eventually(t, "the active query finds the payment", func() bool { return s.get(tok, c.OutTradeNo).State == "PAID" })
}
