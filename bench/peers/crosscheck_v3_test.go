package peers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	wechatv3 "github.com/go-pay/gopay/wechat/v3"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"

	"github.com/wxpayd/wxpayd/wxpay"
)

// authParams is a parsed Authorization header.
type authParams struct {
	scheme string
	params map[string]string
	order  []string
}

// parseAuthorization splits `SCHEME k="v",k="v"` without trusting either
// side's formatter.
func parseAuthorization(t *testing.T, h string) authParams {
	t.Helper()
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok {
		t.Fatalf("Authorization %q has no scheme", h)
	}
	a := authParams{scheme: scheme, params: map[string]string{}}
	for rest != "" {
		k, r, ok := strings.Cut(rest, `="`)
		if !ok {
			t.Fatalf("Authorization %q: no value after %q", h, rest)
		}
		v, r, ok := strings.Cut(r, `"`)
		if !ok {
			t.Fatalf("Authorization %q: unterminated value of %s", h, k)
		}
		if _, dup := a.params[k]; dup {
			t.Fatalf("Authorization %q: %s twice", h, k)
		}
		a.params[k] = v
		a.order = append(a.order, k)
		rest = strings.TrimPrefix(r, ",")
	}
	return a
}

func requestMessage(method, url, ts, nonce string, body []byte) string {
	return method + "\n" + url + "\n" + ts + "\n" + nonce + "\n" + string(body) + "\n"
}

// merchantVerifier is wechatpay-go's public-key verifier holding the
// merchant public key, standing in for WeChat's check of our requests.
func merchantVerifier(t *testing.T) *verifiers.SHA256WithRSAPubkeyVerifier {
	_, pub := merchantKey(t)
	return verifiers.NewSHA256WithRSAPubkeyVerifier("PUB_KEY_ID_MERCHANT", *pub)
}

func TestPeersVerifyOurAuthorization(t *testing.T) {
	t.Parallel()
	body := prepayBody(t)
	k9 := readTestdataString(t, "k9_request_signature.txt")
	_, merchantPub := merchantKey(t)
	cases := []struct {
		name    string
		method  string
		url     string
		body    []byte
		ts      int64
		nonce   string
		wantSig string
	}{
		{"a JSAPI prepay POST with a realistic JSON body verifies", "POST", jsapiPath, body, 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242", ""},
		{"an order query GET with a query string and no body verifies", "GET",
			"/v3/pay/transactions/out-trade-no/1217752501201407033233368018?mchid=" + mchID, nil, 1700000000, "fNoCg8bqkbS2qY6ZHOPjmzMqZbtgRJTq", ""},
		{"a close POST with a short body verifies", "POST",
			"/v3/pay/transactions/out-trade-no/1217752501201407033233368018/close", []byte(`{"mchid":"` + mchID + `"}`), 1700000001, "Zz09AaBbCcDdEeFfGgHhIiJjKkLlMmNn", ""},
		{"the K9 certificates GET verifies and equals the published signature", "GET", "/v3/certificates", nil, 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242", k9},
	}
	wv := merchantVerifier(t)
	for _, b := range backends(t) {
		s := ourSigner(t, b)
		for _, c := range cases {
			t.Run(b.Name()+"/"+c.name, func(t *testing.T) {
				h, err := s.Authorization(c.method, c.url, c.body, c.ts, c.nonce)
				if err != nil {
					t.Fatal(err)
				}
				a := parseAuthorization(t, h)
				ts := strconv.FormatInt(c.ts, 10)
				if a.scheme != "WECHATPAY2-SHA256-RSA2048" || a.params["mchid"] != mchID ||
					a.params["nonce_str"] != c.nonce || a.params["timestamp"] != ts ||
					a.params["serial_no"] != merchantSerial || len(a.params) != 5 {
					t.Fatalf("header fields: %q", h)
				}
				sig := a.params["signature"]
				if c.wantSig != "" && sig != c.wantSig {
					t.Fatalf("signature %s, want the known answer %s", sig, c.wantSig)
				}
				msg := requestMessage(c.method, c.url, ts, c.nonce, c.body)
				if err := wv.Verify(context.Background(), "PUB_KEY_ID_MERCHANT", msg, sig); err != nil {
					t.Errorf("wechatpay-go verifier: %v", err)
				}
				// gopay's verifier builds "a\nb\nc\n"; feeding it the five
				// request lines as three gives the same message.
				if err := wechatv3.V3VerifySignByPK(c.method, c.url, ts+"\n"+c.nonce+"\n"+string(c.body), sig, merchantPub); err != nil {
					t.Errorf("gopay V3VerifySignByPK: %v", err)
				}
				// The oracle is not vacuous: one changed byte fails.
				bad := requestMessage(c.method, c.url+"x", ts, c.nonce, c.body)
				if wv.Verify(context.Background(), "PUB_KEY_ID_MERCHANT", bad, sig) == nil {
					t.Error("wechatpay-go verified a tampered message")
				}
			})
		}
	}
}

func TestWechatpayGoSignerMatchesOursByteForByte(t *testing.T) {
	t.Parallel()
	priv, _ := merchantKey(t)
	theirs := &signers.SHA256WithRSASigner{MchID: mchID, CertificateSerialNo: merchantSerial, PrivateKey: rsaCopy(t, priv)}
	r := rand.New(rand.NewSource(20260918))
	type msgCase struct {
		name, msg, want string
	}
	cases := []msgCase{
		{"the K1 message gives the published signature", "source", readTestdataString(t, "k1_signature.txt")},
		{"an empty message gives the same signature", "", ""},
		{"a lone newline gives the same signature", "\n", ""},
		{"a request message with a UTF-8 body gives the same signature",
			requestMessage("POST", jsapiPath, "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", prepayBody(t)), ""},
		{"the K9 paySign message gives the published signature",
			"wx8888888888888888\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nprepay_id=wx201410272009395522657a690389285100\n",
			readTestdataString(t, "k9_paysign.txt")},
	}
	for i := range 200 {
		n := r.Intn(2048)
		if i%50 == 0 {
			n = 64<<10 + r.Intn(1024) // some larger than the product's pooled buffers
		}
		b := make([]byte, n)
		r.Read(b)
		cases = append(cases, msgCase{fmt.Sprintf("random message %d of %d bytes gives the same signature", i, n), string(b), ""})
	}
	for _, b := range backends(t) {
		s := ourSigner(t, b)
		t.Run(b.Name(), func(t *testing.T) {
			for _, c := range cases {
				res, err := theirs.Sign(context.Background(), c.msg)
				if err != nil {
					t.Fatal(err)
				}
				ours, err := s.Sign([]byte(c.msg))
				if err != nil {
					t.Fatal(err)
				}
				if ours != res.Signature {
					t.Errorf("%s: ours %s…, wechatpay-go %s…", c.name, ours[:16], res.Signature[:16])
				}
				if c.want != "" && ours != c.want {
					t.Errorf("%s: ours %s…, known answer %s…", c.name, ours[:16], c.want[:16])
				}
			}
		})
	}
}

func TestPeersVerifyOurPaySign(t *testing.T) {
	t.Parallel()
	_, merchantPub := merchantKey(t)
	wv := merchantVerifier(t)
	k9 := readTestdataString(t, "k9_paysign.txt")
	cases := []struct {
		name, appID, prepayID string
		ts                    int64
		nonce, want           string
	}{
		{"the K9 documentation sample verifies and equals the known answer", "wx8888888888888888",
			"wx201410272009395522657a690389285100", 1414561699, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", k9},
		{"a fresh prepay id and nonce verify", appID, "wx17172614390127f1a6e3e3a01fb5c30000", 1717261439, wxpay.NewNonce(), ""},
	}
	for _, b := range backends(t) {
		s := ourSigner(t, b)
		for _, c := range cases {
			t.Run(b.Name()+"/"+c.name, func(t *testing.T) {
				p, err := s.RequestPayment(c.appID, c.prepayID, c.ts, c.nonce)
				if err != nil {
					t.Fatal(err)
				}
				if p.SignType != "RSA" || p.Package != "prepay_id="+c.prepayID || p.TimeStamp != strconv.FormatInt(c.ts, 10) {
					t.Fatalf("params %+v", p)
				}
				if c.want != "" && p.PaySign != c.want {
					t.Fatalf("paySign %s, want %s", p.PaySign, c.want)
				}
				msg := p.AppID + "\n" + p.TimeStamp + "\n" + p.NonceStr + "\n" + p.Package + "\n"
				if err := wv.Verify(context.Background(), "PUB_KEY_ID_MERCHANT", msg, p.PaySign); err != nil {
					t.Errorf("wechatpay-go verifier: %v", err)
				}
				if err := wechatv3.V3VerifySignByPK(p.AppID, p.TimeStamp, p.NonceStr+"\n"+p.Package, p.PaySign, merchantPub); err != nil {
					t.Errorf("gopay V3VerifySignByPK: %v", err)
				}
			})
		}
	}
}

func TestGopayPaySignOfJSAPIEqualsOurs(t *testing.T) {
	t.Parallel()
	pemKey := string(readTestdata(t, "merchant_key.pem"))
	gp, err := wechatv3.NewClientV3(mchID, merchantSerial, apiV3Key, pemKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backends(t) {
		s := ourSigner(t, b)
		t.Run(b.Name()+"/gopay's applet paySign equals ours for its own timestamp and nonce", func(t *testing.T) {
			for i := range 5 {
				pid := fmt.Sprintf("wx2017033010242291fcfe0db7001323107%d", i)
				theirs, err := gp.PaySignOfApplet(appID, pid)
				if err != nil {
					t.Fatal(err)
				}
				ts, err := strconv.ParseInt(theirs.TimeStamp, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				ours, err := s.RequestPayment(appID, pid, ts, theirs.NonceStr)
				if err != nil {
					t.Fatal(err)
				}
				if ours.AppID != theirs.AppId || ours.TimeStamp != theirs.TimeStamp || ours.NonceStr != theirs.NonceStr ||
					ours.Package != theirs.Package || ours.SignType != theirs.SignType || ours.PaySign != theirs.PaySign {
					t.Fatalf("ours %+v\ngopay %+v", ours, *theirs)
				}
			}
		})
	}
}

// capture is an http.RoundTripper that records each request and answers it
// as WeChat would, signing the response with our SignResponse.
type capture struct {
	t        *testing.T
	platform wxpay.PrivateKey
	respBody []byte
	tamper   bool

	mu   sync.Mutex
	reqs []captured
}

type captured struct {
	method, uri, authorization, accept, serial string
	body                                       []byte
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		r.Body.Close()
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, captured{
		method: r.Method, uri: r.URL.RequestURI(), authorization: r.Header.Get("Authorization"),
		accept: r.Header.Get("Accept"), serial: r.Header.Get("Wechatpay-Serial"), body: body,
	})
	c.mu.Unlock()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := wxpay.NewNonce()
	sig, err := wxpay.SignResponse(c.platform, ts, nonce, c.respBody)
	if err != nil {
		return nil, err
	}
	if c.tamper {
		sig = "WECHATPAY/SIGNTEST/" + sig
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(wxpay.HeaderTimestamp, ts)
	h.Set(wxpay.HeaderNonce, nonce)
	h.Set(wxpay.HeaderSignature, sig)
	h.Set(wxpay.HeaderSerial, platformKeyID)
	h.Set(wxpay.HeaderSignatureType, wxpay.SignatureType)
	h.Set(wxpay.HeaderRequestID, "08F78BB5AF0610D302A2C6B50420A5F10E-0")
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(c.respBody)), ContentLength: int64(len(c.respBody)), Request: r,
	}, nil
}

// wechatpayGoClient is wechatpay-go's API client with the merchant key,
// verifying responses with the platform public key, over rt (no network).
func wechatpayGoClient(t *testing.T, rt http.RoundTripper) *core.Client {
	t.Helper()
	priv, _ := merchantKey(t)
	_, platformPub := platformKey(t)
	c, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(mchID, merchantSerial, rsaCopy(t, priv), platformKeyID, platformPub),
		option.WithHTTPClient(&http.Client{Transport: rt}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkSameAuthorization regenerates the Authorization of a captured
// request with our Signer, from its timestamp and nonce, and requires the
// same bytes.
func checkSameAuthorization(t *testing.T, s *wxpay.Signer, r captured) {
	t.Helper()
	a := parseAuthorization(t, r.authorization)
	ts, err := strconv.ParseInt(a.params["timestamp"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := s.Authorization(r.method, r.uri, r.body, ts, a.params["nonce_str"])
	if err != nil {
		t.Fatal(err)
	}
	if ours != r.authorization {
		t.Errorf("Authorization differs\nours:          %s\nwechatpay-go:  %s", ours, r.authorization)
	}
}

func TestWechatpayGoClientAgreesWithOurSignerAndSignResponse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const pid = "wx201410272009395522657a690389285100"
	for _, b := range backends(t) {
		s := ourSigner(t, b)
		platform := ourPlatformSigner(t, b)
		t.Run(b.Name()+"/PrepayWithRequestPayment sends our Authorization, accepts our signed response and returns our paySign", func(t *testing.T) {
			rt := &capture{t: t, platform: platform, respBody: []byte(`{"prepay_id":"` + pid + `"}`)}
			svc := jsapi.JsapiApiService{Client: wechatpayGoClient(t, rt)}
			resp, _, err := svc.PrepayWithRequestPayment(ctx, jsapi.PrepayRequest{
				Appid: core.String(appID), Mchid: core.String(mchID),
				Description: core.String("Image形象店-深圳腾大-QQ公仔"), OutTradeNo: core.String("1217752501201407033233368018"),
				Attach: core.String("自定义数据说明"), NotifyUrl: core.String("https://www.weixin.qq.com/wxpay/pay.php"),
				Amount: &jsapi.Amount{Total: core.Int64(100), Currency: core.String("CNY")},
				Payer:  &jsapi.Payer{Openid: core.String("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")},
			})
			if err != nil {
				t.Fatalf("wechatpay-go rejected our signed response: %v", err)
			}
			if len(rt.reqs) != 1 || rt.reqs[0].method != "POST" || rt.reqs[0].uri != jsapiPath {
				t.Fatalf("requests %+v", rt.reqs)
			}
			if rt.reqs[0].serial != platformKeyID {
				t.Errorf("Wechatpay-Serial %q", rt.reqs[0].serial)
			}
			checkSameAuthorization(t, s, rt.reqs[0])
			if *resp.PrepayId != pid {
				t.Fatalf("prepay_id %q", *resp.PrepayId)
			}
			ts, err := strconv.ParseInt(*resp.TimeStamp, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := s.RequestPayment(*resp.Appid, pid, ts, *resp.NonceStr)
			if err != nil {
				t.Fatal(err)
			}
			if ours.PaySign != *resp.PaySign || ours.Package != *resp.Package || ours.SignType != *resp.SignType {
				t.Errorf("ours %+v\nwechatpay-go %s", ours, resp)
			}
		})
		t.Run(b.Name()+"/a GET with a query sends our Authorization and accepts our signed response", func(t *testing.T) {
			rt := &capture{t: t, platform: platform, respBody: transactionPlain("1217752501201407033233368018", "")}
			c := wechatpayGoClient(t, rt)
			res, err := c.Get(ctx, "https://api.mch.weixin.qq.com/v3/pay/transactions/out-trade-no/1217752501201407033233368018?mchid="+mchID)
			if err != nil {
				t.Fatalf("wechatpay-go rejected our signed response: %v", err)
			}
			res.Response.Body.Close()
			if len(rt.reqs) != 1 || rt.reqs[0].body != nil && len(rt.reqs[0].body) != 0 {
				t.Fatalf("requests %+v", rt.reqs)
			}
			checkSameAuthorization(t, s, rt.reqs[0])
		})
		t.Run(b.Name()+"/a response with a SIGNTEST probe signature is rejected by wechatpay-go", func(t *testing.T) {
			rt := &capture{t: t, platform: platform, respBody: []byte(`{"prepay_id":"` + pid + `"}`), tamper: true}
			c := wechatpayGoClient(t, rt)
			if _, err := c.Post(ctx, "https://api.mch.weixin.qq.com"+jsapiPath, map[string]string{"mchid": mchID}); err == nil {
				t.Fatal("wechatpay-go accepted a probe signature: the oracle is vacuous")
			}
		})
	}
}
