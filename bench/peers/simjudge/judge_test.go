package simjudge

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-pay/gopay"
	gpwechat "github.com/go-pay/gopay/wechat"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/downloader"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"

	"github.com/wxpayd/wxpayd/bench/sim"
)

// The official SDKs judge the simulator: wechatpay-go's client talks to it
// (through a transport that rewrites https://api.mch.weixin.qq.com to the
// simulator) and verifies the signature of every answer itself;
// wechatpay-go's notify handler verifies and decrypts its notifications;
// gopay verifies its APIv2 answers and notifications.

var (
	idOnce sync.Once
	ident  *sim.Identity
	idErr  error
)

func identity(t *testing.T) *sim.Identity {
	t.Helper()
	idOnce.Do(func() { ident, idErr = sim.NewIdentity(sim.KeygenOptions{}) })
	if idErr != nil {
		t.Fatal(idErr)
	}
	return ident
}

// startSim runs a simulator on 127.0.0.1:0 on the system clock (the SDK
// checks answer timestamps against time.Now).
func startSim(t *testing.T, mod func(*sim.Config)) *sim.Server {
	t.Helper()
	cfg := sim.Config{Identity: identity(t), Listen: "127.0.0.1:0", NotifySpeedup: 1000, RefundDelay: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

// rewrite sends every request to the simulator, keeping path and query
// (which the SDK has already signed).
type rewrite struct{ addr string }

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme = "http"
	req.URL.Host = r.addr
	req.Host = r.addr
	return http.DefaultTransport.RoundTrip(req)
}

// sdkClient returns wechatpay-go's client in the given verification mode.
func sdkClient(t *testing.T, s *sim.Server, mode string) *core.Client {
	t.Helper()
	id := s.Identity()
	opts := []core.ClientOption{option.WithHTTPClient(&http.Client{Transport: rewrite{s.Addr()}, Timeout: 10 * time.Second})}
	switch mode {
	case sim.ModePublicKey:
		opts = append(opts, option.WithWechatPayPublicKeyAuthCipher(
			id.MchID, id.MerchantSerial, id.MerchantKey, id.PublicKeyID, &id.WechatPayKey.PublicKey))
	case sim.ModeCertificate:
		opts = append(opts,
			option.WithMerchantCredential(id.MchID, id.MerchantSerial, id.MerchantKey),
			option.WithWechatPayCertificate([]*x509.Certificate{id.PlatformCert}))
	}
	c, err := core.NewClient(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// notifyVerifier accepts what the mode signs with.
func notifyVerifier(id *sim.Identity, mode string) auth.Verifier {
	certs := core.NewCertificateMapWithList([]*x509.Certificate{id.PlatformCert})
	switch mode {
	case sim.ModePublicKey:
		return verifiers.NewSHA256WithRSAPubkeyVerifier(id.PublicKeyID, id.WechatPayKey.PublicKey)
	case sim.ModeCertificate:
		return verifiers.NewSHA256WithRSAVerifier(certs)
	default:
		return verifiers.NewSHA256WithRSACombinedVerifier(certs, id.PublicKeyID, id.WechatPayKey.PublicKey)
	}
}

// received is one notification the SDK handler accepted.
type received struct {
	event  string
	tx     payments.Transaction
	refund map[string]any
}

// sdkMerchant is a notification endpoint whose handler is wechatpay-go's
// notify.Handler; it answers 200 when ParseNotifyRequest succeeds and 400
// otherwise.
func sdkMerchant(t *testing.T, id *sim.Identity, mode string) (string, <-chan received, *int64Counter) {
	t.Helper()
	h := notify.NewNotifyHandler(string(id.APIv3Key), notifyVerifier(id, mode))
	ch := make(chan received, 64)
	rejected := &int64Counter{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var content map[string]any
		n, err := h.ParseNotifyRequest(r.Context(), r, &content)
		if err != nil {
			rejected.add()
			w.WriteHeader(400)
			return
		}
		rc := received{event: n.EventType}
		plain, _ := json.Marshal(content)
		if n.EventType == "TRANSACTION.SUCCESS" {
			if err := json.Unmarshal(plain, &rc.tx); err != nil {
				t.Errorf("transaction %s: %v", plain, err)
			}
		} else {
			rc.refund = content
		}
		w.WriteHeader(200)
		ch <- rc
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/wxpay/v3/notify", ch, rejected
}

type int64Counter struct {
	mu sync.Mutex
	n  int64
}

func (c *int64Counter) add() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *int64Counter) get() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func wait(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10 s")
		return received{}
	}
}

// simPay confirms a payment through the control API.
func simPay(t *testing.T, s *sim.Server, prepayID, openid string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"prepay_id": prepayID, "openid": openid})
	resp, err := http.Post(s.URL()+"/sim/v1/pay", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 201 {
		t.Fatalf("pay: %d %v", resp.StatusCode, out)
	}
	return out["transaction_id"]
}

func TestWechatpayGoJudgesTheSimulator(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{sim.ModePublicKey, sim.ModeCertificate} {
		t.Run(mode+" mode: prepay, query, pay, notify, refund, close all verify in the SDK", func(t *testing.T) {
			t.Parallel()
			s := startSim(t, func(c *sim.Config) { c.SigningMode = mode })
			id := s.Identity()
			ctx := context.Background()
			client := sdkClient(t, s, mode)
			api := jsapi.JsapiApiService{Client: client}
			notifyURL, notes, rejected := sdkMerchant(t, id, mode)
			otn := "JUDGE" + strings.ToUpper(mode[:4]) + "01"

			resp, res, err := api.Prepay(ctx, jsapi.PrepayRequest{
				Appid: core.String(id.AppID), Mchid: core.String(id.MchID), Description: core.String("Image形象店-深圳腾大-QQ公仔"),
				OutTradeNo: core.String(otn), Attach: core.String("自定义数据"), NotifyUrl: core.String(notifyURL),
				TimeExpire: core.Time(time.Now().Add(time.Hour).Truncate(time.Second)),
				Amount:     &jsapi.Amount{Total: core.Int64(100), Currency: core.String("CNY")},
				Payer:      &jsapi.Payer{Openid: core.String("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")},
			})
			if err != nil {
				t.Fatalf("Prepay: %v", err)
			}
			if res.Response.StatusCode != 200 || resp.PrepayId == nil || len(*resp.PrepayId) != 36 {
				t.Fatalf("Prepay answer %+v", resp)
			}
			tx, _, err := api.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String(otn), Mchid: core.String(id.MchID)})
			if err != nil || *tx.TradeState != "NOTPAY" {
				t.Fatalf("Query NOTPAY: %+v %v", tx, err)
			}

			txnID := simPay(t, s, *resp.PrepayId, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
			n := wait(t, notes)
			if n.event != "TRANSACTION.SUCCESS" || *n.tx.TransactionId != txnID || *n.tx.OutTradeNo != otn ||
				*n.tx.Amount.Total != 100 || *n.tx.TradeState != "SUCCESS" || *n.tx.Attach != "自定义数据" ||
				*n.tx.Payer.Openid != "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" {
				t.Fatalf("notification %+v", n.tx)
			}
			tx, _, err = api.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String(otn), Mchid: core.String(id.MchID)})
			if err != nil || *tx.TradeState != "SUCCESS" || *tx.TransactionId != txnID || tx.SuccessTime == nil {
				t.Fatalf("Query SUCCESS: %+v %v", tx, err)
			}

			refunds := refunddomestic.RefundsApiService{Client: client}
			rf, _, err := refunds.Create(ctx, refunddomestic.CreateRequest{
				OutTradeNo: core.String(otn), OutRefundNo: core.String("R" + otn), Reason: core.String("商品已售完"),
				NotifyUrl: core.String(notifyURL),
				Amount:    &refunddomestic.AmountReq{Refund: core.Int64(40), Total: core.Int64(100), Currency: core.String("CNY")},
			})
			if err != nil || *rf.Status != refunddomestic.STATUS_PROCESSING || *rf.Amount.Refund != 40 {
				t.Fatalf("Refund: %+v %v", rf, err)
			}
			n = wait(t, notes)
			if n.event != "REFUND.SUCCESS" || n.refund["out_refund_no"] != "R"+otn || n.refund["refund_status"] != "SUCCESS" {
				t.Fatalf("refund notification %+v", n)
			}
			rq, _, err := refunds.QueryByOutRefundNo(ctx, refunddomestic.QueryByOutRefundNoRequest{OutRefundNo: core.String("R" + otn)})
			if err != nil || *rq.Status != refunddomestic.STATUS_SUCCESS {
				t.Fatalf("Refund query: %+v %v", rq, err)
			}

			otn2 := otn[:len(otn)-1] + "2"
			if _, _, err := api.Prepay(ctx, jsapi.PrepayRequest{
				Appid: core.String(id.AppID), Mchid: core.String(id.MchID), Description: core.String("x"),
				OutTradeNo: core.String(otn2), NotifyUrl: core.String(notifyURL),
				Amount: &jsapi.Amount{Total: core.Int64(1)}, Payer: &jsapi.Payer{Openid: core.String("o")},
			}); err != nil {
				t.Fatal(err)
			}
			if res, err := api.CloseOrder(ctx, jsapi.CloseOrderRequest{OutTradeNo: core.String(otn2), Mchid: core.String(id.MchID)}); err != nil || res.Response.StatusCode != 204 {
				t.Fatalf("CloseOrder: %v", err)
			}
			tx, _, err = api.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String(otn2), Mchid: core.String(id.MchID)})
			if err != nil || *tx.TradeState != "CLOSED" {
				t.Fatalf("Query CLOSED: %+v %v", tx, err)
			}

			// Errors come back as the SDK's APIError with WeChat's code.
			_, _, err = api.Prepay(ctx, jsapi.PrepayRequest{
				Appid: core.String(id.AppID), Mchid: core.String(id.MchID), Description: core.String("x"),
				OutTradeNo: core.String(otn2), NotifyUrl: core.String(notifyURL + "?q=1"),
				Amount: &jsapi.Amount{Total: core.Int64(1)}, Payer: &jsapi.Payer{Openid: core.String("o")},
			})
			if !core.IsAPIError(err, "PARAM_ERROR") {
				t.Fatalf("want PARAM_ERROR, got %v", err)
			}
			_, _, err = api.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("NOSUCH0001"), Mchid: core.String(id.MchID)})
			if !core.IsAPIError(err, "ORDER_NOT_EXIST") {
				t.Fatalf("want ORDER_NOT_EXIST, got %v", err)
			}
			if r := rejected.get(); r != 0 {
				t.Fatalf("the SDK handler rejected %d genuine notifications", r)
			}
		})
	}
}

func TestWechatpayGoDownloadsCertificates(t *testing.T) {
	t.Parallel()
	s := startSim(t, func(c *sim.Config) { c.SigningMode = sim.ModeCertificate })
	id := s.Identity()
	client := sdkClient(t, s, sim.ModeCertificate)
	d, err := downloader.NewCertificateDownloaderWithClient(context.Background(), client, string(id.APIv3Key))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := d.Get(context.Background(), id.PlatformSerial)
	if !ok || !c.Equal(id.PlatformCert) {
		t.Fatalf("downloaded %v", d.GetAll(context.Background()))
	}
	pk := startSim(t, nil)
	_, err = downloader.NewCertificateDownloaderWithClient(context.Background(), sdkClient(t, pk, sim.ModePublicKey), string(id.APIv3Key))
	if !core.IsAPIError(err, "RESOURCE_NOT_EXISTS") && (err == nil || !strings.Contains(err.Error(), "RESOURCE_NOT_EXISTS")) {
		t.Fatalf("public-key mode download: %v", err)
	}
}

func TestWechatpayGoInMixedMode(t *testing.T) {
	t.Parallel()
	s := startSim(t, func(c *sim.Config) { c.SigningMode = sim.ModeMixed; c.MixedPublicKeyShare = 0.5 })
	id := s.Identity()
	ctx := context.Background()
	// Each client names the key it can verify in Wechatpay-Serial; the
	// simulator answers with that key, as WeChat does during migration.
	for _, mode := range []string{sim.ModePublicKey, sim.ModeCertificate} {
		api := jsapi.JsapiApiService{Client: sdkClient(t, s, mode)}
		for i := range 5 {
			_, _, err := api.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{OutTradeNo: core.String("MIXED00000"), Mchid: core.String(id.MchID)})
			if !core.IsAPIError(err, "ORDER_NOT_EXIST") {
				t.Fatalf("%s client, query %d: %v", mode, i, err)
			}
		}
	}
	// Notifications come signed by both keys; the combined verifier takes both.
	notifyURL, notes, rejected := sdkMerchant(t, id, sim.ModeMixed)
	api := jsapi.JsapiApiService{Client: sdkClient(t, s, sim.ModePublicKey)}
	for i := range 8 {
		otn := "MIXED0000" + string(rune('a'+i))
		resp, _, err := api.Prepay(ctx, jsapi.PrepayRequest{
			Appid: core.String(id.AppID), Mchid: core.String(id.MchID), Description: core.String("x"),
			OutTradeNo: core.String(otn), NotifyUrl: core.String(notifyURL),
			Amount: &jsapi.Amount{Total: core.Int64(1)}, Payer: &jsapi.Payer{Openid: core.String("o")},
		})
		if err != nil {
			t.Fatal(err)
		}
		simPay(t, s, *resp.PrepayId, "o")
		wait(t, notes)
	}
	if r := rejected.get(); r != 0 {
		t.Fatalf("rejected %d", r)
	}
}

func TestWechatpayGoRejectsFaultyCopies(t *testing.T) {
	t.Parallel()
	s := startSim(t, func(c *sim.Config) { c.TamperRate = 1; c.StaleRate = 1 })
	id := s.Identity()
	notifyURL, notes, rejected := sdkMerchant(t, id, sim.ModePublicKey)
	api := jsapi.JsapiApiService{Client: sdkClient(t, s, sim.ModePublicKey)}
	resp, _, err := api.Prepay(context.Background(), jsapi.PrepayRequest{
		Appid: core.String(id.AppID), Mchid: core.String(id.MchID), Description: core.String("x"),
		OutTradeNo: core.String("FAULTY0001"), NotifyUrl: core.String(notifyURL),
		Amount: &jsapi.Amount{Total: core.Int64(1)}, Payer: &jsapi.Payer{Openid: core.String("o")},
	})
	if err != nil {
		t.Fatal(err)
	}
	simPay(t, s, *resp.PrepayId, "o")
	wait(t, notes)
	// The simulator records an answer after the handler has counted it: poll.
	deadline := time.Now().Add(10 * time.Second)
	st := s.Stats()
	for (rejected.get() < 2 || st.Faults["tampered"].Rejected+st.Faults["stale"].Rejected < 2) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		st = s.Stats()
	}
	if rejected.get() != 2 || st.Faults["tampered"].Rejected != 1 || st.Faults["stale"].Rejected != 1 {
		t.Fatalf("SDK rejected %d; stats %+v", rejected.get(), st.Faults)
	}
}

func TestGopayJudgesAPIv2(t *testing.T) {
	t.Parallel()
	s := startSim(t, nil)
	id := s.Identity()
	// A gopay-based merchant endpoint for the APIv2 notification.
	got := make(chan gopay.BodyMap, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bm, err := gpwechat.ParseNotifyToBodyMap(r)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		st := bm.GetString("sign_type")
		if st == "" {
			st = gpwechat.SignType_MD5
		}
		ok, err := gpwechat.VerifySign(string(id.APIv2Key), st, bm)
		if err != nil || !ok {
			w.WriteHeader(400)
			return
		}
		io.WriteString(w, "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>")
		got <- bm
	}))
	t.Cleanup(srv.Close)
	for _, st := range []string{gpwechat.SignType_MD5, gpwechat.SignType_HMAC_SHA256} {
		t.Run("unifiedorder signed "+st+": gopay verifies the answer and the notification", func(t *testing.T) {
			c := gpwechat.NewClient(id.AppID, id.MchID, string(id.APIv2Key), true)
			c.BaseURL = s.URL()
			otn := "GOPAY" + strings.ReplaceAll(st, "-", "")
			bm := make(gopay.BodyMap)
			bm.Set("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS").Set("body", "腾讯充值中心-QQ会员充值").
				Set("out_trade_no", otn).Set("total_fee", 88).Set("spbill_create_ip", "127.0.0.1").
				Set("notify_url", srv.URL+"/wxpay/v2/notify").Set("trade_type", "JSAPI").Set("sign_type", st).
				Set("openid", "oGopay")
			rsp, err := c.UnifiedOrder(context.Background(), bm)
			if err != nil {
				t.Fatal(err)
			}
			if rsp.ReturnCode != "SUCCESS" || rsp.ResultCode != "SUCCESS" || rsp.PrepayId == "" {
				t.Fatalf("reply %+v", rsp)
			}
			ok, err := gpwechat.VerifySign(string(id.APIv2Key), st, rsp)
			if err != nil || !ok {
				t.Fatalf("gopay rejects the reply's sign: %v", err)
			}
			simPay(t, s, rsp.PrepayId, "oGopay")
			select {
			case n := <-got:
				if n.GetString("out_trade_no") != otn || n.GetString("total_fee") != "88" || n.GetString("result_code") != "SUCCESS" {
					t.Fatalf("notification %v", n)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no APIv2 notification")
			}
		})
	}
}

// TestJSCode2Session checks the login endpoint through a plain client with
// the shape the SDKs expect (no SDK in this module wraps it).
func TestJSCode2Session(t *testing.T) {
	t.Parallel()
	s := startSim(t, nil)
	id := s.Identity()
	q := url.Values{"appid": {id.AppID}, "secret": {id.AppSecret}, "js_code": {"code-judge.1"}, "grant_type": {"authorization_code"}}
	resp, err := http.Get("http://" + net.JoinHostPort(strings.Split(s.Addr(), ":")[0], strings.Split(s.Addr(), ":")[1]) + "/sns/jscode2session?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		OpenID     string `json:"openid"`
		SessionKey string `json:"session_key"`
		ErrCode    int    `json:"errcode"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.OpenID != sim.OpenID(id.AppID, "code-judge") || out.SessionKey == "" {
		t.Fatalf("%+v %v", out, err)
	}
}
