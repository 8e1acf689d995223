package sim

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

// TestCheckRequestPayment holds the simulated client's wx.requestPayment
// check to WeChat's rules: the paySign verifies for this app with the
// merchant's key, the prepay is this buyer's and payable.
func TestCheckRequestPayment(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	c := ts.c
	m := newMerchant(t, ts.Server, nil)
	id := ts.Identity()
	pid := c.prepay("MP00000001", "oBuyer", m.url)
	mk, err := wxpay.GoBackend.NewPrivateKey(id.MerchantKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := wxpay.NewSigner(id.MchID, id.MerchantSerial, mk)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(appID, prepayID string) RequestPayment {
		p, err := signer.RequestPayment(appID, prepayID, ts.clock.Now().Unix(), wxpay.NewNonce())
		if err != nil {
			t.Fatal(err)
		}
		return RequestPayment{TimeStamp: p.TimeStamp, NonceStr: p.NonceStr, Package: p.Package, SignType: p.SignType, PaySign: p.PaySign}
	}
	v2, err := wxpay.NewV2Key(id.APIv2Key)
	if err != nil {
		t.Fatal(err)
	}
	signV2 := func(st wxpay.V2SignType) RequestPayment {
		p, err := v2.RequestPayment(id.AppID, pid, ts.clock.Now().Unix(), wxpay.NewNonce(), st)
		if err != nil {
			t.Fatal(err)
		}
		return RequestPayment{TimeStamp: p.TimeStamp, NonceStr: p.NonceStr, Package: p.Package, SignType: p.SignType, PaySign: p.PaySign}
	}
	refused := func(t *testing.T, p RequestPayment, openID string, status int, code string) {
		t.Helper()
		_, err := ts.CheckRequestPayment(p, openID)
		var pe *PayError
		if !errors.As(err, &pe) || pe.Status != status || pe.Code != code {
			t.Fatalf("want %d %s, got %v", status, code, err)
		}
	}

	t.Run("a paySign wxpayd signed opens the pay sheet with WeChat's amount", func(t *testing.T) {
		sheet, err := ts.CheckRequestPayment(sign(id.AppID, pid), "oBuyer")
		if err != nil {
			t.Fatal(err)
		}
		if sheet.PrepayID != pid || sheet.Total != 100 || sheet.Currency != "CNY" || sheet.MchID != id.MchID || sheet.Description == "" {
			t.Fatalf("sheet %+v", sheet)
		}
	})
	t.Run("APIv2 paySigns, MD5 and HMAC-SHA256, verify with the APIv2 key", func(t *testing.T) {
		for _, st := range []wxpay.V2SignType{wxpay.V2SignMD5, wxpay.V2SignHMACSHA256} {
			if _, err := ts.CheckRequestPayment(signV2(st), "oBuyer"); err != nil {
				t.Fatalf("%s: %v", st, err)
			}
		}
	})
	t.Run("a tampered paySign is WeChat's signature error", func(t *testing.T) {
		p := sign(id.AppID, pid)
		b := []byte(p.PaySign)
		b[10] ^= 1
		p.PaySign = string(b)
		refused(t, p, "oBuyer", 400, "SIGN_ERROR")
		_, err := ts.CheckRequestPayment(p, "oBuyer")
		if !strings.Contains(err.Error(), ErrMsgPaySign) {
			t.Fatalf("message %v", err)
		}
	})
	t.Run("a paySign over another appId, nonce or signType does not verify", func(t *testing.T) {
		refused(t, sign("wx0000000000000999", pid), "oBuyer", 400, "SIGN_ERROR")
		p := sign(id.AppID, pid)
		p.NonceStr = string(p.NonceStr[0]^1) + p.NonceStr[1:]
		refused(t, p, "oBuyer", 400, "SIGN_ERROR")
		p = sign(id.AppID, pid)
		p.SignType = "MD5"
		refused(t, p, "oBuyer", 400, "SIGN_ERROR")
		p = sign(id.AppID, pid)
		p.PaySign = "not base64!"
		refused(t, p, "oBuyer", 400, "SIGN_ERROR")
	})
	t.Run("missing or malformed parameters are PARAM_ERROR", func(t *testing.T) {
		p := sign(id.AppID, pid)
		p.NonceStr = ""
		refused(t, p, "oBuyer", 400, "PARAM_ERROR")
		p = sign(id.AppID, pid)
		p.Package = strings.TrimPrefix(p.Package, "prepay_id=")
		refused(t, p, "oBuyer", 400, "PARAM_ERROR")
		p = sign(id.AppID, pid)
		p.TimeStamp = "12a"
		refused(t, p, "oBuyer", 400, "PARAM_ERROR")
	})
	t.Run("a prepay WeChat never made is 404", func(t *testing.T) {
		refused(t, sign(id.AppID, "wx00000000000000000000000000000000000"), "oBuyer", 404, "PREPAY_NOT_EXIST")
	})
	t.Run("another buyer cannot pay it", func(t *testing.T) {
		refused(t, sign(id.AppID, pid), "oOther", 409, "OPENID_MISMATCH")
	})
	t.Run("once paid the sheet is not shown again", func(t *testing.T) {
		if st, _ := c.pay(pid, "oBuyer"); st != 201 {
			t.Fatalf("pay %d", st)
		}
		m.next(t)
		refused(t, sign(id.AppID, pid), "oBuyer", 409, "ORDER_PAID")
	})
	t.Run("an expired prepay is refused", func(t *testing.T) {
		p2 := c.prepay("MP00000002", "oBuyer", m.url)
		ts.clock.Advance(2*time.Hour + time.Second)
		refused(t, sign(id.AppID, p2), "oBuyer", 409, "PREPAY_EXPIRED")
	})
	t.Run("over HTTP: the answer is the code and WeChat's message", func(t *testing.T) {
		p := sign(id.AppID, pid)
		// Another first character: a fresh nonce makes a fresh signature,
		// and one in 64 of them starts with "A" already.
		flip := "A"
		if p.PaySign[0] == 'A' {
			flip = "B"
		}
		p.PaySign = flip + p.PaySign[1:]
		var e simError
		st := c.simPost("/sim/v1/requestPayment", requestPaymentBody{RequestPayment: p, OpenID: "oBuyer"}, &e)
		if st != 400 || e.Code != "SIGN_ERROR" || e.Message != ErrMsgPaySign {
			t.Fatalf("%d %+v", st, e)
		}
		if st := c.simPost("/sim/v1/requestPayment", map[string]string{"paySign": "x"}, &e); st != 400 || e.Code != "PARAM_ERROR" {
			t.Fatalf("no openid: %d %+v", st, e)
		}
	})
}

// TestMiniProgramPage: the page and the example's modules are served, the
// modules byte for byte as examples/miniprogram/lib holds them.
func TestMiniProgramPage(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(hc.CloseIdleConnections)
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := hc.Get(ts.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for _, c := range []struct{ path, ctype, contains string }{
		{"/sim/miniprogram/", "text/html; charset=utf-8", `<script src="wx.js">`},
		{"/sim/miniprogram/index.html", "text/html; charset=utf-8", `<script src="shop.js">`},
		{"/sim/miniprogram/wx.js", "text/javascript; charset=utf-8", "wx.requestPayment"},
		{"/sim/miniprogram/shop.js", "text/javascript; charset=utf-8", "createCheckout"},
		{"/sim/miniprogram/shop.css", "text/css; charset=utf-8", ".sheet"},
	} {
		resp, b := get(c.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype || !strings.Contains(string(b), c.contains) {
			t.Errorf("%s: %d %q, %d bytes", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: headers %v", c.path, resp.Header)
		}
	}
	for _, name := range []string{"api.js", "backoff.js", "checkout.js", "present.js"} {
		want, err := os.ReadFile("../../examples/miniprogram/lib/" + name)
		if err != nil {
			t.Fatal(err)
		}
		resp, b := get("/sim/miniprogram/lib/" + name)
		if resp.StatusCode != 200 || string(b) != string(want) {
			t.Errorf("lib/%s: %d, served %d bytes, the file has %d", name, resp.StatusCode, len(b), len(want))
		}
	}
	for _, p := range []string{"/sim/miniprogram/nope.js", "/sim/miniprogram/lib/../embed.go", "/sim/miniprogram/lib/nope.js",
		"/sim/miniprogram/%2e%2e/server.go"} {
		if resp, _ := get(p); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	resp, _ := get("/sim/miniprogram?api=http://127.0.0.1:8080")
	if resp.StatusCode != 301 || !strings.HasSuffix(resp.Header.Get("Location"), "/sim/miniprogram/?api=http://127.0.0.1:8080") {
		t.Errorf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest("POST", ts.URL()+"/sim/miniprogram/", nil)
	if resp, err := hc.Do(req); err != nil || resp.StatusCode != 405 {
		t.Errorf("POST: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
