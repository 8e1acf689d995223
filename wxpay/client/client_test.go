package client

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

func prepayRequest() *wxpay.PrepayRequest {
	return &wxpay.PrepayRequest{
		AppID:       testAppID,
		Description: "Image形象店-深圳腾大-QQ公仔",
		OutTradeNo:  "1217752501201407033233368018",
		NotifyURL:   "https://www.weixin.qq.com/wxpay/pay.php",
		Amount:      wxpay.Amount{Total: 100, Currency: "CNY"},
		Payer:       wxpay.Payer{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"the zero value is valid", Config{}, true},
		{"an http base URL is allowed for the simulator", Config{BaseURL: "http://127.0.0.1:8080"}, true},
		{"a base URL may carry a path prefix", Config{BaseURL: "https://example.com/sim/"}, true},
		{"another scheme is refused", Config{BaseURL: "ftp://api.mch.weixin.qq.com"}, false},
		{"a base URL with a query is refused", Config{BaseURL: "https://api.mch.weixin.qq.com/?a=b"}, false},
		{"a base URL with an empty query is refused", Config{BaseURL: "https://api.mch.weixin.qq.com/?"}, false},
		{"a base URL with a fragment is refused", Config{BaseURL: "https://api.mch.weixin.qq.com/#x"}, false},
		{"a base URL with user information is refused", Config{BaseURL: "https://u:p@api.mch.weixin.qq.com"}, false},
		{"a base URL without a host is refused", Config{BaseURL: "https:///v3"}, false},
		{"a negative timeout is refused", Config{Timeout: -time.Second}, false},
		{"a negative connection bound is refused", Config{MaxConns: -1}, false},
		{"a negative wait is refused", Config{MaxConnWaitTimeout: -1}, false},
		{"a negative body bound is refused", Config{MaxResponseBodySize: -1}, false},
		{"a user agent with a newline is refused", Config{UserAgent: "a\r\nX-Evil: 1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}

	t.Run("defaults are applied in one place", func(t *testing.T) {
		d := Config{}.withDefaults()
		if d.BaseURL != DefaultBaseURL || d.Timeout != 10*time.Second || d.MaxConns != 64 ||
			d.MaxConnWaitTimeout != time.Second || d.MaxResponseBodySize != 1<<20 {
			t.Fatalf("defaults = %+v", d)
		}
		if !strings.HasPrefix(d.UserAgent, "wxpayd/") || !strings.Contains(d.UserAgent, " Go/") {
			t.Fatalf("user agent %q", d.UserAgent)
		}
	})

	t.Run("New refuses a nil signer or verifier", func(t *testing.T) {
		k := testKeys(t)
		if _, err := New(Config{}, nil, wxpay.NewVerifier(wxpay.NewKeySet(nil))); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("nil signer: %v", err)
		}
		if _, err := New(Config{}, k.signer, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("nil verifier: %v", err)
		}
	})
}

func TestPrepay(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	keys := keySetWith(t, f.keys.a, f.keys.b)
	c := newTestClient(t, f, Config{}, keys)
	req := prepayRequest()
	before := *req

	got, err := c.Prepay(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got.PrepayID != "wx201410272009395522657a690389285100" {
		t.Fatalf("prepay_id = %q", got.PrepayID)
	}
	if *req != before {
		t.Fatal("Prepay modified its request")
	}
	r := f.lastRequest(t)
	if r.authErr != nil {
		t.Fatalf("the server refused the Authorization: %v", r.authErr)
	}
	for h, want := range map[string]string{
		"Accept":           "application/json",
		"Content-Type":     "application/json",
		"Wechatpay-Serial": f.keys.b.serial, // the newest certificate
	} {
		if r.header[h] != want {
			t.Errorf("%s = %q, want %q", h, r.header[h], want)
		}
	}
	if ua := r.header["User-Agent"]; !strings.HasPrefix(ua, "wxpayd/") {
		t.Errorf("User-Agent = %q", ua)
	}
	if r.method != "POST" || r.uri != pathPrepay {
		t.Errorf("request line %s %s", r.method, r.uri)
	}
	var sent wxpay.PrepayRequest
	if err := json.Unmarshal(r.body, &sent); err != nil || sent.MchID != testMchID || sent.OutTradeNo != req.OutTradeNo {
		t.Errorf("body %s (%v)", r.body, err)
	}
}

func TestPrepayRefusesBadRequestsBeforeSending(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := newTestClient(t, f, Config{}, nil)
	for _, tc := range []struct {
		name   string
		mutate func(r *wxpay.PrepayRequest)
	}{
		{"an invalid out_trade_no is refused", func(r *wxpay.PrepayRequest) { r.OutTradeNo = "abc" }},
		{"another merchant's mchid is refused", func(r *wxpay.PrepayRequest) { r.MchID = "1900000000" }},
		{"a missing appid is refused", func(r *wxpay.PrepayRequest) { r.AppID = "" }},
		{"a missing description is refused", func(r *wxpay.PrepayRequest) { r.Description = "" }},
		{"a missing notify_url is refused", func(r *wxpay.PrepayRequest) { r.NotifyURL = "" }},
		{"a missing openid is refused", func(r *wxpay.PrepayRequest) { r.Payer.OpenID = "" }},
		{"a zero amount is refused", func(r *wxpay.PrepayRequest) { r.Amount.Total = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := prepayRequest()
			tc.mutate(r)
			if _, err := c.Prepay(context.Background(), r); !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
		})
	}
	if _, err := c.Prepay(context.Background(), nil); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("nil request: %v", err)
	}
	if n := f.hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
}

func TestQueryByOutTradeNo(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := newTestClient(t, f, Config{}, nil)

	t.Run("the number is path-escaped and the signed URL carries the query", func(t *testing.T) {
		tx, err := c.QueryByOutTradeNo(context.Background(), "ORDER|2024*01-x_y")
		if err != nil {
			t.Fatal(err)
		}
		if tx.OutTradeNo != "ORDER|2024*01-x_y" || tx.TradeState != wxpay.TradeStateSuccess || tx.Amount.Total != 100 {
			t.Fatalf("transaction %+v", tx)
		}
		r := f.lastRequest(t)
		if want := pathOutTradeNo + "ORDER%7C2024%2A01-x_y?mchid=" + testMchID; r.uri != want {
			t.Fatalf("URI %q, want %q", r.uri, want)
		}
		if r.authErr != nil {
			t.Fatal(r.authErr)
		}
		if _, ok := r.header["Content-Type"]; ok {
			t.Fatal("a GET without body carries Content-Type")
		}
	})

	t.Run("invalid numbers are refused before sending", func(t *testing.T) {
		before := f.hits.Load()
		for _, no := range []string{"", "12345", strings.Repeat("1", 33), "order no!", "订单123456"} {
			if _, err := c.QueryByOutTradeNo(context.Background(), no); !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("%q: err = %v", no, err)
			}
		}
		if f.hits.Load() != before {
			t.Fatal("an invalid number reached the server")
		}
	})

	t.Run("an answer for another order is refused", func(t *testing.T) {
		f.setRoute("GET", pathOutTradeNo+"ORDER000002", func(r *recorded) (int, []byte, answerOpts) {
			return 200, []byte(`{"appid":"wx1","mchid":"1230000109","out_trade_no":"ORDER000003","trade_state":"NOTPAY","trade_state_desc":"","attach":"","payer":{"openid":""},"amount":{"total":1}}`), answerOpts{}
		})
		_, err := c.QueryByOutTradeNo(context.Background(), "ORDER000002")
		if !errors.Is(err, ErrBadResponse) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCloseOrder(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := newTestClient(t, f, Config{}, nil)
	if err := c.CloseOrder(context.Background(), "1217752501201407033233368018"); err != nil {
		t.Fatal(err)
	}
	r := f.lastRequest(t)
	if r.uri != pathOutTradeNo+"1217752501201407033233368018/close" || r.method != "POST" {
		t.Fatalf("%s %s", r.method, r.uri)
	}
	if r.authErr != nil {
		t.Fatal(r.authErr)
	}

	t.Run("a 204 whose empty body is unsigned is refused", func(t *testing.T) {
		f.setRoute("POST", pathOutTradeNo+"ORDER000009/close", func(*recorded) (int, []byte, answerOpts) {
			return 204, nil, answerOpts{unsigned: true}
		})
		err := c.CloseOrder(context.Background(), "ORDER000009")
		if !errors.Is(err, ErrUnsignedResponse) || !errors.Is(err, wxpay.ErrMissingHeader) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a 204 signed over another body is refused", func(t *testing.T) {
		f.setRoute("POST", pathOutTradeNo+"ORDER000010/close", func(*recorded) (int, []byte, answerOpts) {
			return 204, nil, answerOpts{signature: mustSign(t, f.keys.a, "{}")}
		})
		err := c.CloseOrder(context.Background(), "ORDER000010")
		if !errors.Is(err, wxpay.ErrBadSignature) {
			t.Fatalf("err = %v", err)
		}
	})
}

// mustSign signs body with a fixed timestamp and nonce that the answer does
// not carry, giving a well-formed but wrong signature.
func mustSign(t testing.TB, k *wxKey, body string) string {
	sig, err := wxpay.SignResponse(k.priv, "1", "x", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestRefunds(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := newTestClient(t, f, Config{}, nil)

	t.Run("a refund is created with CNY by default", func(t *testing.T) {
		req := &wxpay.RefundRequest{OutTradeNo: "1217752501201407033233368018", OutRefundNo: "R-2024|01@a",
			Reason: "商品已售完", Amount: wxpay.RefundAmount{Refund: 100, Total: 100}}
		got, err := c.CreateRefund(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if got.OutRefundNo != "R-2024|01@a" || got.Status != wxpay.RefundStatusProcessing || got.Amount.Refund != 100 {
			t.Fatalf("refund %+v", got)
		}
		if req.Amount.Currency != "" {
			t.Fatal("CreateRefund modified its request")
		}
		if r := f.lastRequest(t); r.authErr != nil || r.uri != pathRefunds {
			t.Fatalf("%s %v", r.uri, r.authErr)
		}
	})

	t.Run("a refund is queried and CLOSE is normalised", func(t *testing.T) {
		got, err := c.QueryRefund(context.Background(), "R-2024|01@a")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != wxpay.RefundStatusClosed {
			t.Fatalf("status %q", got.Status)
		}
		if r := f.lastRequest(t); r.uri != pathRefunds+"/R-2024%7C01@a" || r.authErr != nil {
			t.Fatalf("%s %v", r.uri, r.authErr)
		}
	})

	t.Run("bad refund requests are refused before sending", func(t *testing.T) {
		before := f.hits.Load()
		for name, req := range map[string]*wxpay.RefundRequest{
			"nil":                  nil,
			"no order":             {OutRefundNo: "R1", Amount: wxpay.RefundAmount{Refund: 1, Total: 1}},
			"bad out_refund_no":    {OutTradeNo: "ORDER000001", OutRefundNo: "R 1", Amount: wxpay.RefundAmount{Refund: 1, Total: 1}},
			"refund above total":   {OutTradeNo: "ORDER000001", OutRefundNo: "R1", Amount: wxpay.RefundAmount{Refund: 2, Total: 1}},
			"zero refund":          {OutTradeNo: "ORDER000001", OutRefundNo: "R1", Amount: wxpay.RefundAmount{Total: 1}},
			"invalid out_trade_no": {OutTradeNo: "ab", OutRefundNo: "R1", Amount: wxpay.RefundAmount{Refund: 1, Total: 1}},
		} {
			if _, err := c.CreateRefund(context.Background(), req); !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("%s: err = %v", name, err)
			}
		}
		if _, err := c.QueryRefund(context.Background(), ""); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("empty out_refund_no: %v", err)
		}
		if f.hits.Load() != before {
			t.Fatal("a bad request reached the server")
		}
	})
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := newTestClient(t, f, Config{}, nil)
	for i, tc := range []struct {
		name     string
		status   int
		body     string
		unsigned bool
		code     string
		field    string
	}{
		{"a 400 PARAM_ERROR keeps its detail", 400,
			`{"code":"PARAM_ERROR","message":"参数错误","detail":{"field":"#/properties/payer","value":"sdfsdf","issue":"must be object","location":"body"}}`,
			false, "PARAM_ERROR", "#/properties/payer"},
		{"a 403 OUT_TRADE_NO_USED is decoded", 403, `{"code":"OUT_TRADE_NO_USED","message":"商户订单号重复"}`, false, "OUT_TRADE_NO_USED", ""},
		{"a 429 FREQUENCY_LIMITED is decoded", 429, `{"code":"FREQUENCY_LIMITED","message":"频率超限"}`, false, "FREQUENCY_LIMITED", ""},
		{"a 500 SYSTEM_ERROR is decoded", 500, `{"code":"SYSTEM_ERROR","message":"系统错误"}`, false, "SYSTEM_ERROR", ""},
		{"the old spelling SYSTEMERROR is normalised", 500, `{"code":"SYSTEMERROR","message":"系统错误"}`, false, "SYSTEM_ERROR", ""},
		{"an unsigned error answer is returned but marked", 500, `{"code":"SYSTEM_ERROR","message":"系统错误"}`, true, "SYSTEM_ERROR", ""},
		{"a non-JSON error answer keeps only its status", 502, `<html>bad gateway</html>`, true, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := prepayRequest()
			req.OutTradeNo = "ORDERERR" + string(rune('A'+i))
			f.setRoute("POST", pathPrepay, func(r *recorded) (int, []byte, answerOpts) {
				var p wxpay.PrepayRequest
				_ = json.Unmarshal(r.body, &p)
				if p.OutTradeNo != req.OutTradeNo {
					return 200, []byte(`{"prepay_id":"other"}`), answerOpts{}
				}
				return tc.status, []byte(tc.body), answerOpts{unsigned: tc.unsigned}
			})
			_, err := c.Prepay(context.Background(), req)
			var ae *wxpay.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want an *wxpay.APIError", err)
			}
			if ae.Status != tc.status || ae.Code != tc.code || ae.RequestID != "08F78BB5AF0610D302A8DBB30F0000" {
				t.Fatalf("APIError %+v", ae)
			}
			if tc.field != "" && (ae.Detail == nil || ae.Detail.Field != tc.field || ae.Detail.Location != "body") {
				t.Fatalf("detail %+v", ae.Detail)
			}
			if got := errors.Is(err, ErrUnsignedResponse); got != tc.unsigned {
				t.Fatalf("errors.Is(err, ErrUnsignedResponse) = %v for %v", got, err)
			}
			if strings.Contains(err.Error(), "html") || strings.Contains(err.Error(), "sdfsdf") {
				t.Fatalf("error %q carries the body", err)
			}
			f.assertNoSecrets(t, err)
		})
	}
}

func TestResponseVerification(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := newTestClient(t, f, Config{}, nil)
	for i, tc := range []struct {
		name string
		opts answerOpts
		want []error
	}{
		{"a 2xx without signature headers is refused", answerOpts{unsigned: true},
			[]error{ErrUnsignedResponse, wxpay.ErrMissingHeader}},
		{"a tampered body fails verification", answerOpts{tamper: true},
			[]error{ErrUnsignedResponse, wxpay.ErrBadSignature}},
		{"a stale timestamp is refused", answerOpts{tsOffset: -10 * time.Minute},
			[]error{ErrUnsignedResponse, wxpay.ErrExpired}},
		{"a timestamp from the future is refused", answerOpts{tsOffset: 6 * time.Minute},
			[]error{ErrUnsignedResponse, wxpay.ErrExpired}},
		{"an unknown serial without a refresher is refused", answerOpts{key: testKeys(t).b},
			[]error{ErrUnsignedResponse, wxpay.ErrUnknownSerial}},
		{"a SIGNTEST probe fails like any bad signature", answerOpts{signature: wxpay.SignTestPrefix + "c2lnbmF0dXJl"},
			[]error{ErrUnsignedResponse, wxpay.ErrBadSignatureEncoding}},
		{"another signature type is refused", answerOpts{sigType: "WECHATPAY2-SM2-WITH-SM3"},
			[]error{ErrUnsignedResponse, wxpay.ErrUnsupportedSignatureType}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := prepayRequest()
			req.OutTradeNo = "ORDERSIG" + string(rune('A'+i))
			f.setRoute("POST", pathPrepay, func(r *recorded) (int, []byte, answerOpts) {
				var p wxpay.PrepayRequest
				_ = json.Unmarshal(r.body, &p)
				if p.OutTradeNo != req.OutTradeNo {
					return 200, []byte(`{"prepay_id":"other"}`), answerOpts{}
				}
				return 200, []byte(`{"prepay_id":"wx-forged"}`), tc.opts
			})
			got, err := c.Prepay(context.Background(), req)
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("err = %v, want it to wrap %v", err, w)
				}
			}
			if got.PrepayID != "" {
				t.Errorf("an unverified answer was decoded: %+v", got)
			}
			f.assertNoSecrets(t, err)
		})
	}
}

// slack bounds scheduling delay in timing assertions: the blocked fake never
// answers before cleanup, so any bound well below the call's Timeout shows
// the client did not wait for it, even on a loaded two-core machine.
const slack = 3 * time.Second

func TestTimeoutsAndCancellation(t *testing.T) {
	t.Parallel()

	t.Run("a slow server times out within the configured timeout", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.setRoute("POST", pathPrepay, func(*recorded) (int, []byte, answerOpts) { f.block(); return 200, nil, answerOpts{} })
		c := newTestClient(t, f, Config{Timeout: 200 * time.Millisecond}, nil)
		start := time.Now()
		_, err := c.Prepay(context.Background(), prepayRequest())
		if el := time.Since(start); el > 200*time.Millisecond+slack {
			t.Fatalf("returned after %v", el)
		}
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		f.assertNoSecrets(t, err)
	})

	t.Run("a context deadline earlier than the timeout wins", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.setRoute("POST", pathPrepay, func(*recorded) (int, []byte, answerOpts) { f.block(); return 200, nil, answerOpts{} })
		c := newTestClient(t, f, Config{Timeout: 10 * time.Second}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Prepay(ctx, prepayRequest())
		if el := time.Since(start); el > 150*time.Millisecond+slack {
			t.Fatalf("returned after %v", el)
		}
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrTimeout and DeadlineExceeded", err)
		}
	})

	t.Run("a cancelled context returns promptly", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.setRoute("GET", pathOutTradeNo+"ORDER000001", func(*recorded) (int, []byte, answerOpts) { f.block(); return 200, nil, answerOpts{} })
		c := newTestClient(t, f, Config{Timeout: 10 * time.Second}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			eventually(t, "the request to arrive", func() bool { return f.hits.Load() == 1 })
			cancel()
		}()
		start := time.Now()
		_, err := c.QueryByOutTradeNo(ctx, "ORDER000001")
		if el := time.Since(start); el > slack {
			t.Fatalf("returned after %v", el)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})

	t.Run("an already cancelled context sends nothing", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		c := newTestClient(t, f, Config{}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.CloseOrder(ctx, "ORDER000001"); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if f.hits.Load() != 0 {
			t.Fatal("a request was sent")
		}
	})
}

func TestLimits(t *testing.T) {
	t.Parallel()

	t.Run("a full pool returns ErrOverloaded instead of queueing", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.setRoute("GET", pathOutTradeNo+"ORDER000001", func(*recorded) (int, []byte, answerOpts) {
			f.block()
			return 404, []byte(`{"code":"ORDER_NOT_EXIST","message":"订单不存在"}`), answerOpts{}
		})
		c := newTestClient(t, f, Config{MaxConns: 1, MaxConnWaitTimeout: 50 * time.Millisecond, Timeout: 5 * time.Second}, nil)
		first := make(chan error, 1)
		go func() {
			_, err := c.QueryByOutTradeNo(context.Background(), "ORDER000001")
			first <- err
		}()
		eventually(t, "the first request to hold the only connection", func() bool { return f.hits.Load() == 1 })
		start := time.Now()
		_, err := c.QueryByOutTradeNo(context.Background(), "ORDER000002")
		if !errors.Is(err, ErrOverloaded) {
			t.Fatalf("err = %v, want ErrOverloaded", err)
		}
		if el := time.Since(start); el > 50*time.Millisecond+slack {
			t.Fatalf("waited %v", el)
		}
		f.releaseAll()
		var ae *wxpay.APIError
		if err := <-first; !errors.As(err, &ae) || ae.Code != wxpay.CodeOrderNotExist {
			t.Fatalf("first call: %v", err)
		}
	})

	t.Run("an oversized answer is refused", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.setRoute("POST", pathPrepay, func(*recorded) (int, []byte, answerOpts) {
			return 200, []byte(`{"prepay_id":"` + strings.Repeat("x", 4096) + `"}`), answerOpts{}
		})
		c := newTestClient(t, f, Config{MaxResponseBodySize: 1024}, nil)
		_, err := c.Prepay(context.Background(), prepayRequest())
		if !errors.Is(err, ErrResponseTooLarge) {
			t.Fatalf("err = %v, want ErrResponseTooLarge", err)
		}
		if strings.Contains(err.Error(), "xxxx") {
			t.Fatal("the error carries the body")
		}
	})

	t.Run("a refused connection is a transport error", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		c := newTestClient(t, f, Config{BaseURL: "http://127.0.0.1:1"}, nil, WithDial(nil))
		_, err := c.QueryByOutTradeNo(context.Background(), "ORDER000001")
		if !errors.Is(err, ErrTransport) {
			t.Fatalf("err = %v, want ErrTransport", err)
		}
	})
}

func TestObserverAndShutdown(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	type report struct {
		op     string
		status int
		err    error
	}
	var mu sync.Mutex
	var reports []report
	var total atomic.Int64
	c := newTestClient(t, f, Config{}, nil, WithObserver(func(op string, status int, d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, report{op, status, err})
		total.Add(int64(d))
	}))
	ctx := context.Background()
	_, _ = c.Prepay(ctx, prepayRequest())
	_, _ = c.QueryByOutTradeNo(ctx, "ORDER000001")
	_ = c.CloseOrder(ctx, "ORDER000001")
	_, _ = c.QueryRefund(ctx, "R1")
	_, _ = c.Certificates(ctx, f.keys.aead)
	mu.Lock()
	got := append([]report(nil), reports...)
	mu.Unlock()
	want := []report{{"prepay", 200, nil}, {"query", 200, nil}, {"close", 204, nil}, {"refund.query", 200, nil}, {"certificates", 200, nil}}
	if len(got) != len(want) {
		t.Fatalf("reports %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("report %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if total.Load() <= 0 {
		t.Error("no latency reported")
	}

	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.Close(sctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(sctx); err != nil {
		t.Fatalf("a second Shutdown: %v", err)
	}
	if _, err := c.Prepay(ctx, prepayRequest()); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Shutdown: %v", err)
	}
}
