package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

func TestAuthorization(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	c := ts.c
	id := ts.Identity()
	path := "/v3/pay/transactions/out-trade-no/A12345678?mchid=" + id.MchID

	t.Run("a correctly signed request passes authentication", func(t *testing.T) {
		c.do("GET", path, nil).wantErr(t, 404, wxpay.CodeOrderNotExist)
	})
	cases := []struct {
		name   string
		tamper func(r *http.Request)
		msg    string
	}{
		{"no Authorization header is 401 SIGN_ERROR", func(r *http.Request) { r.Header.Del("Authorization") }, "格式"},
		{"another scheme is 401 SIGN_ERROR", func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "RSA2048", "SM2", 1))
		}, "格式"},
		{"a bad signature is 401 SIGN_ERROR", func(r *http.Request) {
			a, _ := wxpay.ParseAuthorization(r.Header.Get("Authorization"))
			flip := "A"
			if a.Signature[0] == 'A' {
				flip = "B"
			}
			a.Signature = flip + a.Signature[1:]
			r.Header.Set("Authorization", a.String())
		}, "验签失败"},
		{"a signature over another URL is 401 SIGN_ERROR", func(r *http.Request) {
			r.URL.RawQuery = "mchid=" + id.MchID + "&x=1"
		}, "验签失败"},
		{"a wrong merchant serial is 401 SIGN_ERROR", func(r *http.Request) {
			a, _ := wxpay.ParseAuthorization(r.Header.Get("Authorization"))
			a.SerialNo = "1234ABCD"
			r.Header.Set("Authorization", a.String())
		}, "序列号"},
		{"an unknown mchid is 401 SIGN_ERROR", func(r *http.Request) {
			a, _ := wxpay.ParseAuthorization(r.Header.Get("Authorization"))
			a.MchID = "1999999999"
			r.Header.Set("Authorization", a.String())
		}, "mchid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := c.try("GET", path, nil, tc.tamper)
			if err != nil {
				t.Fatal(err)
			}
			e := a.wantErr(t, 401, wxpay.CodeSignError)
			if !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("message %q lacks %q", e.Message, tc.msg)
			}
		})
	}
	t.Run("a body changed after signing is 401 SIGN_ERROR", func(t *testing.T) {
		body := prepayReq(id, "A1234567", "o1", "https://m.example/n")
		a, err := c.try("POST", "/v3/pay/transactions/jsapi", body, func(r *http.Request) {
			raw, _ := json.Marshal(body)
			raw = append(raw, ' ')
			r.Body = readCloser(raw)
			r.ContentLength = int64(len(raw))
		})
		if err != nil {
			t.Fatal(err)
		}
		a.wantErr(t, 401, wxpay.CodeSignError)
	})
	for _, skew := range []time.Duration{-6 * time.Minute, 6 * time.Minute} {
		t.Run("a timestamp "+skew.String()+" away is 401 with WeChat's 5-minute message", func(t *testing.T) {
			cc := *c
			cc.now = func() time.Time { return ts.clock.Now().Add(skew) }
			e := cc.do("GET", path, nil).wantErr(t, 401, wxpay.CodeSignError)
			if e.Message != "Http头Authorization中的timestamp与发起请求的时间不得超过5分钟" {
				t.Fatalf("message %q", e.Message)
			}
		})
	}
	t.Run("a timestamp 4 minutes old passes", func(t *testing.T) {
		cc := *c
		cc.now = func() time.Time { return ts.clock.Now().Add(-4 * time.Minute) }
		cc.do("GET", path, nil).wantErr(t, 404, wxpay.CodeOrderNotExist)
	})
	t.Run("a wrong method is 405 and signed", func(t *testing.T) {
		c.do("GET", "/v3/pay/transactions/jsapi", nil).wantErr(t, 405, wxpay.CodeInvalidRequest)
	})
	t.Run("an unknown path is 404 RESOURCE_NOT_EXISTS and signed", func(t *testing.T) {
		c.do("GET", "/v3/nothing", nil).wantErr(t, 404, wxpay.CodeResourceNotExists)
	})
	st := ts.Stats()
	if st.Rejected[wxpay.CodeSignError] < 9 {
		t.Fatalf("stats rejected %v", st.Rejected)
	}
}

func TestPrepayValidation(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	id := ts.Identity()
	type m = map[string]any
	cases := []struct {
		name   string
		mod    func(b m)
		field  string
		status int
		code   string
	}{
		{"an out_trade_no of 5 characters", func(b m) { b["out_trade_no"] = "A1234" }, "/out_trade_no", 400, wxpay.CodeParamError},
		{"an out_trade_no of 33 characters", func(b m) { b["out_trade_no"] = strings.Repeat("A", 33) }, "/out_trade_no", 400, wxpay.CodeParamError},
		{"an out_trade_no with a dot", func(b m) { b["out_trade_no"] = "A123.456" }, "/out_trade_no", 400, wxpay.CodeParamError},
		{"an out_trade_no with a Chinese character", func(b m) { b["out_trade_no"] = "A123456订单" }, "/out_trade_no", 400, wxpay.CodeParamError},
		{"a missing out_trade_no", func(b m) { delete(b, "out_trade_no") }, "/out_trade_no", 400, wxpay.CodeParamError},
		{"amount.total 0", func(b m) { b["amount"] = m{"total": 0, "currency": "CNY"} }, "/amount/total", 400, wxpay.CodeParamError},
		{"amount.total negative", func(b m) { b["amount"] = m{"total": -5} }, "/amount/total", 400, wxpay.CodeParamError},
		{"a missing amount", func(b m) { delete(b, "amount") }, "/amount/total", 400, wxpay.CodeParamError},
		{"amount.total as a string", func(b m) { b["amount"] = m{"total": "100"} }, "/amount/total", 400, wxpay.CodeParamError},
		{"currency USD", func(b m) { b["amount"] = m{"total": 1, "currency": "USD"} }, "/amount/currency", 400, wxpay.CodeParamError},
		{"a missing payer.openid", func(b m) { b["payer"] = m{} }, "/payer/openid", 400, wxpay.CodeParamError},
		{"a missing payer", func(b m) { delete(b, "payer") }, "/payer/openid", 400, wxpay.CodeParamError},
		{"a notify_url with ftp", func(b m) { b["notify_url"] = "ftp://m.example/n" }, "/notify_url", 400, wxpay.CodeParamError},
		{"a relative notify_url", func(b m) { b["notify_url"] = "/wxpay/notify" }, "/notify_url", 400, wxpay.CodeParamError},
		{"a notify_url with a query", func(b m) { b["notify_url"] = "https://m.example/n?a=1" }, "/notify_url", 400, wxpay.CodeParamError},
		{"a notify_url of 256 bytes", func(b m) { b["notify_url"] = "https://m.example/" + strings.Repeat("n", 238) }, "/notify_url", 400, wxpay.CodeParamError},
		{"a missing notify_url", func(b m) { delete(b, "notify_url") }, "/notify_url", 400, wxpay.CodeParamError},
		{"a description of 128 bytes", func(b m) { b["description"] = strings.Repeat("d", 128) }, "/description", 400, wxpay.CodeParamError},
		{"a description of 43 Chinese characters (129 bytes)", func(b m) { b["description"] = strings.Repeat("商", 43) }, "/description", 400, wxpay.CodeParamError},
		{"a missing description", func(b m) { delete(b, "description") }, "/description", 400, wxpay.CodeParamError},
		{"a missing appid", func(b m) { delete(b, "appid") }, "/appid", 400, wxpay.CodeParamError},
		{"a missing mchid", func(b m) { delete(b, "mchid") }, "/mchid", 400, wxpay.CodeParamError},
		{"an attach of 129 bytes", func(b m) { b["attach"] = strings.Repeat("a", 129) }, "/attach", 400, wxpay.CodeParamError},
		{"a time_expire that is not RFC 3339", func(b m) { b["time_expire"] = "2026-05-20 13:29:35" }, "/time_expire", 400, wxpay.CodeParamError},
		{"a time_expire with fractional seconds", func(b m) { b["time_expire"] = "2026-05-20T15:29:35.5+08:00" }, "/time_expire", 400, wxpay.CodeParamError},
		{"scene_info without payer_client_ip", func(b m) { b["scene_info"] = m{"device_id": "x"} }, "/scene_info/payer_client_ip", 400, wxpay.CodeParamError},
		{"a body mchid other than the Authorization's", func(b m) { b["mchid"] = "1900000999" }, "/mchid", 400, wxpay.CodeParamError},
		{"another appid", func(b m) { b["appid"] = "wx0000000000000000" }, "", 400, wxpay.CodeAppIDMchIDMismatch},
	}
	for i, tc := range cases {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			b := prepayReq(id, "V"+strings.Repeat("0", 5)+string(rune('a'+i%26))+string(rune('a'+i/26)), "o1", "https://m.example/n")
			tc.mod(b)
			e := ts.c.do("POST", "/v3/pay/transactions/jsapi", b).wantErr(t, tc.status, tc.code)
			if tc.field != "" && (e.Detail == nil || e.Detail.Field != tc.field || e.Detail.Issue == "" || e.Detail.Location != "body") {
				t.Fatalf("detail %+v, want field %s", e.Detail, tc.field)
			}
		})
	}
	t.Run("rejects a body that is not JSON", func(t *testing.T) {
		ts.c.do("POST", "/v3/pay/transactions/jsapi", []byte(`{"appid":`)).wantErr(t, 400, wxpay.CodeParamError)
	})
	t.Run("rejects an empty body", func(t *testing.T) {
		ts.c.do("POST", "/v3/pay/transactions/jsapi", []byte(``)).wantErr(t, 400, wxpay.CodeParamError)
	})
	t.Run("accepts the limits exactly", func(t *testing.T) {
		b := prepayReq(id, strings.Repeat("Z", 32), "o1", "https://m.example/"+strings.Repeat("n", 237))
		b["description"] = strings.Repeat("d", 127)
		b["attach"] = strings.Repeat("a", 128)
		b["time_expire"] = t0.Add(time.Hour).Format(time.RFC3339)
		delete(b["amount"].(m), "currency")
		ts.c.do("POST", "/v3/pay/transactions/jsapi", b).wantOK(t, 200)
		ts.c.do("POST", "/v3/pay/transactions/jsapi", prepayReq(id, "a_-|*9", "o1", "http://127.0.0.1:1/n")).wantOK(t, 200)
	})
	if st := ts.Stats(); st.Rejected[wxpay.CodeParamError] < 20 {
		t.Fatalf("stats %v", st.Rejected)
	}
}

func TestPrepayIdempotency(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	c := ts.c
	id := ts.Identity()
	first := c.prepay("IDEM000001", "oBuyer", "https://m.example/n")

	t.Run("an identical retry gets the same prepay_id", func(t *testing.T) {
		if got := c.prepay("IDEM000001", "oBuyer", "https://m.example/n"); got != first {
			t.Fatalf("retry got %s, first %s", got, first)
		}
	})
	t.Run("a retry with reordered fields and another time_expire is identical", func(t *testing.T) {
		raw := []byte(`{"payer":{"openid":"oBuyer"},"amount":{"currency":"CNY","total":100},"notify_url":"https://m.example/n",` +
			`"out_trade_no":"IDEM000001","description":"Image形象店-深圳腾大-QQ公仔","mchid":"` + id.MchID + `","appid":"` + id.AppID +
			`","time_expire":"` + t0.Add(3*time.Hour).Format(time.RFC3339) + `"}`)
		a := c.do("POST", "/v3/pay/transactions/jsapi", raw)
		a.wantOK(t, 200)
		if !strings.Contains(string(a.body), first) {
			t.Fatalf("got %s", a.body)
		}
	})
	for _, tc := range []struct {
		name string
		mod  func(b map[string]any)
	}{
		{"another amount", func(b map[string]any) { b["amount"] = map[string]any{"total": 101} }},
		{"another payer", func(b map[string]any) { b["payer"] = map[string]any{"openid": "oOther"} }},
		{"another description", func(b map[string]any) { b["description"] = "x" }},
		{"another notify_url", func(b map[string]any) { b["notify_url"] = "https://m.example/other" }},
		{"an attach", func(b map[string]any) { b["attach"] = "x" }},
	} {
		t.Run("a retry with "+tc.name+" is 403 OUT_TRADE_NO_USED", func(t *testing.T) {
			b := prepayReq(id, "IDEM000001", "oBuyer", "https://m.example/n")
			tc.mod(b)
			c.do("POST", "/v3/pay/transactions/jsapi", b).wantErr(t, 403, wxpay.CodeOutTradeNoUsed)
		})
	}
	t.Run("an identical retry after 2 hours renews the prepay_id", func(t *testing.T) {
		ts.clock.Advance(2*time.Hour + time.Second)
		second := c.prepay("IDEM000001", "oBuyer", "https://m.example/n")
		if second == first {
			t.Fatal("prepay_id not renewed")
		}
		if st, code := c.pay(first, "oBuyer"); st != 409 || code != "PREPAY_EXPIRED" {
			t.Fatalf("paying the old prepay_id: %d %s", st, code)
		}
		if st, _ := c.pay(second, "oBuyer"); st != 201 {
			t.Fatalf("paying the new prepay_id: %d", st)
		}
	})
	t.Run("a retry of a paid order is 400 ORDERPAID", func(t *testing.T) {
		c.do("POST", "/v3/pay/transactions/jsapi", prepayReq(id, "IDEM000001", "oBuyer", "https://m.example/n")).
			wantErr(t, 400, wxpay.CodeOrderPaid)
	})
	t.Run("out_trade_no is unique per mchid across APIv3 and the orders count once", func(t *testing.T) {
		if st := ts.Stats(); st.Orders != 1 || st.Rejected[wxpay.CodeOutTradeNoUsed] != 5 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestOrderLifecycle(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.RefundDelay = time.Hour })
	c := ts.c
	id := ts.Identity()
	m := newMerchant(t, ts.Server, nil)

	t.Run("query, pay, query, refund, query: NOTPAY, SUCCESS, REFUND", func(t *testing.T) {
		pid := c.prepay("LIFE000001", "oBuyer", m.url)
		tx := c.query("LIFE000001")
		if tx.TradeState != wxpay.TradeStateNotPay || tx.TradeStateDesc != "订单未支付" || tx.TransactionID != "" ||
			tx.Amount.Total != 100 || tx.AppID != id.AppID || tx.MchID != id.MchID {
			t.Fatalf("NOTPAY answer %+v", tx)
		}
		st, txn := c.pay(pid, "oBuyer")
		if st != 201 || len(txn) != 28 {
			t.Fatalf("pay: %d %s", st, txn)
		}
		a := c.do("GET", "/v3/pay/transactions/id/"+txn+"?mchid="+id.MchID, nil)
		a.wantOK(t, 200)
		if byID, _ := wxpay.DecodeTransaction(a.body); byID.OutTradeNo != "LIFE000001" || byID.TransactionID != txn {
			t.Fatalf("query by id %s", a.body)
		}
		c.do("GET", "/v3/pay/transactions/id/4200000000000000000000000000?mchid="+id.MchID, nil).wantErr(t, 404, wxpay.CodeOrderNotExist)
		tx = c.query("LIFE000001")
		if tx.TradeState != wxpay.TradeStateSuccess || tx.TransactionID != txn || tx.Payer.OpenID != "oBuyer" ||
			tx.TradeType != "JSAPI" || tx.SuccessTime != t0.Format(time.RFC3339) || tx.Amount.PayerTotal != 100 {
			t.Fatalf("SUCCESS answer %+v", tx)
		}
		n := m.next(t)
		if !n.valid || n.tx.TransactionID != txn || n.tx.TradeState != wxpay.TradeStateSuccess {
			t.Fatalf("notification %+v", n)
		}
		c.do("POST", "/v3/refund/domestic/refunds", map[string]any{
			"out_trade_no": "LIFE000001", "out_refund_no": "R1", "amount": map[string]any{"refund": 40, "total": 100, "currency": "CNY"},
		}).wantOK(t, 200)
		if tx = c.query("LIFE000001"); tx.TradeState != wxpay.TradeStateRefund || tx.TradeStateDesc != "订单发生过退款" {
			t.Fatalf("REFUND answer %+v", tx)
		}
	})
	t.Run("close gives 204 and CLOSED; closing again gives 204; paying it is 409", func(t *testing.T) {
		pid := c.prepay("LIFE000002", "oBuyer", m.url)
		a := c.do("POST", "/v3/pay/transactions/out-trade-no/LIFE000002/close", map[string]string{"mchid": id.MchID})
		a.wantOK(t, 204)
		if len(a.body) != 0 {
			t.Fatalf("204 with body %q", a.body)
		}
		if tx := c.query("LIFE000002"); tx.TradeState != wxpay.TradeStateClosed || tx.TradeStateDesc != "订单已关闭" {
			t.Fatalf("CLOSED answer %+v", tx)
		}
		c.do("POST", "/v3/pay/transactions/out-trade-no/LIFE000002/close", map[string]string{"mchid": id.MchID}).wantOK(t, 204)
		if st, code := c.pay(pid, "oBuyer"); st != 409 || code != "ORDER_CLOSED" {
			t.Fatalf("pay closed: %d %s", st, code)
		}
		c.do("POST", "/v3/pay/transactions/jsapi", prepayReq(id, "LIFE000002", "oBuyer", m.url)).wantErr(t, 400, wxpay.CodeOrderClosed)
	})
	t.Run("close of a paid order is 400 ORDERPAID", func(t *testing.T) {
		c.do("POST", "/v3/pay/transactions/out-trade-no/LIFE000001/close", map[string]string{"mchid": id.MchID}).
			wantErr(t, 400, wxpay.CodeOrderPaid)
	})
	t.Run("query and close of an unknown order are 404 ORDER_NOT_EXIST", func(t *testing.T) {
		c.do("GET", "/v3/pay/transactions/out-trade-no/NOSUCH0001?mchid="+id.MchID, nil).wantErr(t, 404, wxpay.CodeOrderNotExist)
		c.do("POST", "/v3/pay/transactions/out-trade-no/NOSUCH0001/close", map[string]string{"mchid": id.MchID}).
			wantErr(t, 404, wxpay.CodeOrderNotExist)
	})
	t.Run("query without mchid, with another mchid, or a bad out_trade_no is 400 PARAM_ERROR", func(t *testing.T) {
		e := c.do("GET", "/v3/pay/transactions/out-trade-no/LIFE000001", nil).wantErr(t, 400, wxpay.CodeParamError)
		if e.Detail.Field != "/mchid" || e.Detail.Location != "query" {
			t.Fatalf("detail %+v", e.Detail)
		}
		c.do("GET", "/v3/pay/transactions/out-trade-no/LIFE000001?mchid=1900000999", nil).wantErr(t, 400, wxpay.CodeParamError)
		e = c.do("GET", "/v3/pay/transactions/out-trade-no/L1?mchid="+id.MchID, nil).wantErr(t, 400, wxpay.CodeParamError)
		if e.Detail.Location != "path" {
			t.Fatalf("detail %+v", e.Detail)
		}
		c.do("POST", "/v3/pay/transactions/out-trade-no/LIFE000001/close", map[string]string{}).wantErr(t, 400, wxpay.CodeParamError)
	})
	t.Run("an unpaid order past time_expire reads CLOSED and cannot be paid", func(t *testing.T) {
		b := prepayReq(id, "LIFE000003", "oBuyer", m.url)
		b["time_expire"] = ts.clock.Now().Add(30 * time.Minute).Format(time.RFC3339)
		a := c.do("POST", "/v3/pay/transactions/jsapi", b)
		a.wantOK(t, 200)
		var r wxpay.PrepayResponse
		json.Unmarshal(a.body, &r)
		ts.clock.Advance(31 * time.Minute)
		if st, code := c.pay(r.PrepayID, "oBuyer"); st != 409 || code != "ORDER_EXPIRED" {
			t.Fatalf("pay expired: %d %s", st, code)
		}
		if tx := c.query("LIFE000003"); tx.TradeState != wxpay.TradeStateClosed {
			t.Fatalf("expired answer %+v", tx)
		}
	})
	t.Run("a time_expire under a minute away is clamped to one minute", func(t *testing.T) {
		b := prepayReq(id, "LIFE000004", "oBuyer", m.url)
		b["time_expire"] = ts.clock.Now().Add(-time.Hour).Format(time.RFC3339)
		a := c.do("POST", "/v3/pay/transactions/jsapi", b)
		a.wantOK(t, 200)
		var r wxpay.PrepayResponse
		json.Unmarshal(a.body, &r)
		ts.clock.Advance(59 * time.Second)
		if st, _ := c.pay(r.PrepayID, "oBuyer"); st != 201 {
			t.Fatalf("pay within the clamped minute: %d", st)
		}
		m.next(t)
	})
}

func TestSimPay(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	c := ts.c
	m := newMerchant(t, ts.Server, nil)
	pid := c.prepay("PAY0000001", "oBuyer", m.url)

	t.Run("another openid is 409 OPENID_MISMATCH", func(t *testing.T) {
		if st, code := c.pay(pid, "oOther"); st != 409 || code != "OPENID_MISMATCH" {
			t.Fatalf("%d %s", st, code)
		}
	})
	t.Run("the payer gets 201 with a transaction_id", func(t *testing.T) {
		if st, txn := c.pay(pid, "oBuyer"); st != 201 || !strings.HasPrefix(txn, "4200") {
			t.Fatalf("%d %s", st, txn)
		}
		m.next(t)
	})
	t.Run("paying again is 409 ORDER_PAID", func(t *testing.T) {
		if st, code := c.pay(pid, "oBuyer"); st != 409 || code != "ORDER_PAID" {
			t.Fatalf("%d %s", st, code)
		}
	})
	t.Run("an unknown prepay_id is 404", func(t *testing.T) {
		if st, _ := c.pay("wx00000000000000000000000000000000000", "oBuyer"); st != 404 {
			t.Fatalf("%d", st)
		}
	})
	t.Run("a prepay_id older than 2 hours is 409 PREPAY_EXPIRED", func(t *testing.T) {
		p2 := c.prepay("PAY0000002", "oBuyer", m.url)
		ts.clock.Advance(2 * time.Hour)
		if st, code := c.pay(p2, "oBuyer"); st != 409 || code != "PREPAY_EXPIRED" {
			t.Fatalf("%d %s", st, code)
		}
	})
	t.Run("a malformed body is 400", func(t *testing.T) {
		if st := c.simPost("/sim/v1/pay", map[string]string{"prepay_id": pid}, nil); st != 400 {
			t.Fatalf("%d", st)
		}
	})
	t.Run("the order view shows the state and the delivery", func(t *testing.T) {
		var v OrderView
		eventually(t, "the acknowledgement", func() bool {
			v = OrderView{}
			return c.simGet("/sim/v1/orders/PAY0000001", &v) == 200 && len(v.Notifications) == 1 && v.Notifications[0].Acknowledged
		})
		if v.TradeState != wxpay.TradeStateSuccess || v.Notifications[0].Attempts[0].Status != 204 || v.Notifications[0].Kind != "genuine" {
			t.Fatalf("view %+v", v)
		}
	})
	if st := ts.Stats(); st.Paid != 1 || st.PayRejected != 3 || st.Notifications.Acknowledged != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.RateLimit = 5 })
	id := ts.Identity()
	for i := range 5 {
		ts.c.do("POST", "/v3/pay/transactions/jsapi", prepayReq(id, "RATE00000"+string(rune('0'+i)), "o", "https://m.example/n")).wantOK(t, 200)
	}
	t.Run("the sixth prepay in one second is 429 FREQUENCY_LIMITED", func(t *testing.T) {
		ts.c.do("POST", "/v3/pay/transactions/jsapi", prepayReq(id, "RATE000009", "o", "https://m.example/n")).
			wantErr(t, 429, wxpay.CodeFrequencyLimited)
	})
	t.Run("query is not limited", func(t *testing.T) {
		ts.c.do("GET", "/v3/pay/transactions/out-trade-no/RATE000000?mchid="+id.MchID, nil).wantOK(t, 200)
	})
	t.Run("a second later prepay works again", func(t *testing.T) {
		ts.clock.Advance(time.Second)
		ts.c.do("POST", "/v3/pay/transactions/jsapi", prepayReq(id, "RATE000009", "o", "https://m.example/n")).wantOK(t, 200)
	})
	t.Run("rate 0 on the command line (RateLimitOff) disables the limit", func(t *testing.T) {
		off := startSim(t, func(c *Config) { c.RateLimit = RateLimitOff })
		for i := range 700 {
			if !off.limiter.allow(id.MchID, t0) {
				t.Fatalf("limited at %d", i)
			}
		}
		def := startSim(t, nil)
		n := 0
		for def.limiter.allow(id.MchID, t0) {
			n++
		}
		if n != DefaultRateLimit {
			t.Fatalf("default burst %d, want %d", n, DefaultRateLimit)
		}
	})
}

func TestCertificates(t *testing.T) {
	t.Parallel()
	t.Run("public-key mode answers 404 RESOURCE_NOT_EXISTS signed with the public key", func(t *testing.T) {
		ts := startSim(t, nil)
		a := ts.c.do("GET", "/v3/certificates", nil)
		a.wantErr(t, 404, wxpay.CodeResourceNotExists)
		if a.header.Get(wxpay.HeaderSerial) != ts.Identity().PublicKeyID {
			t.Fatalf("serial %s", a.header.Get(wxpay.HeaderSerial))
		}
	})
	t.Run("certificate mode lists the platform certificate encrypted with the APIv3 key", func(t *testing.T) {
		ts := startSim(t, func(c *Config) { c.SigningMode = ModeCertificate })
		id := ts.Identity()
		a := ts.c.do("GET", "/v3/certificates", nil)
		a.wantOK(t, 200)
		if a.header.Get(wxpay.HeaderSerial) != id.PlatformSerial {
			t.Fatalf("serial %s", a.header.Get(wxpay.HeaderSerial))
		}
		var r wxpay.CertificatesResponse
		if err := json.Unmarshal(a.body, &r); err != nil || len(r.Data) != 1 {
			t.Fatalf("%s: %v", a.body, err)
		}
		aead, _ := wxpay.NewAEAD(id.APIv3Key)
		pemBytes, err := r.Data[0].EncryptCertificate.Decrypt(aead, nil)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := wxpay.ParseCertificatePEM(pemBytes)
		if err != nil || wxpay.CertificateSerial(cert) != r.Data[0].SerialNo || r.Data[0].SerialNo != id.PlatformSerial ||
			r.Data[0].EncryptCertificate.AssociatedData != "certificate" || !strings.HasSuffix(r.Data[0].ExpireTime, "+08:00") {
			t.Fatalf("certificate %+v: %v", r.Data[0], err)
		}
		// Every answer is signed with the certificate in this mode.
		ts.c.serial = id.PublicKeyID
		if s := ts.c.do("GET", "/v3/pay/transactions/out-trade-no/CERT000001?mchid="+id.MchID, nil).header.Get(wxpay.HeaderSerial); s != id.PlatformSerial {
			t.Fatalf("serial %s", s)
		}
	})
	t.Run("mixed mode signs answers with the public key only when the request names its id", func(t *testing.T) {
		// The share is for notifications: at 1 every notification is signed
		// with the public key, yet answers follow Wechatpay-Serial.
		ts := startSim(t, func(c *Config) { c.SigningMode = ModeMixed; c.MixedPublicKeyShare = 1 })
		id := ts.Identity()
		for _, tc := range []struct{ sent, want string }{
			{id.PublicKeyID, id.PublicKeyID},
			{id.PlatformSerial, id.PlatformSerial},
			{"", id.PlatformSerial},
			{"PUB_KEY_ID_0000000000000000000000000000", id.PlatformSerial}, // not this merchant's key
		} {
			ts.c.serial = tc.sent
			for range 20 {
				if s := ts.c.do("GET", "/v3/certificates", nil).header.Get(wxpay.HeaderSerial); s != tc.want {
					t.Fatalf("sent Wechatpay-Serial %q, signed by %s, want %s", tc.sent, s, tc.want)
				}
			}
		}
	})
}

func TestDropRate(t *testing.T) {
	t.Parallel()
	t.Run("at 1.0 every answer is lost but the request was processed", func(t *testing.T) {
		ts := startSim(t, func(c *Config) { c.DropRate = 1 })
		_, err := ts.c.try("POST", "/v3/pay/transactions/jsapi", prepayReq(ts.Identity(), "DROP000001", "o", "https://m.example/n"), nil)
		if err == nil {
			t.Fatal("an answer arrived")
		}
		var v OrderView
		if st := ts.c.simGet("/sim/v1/orders/DROP000001", &v); st != 200 || v.TradeState != wxpay.TradeStateNotPay {
			t.Fatalf("order after a dropped prepay: %d %+v", st, v)
		}
		if st := ts.Stats(); st.Dropped != 1 || st.Orders != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("at 0 nothing is lost", func(t *testing.T) {
		ts := startSim(t, nil)
		for i := range 20 {
			ts.c.do("GET", "/v3/pay/transactions/out-trade-no/DROP00000"+string(rune('a'+i))+"?mchid="+ts.Identity().MchID, nil)
		}
		if st := ts.Stats(); st.Dropped != 0 {
			t.Fatalf("dropped %d", st.Dropped)
		}
	})
}

func TestBounds(t *testing.T) {
	t.Parallel()
	t.Run("orders beyond MaxOrders are 503 SYSTEM_ERROR", func(t *testing.T) {
		ts := startSim(t, func(c *Config) { c.MaxOrders = 2 })
		id := ts.Identity()
		ts.c.prepay("BOUND00001", "o", "https://m.example/n")
		ts.c.prepay("BOUND00002", "o", "https://m.example/n")
		ts.c.do("POST", "/v3/pay/transactions/jsapi", prepayReq(id, "BOUND00003", "o", "https://m.example/n")).
			wantErr(t, 503, wxpay.CodeSystemError)
		ts.c.prepay("BOUND00001", "o", "https://m.example/n") // a retry of a stored order still works
		if st := ts.Stats(); st.Live.Orders != 2 || st.Rejected[wxpay.CodeSystemError] != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("payments beyond MaxPending notifications in flight are 503", func(t *testing.T) {
		ts := startSim(t, func(c *Config) { c.MaxPending = 1 })
		m := newMerchant(t, ts.Server, func(int) int { return 500 })
		p1 := ts.c.prepay("BOUND00011", "o", m.url)
		p2 := ts.c.prepay("BOUND00012", "o", m.url)
		if st, _ := ts.c.pay(p1, "o"); st != 201 {
			t.Fatalf("first pay %d", st)
		}
		if st, code := ts.c.pay(p2, "o"); st != 503 || code != wxpay.CodeSystemError {
			t.Fatalf("second pay %d %s", st, code)
		}
		var v OrderView
		ts.c.simGet("/sim/v1/orders/BOUND00012", &v)
		if v.TradeState != wxpay.TradeStateNotPay {
			t.Fatalf("refused payment changed the order: %+v", v)
		}
	})
}

func TestLatency(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.Latency = 80 * time.Millisecond })
	start := time.Now()
	ts.c.do("GET", "/v3/certificates", nil)
	if el := time.Since(start); el < 80*time.Millisecond {
		t.Fatalf("answer after %v, latency 80ms", el)
	}
	start = time.Now()
	ts.c.simGet("/sim/v1/stats", nil)
	if el := time.Since(start); el >= 80*time.Millisecond {
		t.Fatalf("the control API was delayed: %v", el)
	}
}

func TestStatsEndpoint(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	m := newMerchant(t, ts.Server, nil)
	pid := ts.c.prepay("STATS00001", "o", m.url)
	ts.c.prepay("STATS00002", "o", m.url)
	ts.c.do("POST", "/v3/pay/transactions/out-trade-no/STATS00002/close", map[string]string{"mchid": ts.Identity().MchID})
	ts.c.pay(pid, "o")
	m.next(t)
	ts.c.do("POST", "/v3/refund/domestic/refunds", refundReq("STATS00001", "SR1", 1, 100))
	var raw map[string]any
	eventually(t, "ack", func() bool { return ts.Stats().Notifications.Acknowledged == 1 })
	if st := ts.c.simGet("/sim/v1/stats", &raw); st != 200 {
		t.Fatalf("%d", st)
	}
	for _, k := range []string{"orders", "paid", "closed", "refunds", "requests", "rejected", "dropped", "notifications",
		"faults", "notify_faults", "live"} {
		if _, ok := raw[k]; !ok {
			t.Fatalf("stats lack %q: %v", k, raw)
		}
	}
	n := raw["notifications"].(map[string]any)
	for _, k := range []string{"created", "sent", "acknowledged", "retried", "failed", "pending", "given_up"} {
		if _, ok := n[k]; !ok {
			t.Fatalf("notification stats lack %q: %v", k, n)
		}
	}
	st := ts.Stats()
	if st.Orders != 2 || st.Paid != 1 || st.Closed != 1 || st.Refunds != 1 || st.Requests["prepay"] != 2 ||
		st.Requests["close"] != 1 || st.Requests["refund"] != 1 || st.Requests["sim_pay"] != 1 ||
		st.Notifications.Created != 1 || st.Notifications.Pending != 0 || st.Live.Orders != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAnswerContentType(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{ModePublicKey, ModeCertificate, ModeMixed} {
		t.Run("in "+mode+" mode every signed answer, the bodiless 204 too, is application/json; charset=utf-8", func(t *testing.T) {
			t.Parallel()
			ts := startSim(t, func(c *Config) { c.SigningMode = mode })
			id := ts.Identity()
			ts.c.prepay("CTYPE00001", "o", "https://m.example/n")
			for _, tc := range []struct {
				name, method, path string
				body               any
				status             int
			}{
				{"close", "POST", pathQueryPrefix + "CTYPE00001/close", map[string]string{"mchid": id.MchID}, 204},
				{"query", "GET", pathQueryPrefix + "CTYPE00001?mchid=" + id.MchID, nil, 200},
				{"an error", "GET", pathQueryPrefix + "CTYPE00002?mchid=" + id.MchID, nil, 404},
			} {
				a := ts.c.do(tc.method, tc.path, tc.body)
				if a.status != tc.status || a.header.Get("Content-Type") != "application/json; charset=utf-8" {
					t.Fatalf("%s: %d Content-Type %q", tc.name, a.status, a.header.Get("Content-Type"))
				}
				if tc.status == 204 && len(a.body) != 0 {
					t.Fatalf("204 with a body %q", a.body)
				}
			}
		})
	}
}

func TestUnknownPaths(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	for _, tc := range []struct {
		name, method, path string
		xml                bool
	}{
		{"an unknown APIv2 path answers APIv2 XML", "POST", "/pay/nosuchapi", true},
		{"an APIv2 path the simulator does not serve answers APIv2 XML", "POST", "/secapi/pay/refund", true},
		{"the root answers APIv2 XML", "GET", "/", true},
		{"an unknown APIv3 path answers signed JSON", "GET", "/v3/nothing", false},
		{"an unknown /sns/ path answers JSON", "GET", "/sns/nothing", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := ts.c.send(tc.method, tc.path, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.xml {
				a, err := ts.c.check(tc.method, tc.path, resp, body)
				if err != nil {
					t.Fatal(err)
				}
				a.wantErr(t, 404, wxpay.CodeResourceNotExists)
				return
			}
			p, err := wxpay.ParseV2XML(body)
			if err != nil || resp.StatusCode != 200 || p["return_code"] != "FAIL" || p["return_msg"] == "" ||
				!strings.HasPrefix(string(body), "<xml>") || !strings.Contains(string(body), "<return_code><![CDATA[FAIL]]></return_code>") {
				t.Fatalf("%d %s %v", resp.StatusCode, body, err)
			}
		})
	}
}

// TestClosePayRace closes and pays the same orders at once: exactly one of
// the two wins each time, and the loser gets WeChat's answer for it.
func TestClosePayRace(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	id := ts.Identity()
	m := newMerchant(t, ts.Server, nil)
	const n = 30
	prepays := make([]string, n)
	for i := range n {
		prepays[i] = ts.c.prepay(fmt.Sprintf("RACE%06d", i), "o", m.url)
	}
	closed, paid := 0, 0
	for i := range n {
		otn := fmt.Sprintf("RACE%06d", i)
		var closeAnswer answer
		var closeErr, payErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			closeAnswer, closeErr = ts.c.try("POST", pathQueryPrefix+otn+"/close", map[string]string{"mchid": id.MchID}, nil)
		})
		wg.Go(func() { _, payErr = ts.Pay(prepays[i], "o") })
		wg.Wait()
		if closeErr != nil {
			t.Fatal(closeErr)
		}
		var pe *PayError
		state := ts.c.ledgerOrder(otn).TradeState
		switch {
		case closeAnswer.status == 204 && errors.As(payErr, &pe) && pe.Code == "ORDER_CLOSED" && state == wxpay.TradeStateClosed:
			closed++
		case payErr == nil && closeAnswer.err != nil && closeAnswer.err.Code == wxpay.CodeOrderPaid && state == wxpay.TradeStateSuccess:
			paid++
		default:
			t.Fatalf("%s: close %d %s, pay %v, state %s", otn, closeAnswer.status, closeAnswer.body, payErr, state)
		}
	}
	for range paid {
		m.next(t)
	}
	t.Run("prepay of a paid or closed order is refused", func(t *testing.T) {
		for i := range n {
			otn := fmt.Sprintf("RACE%06d", i)
			a := ts.c.do("POST", "/v3/pay/transactions/jsapi", prepayReq(id, otn, "o", m.url))
			if ts.c.ledgerOrder(otn).TradeState == wxpay.TradeStateClosed {
				a.wantErr(t, 400, wxpay.CodeOrderClosed)
			} else {
				a.wantErr(t, 400, wxpay.CodeOrderPaid)
			}
		}
	})
	if st := ts.Stats(); st.Paid != uint64(paid) || st.Closed != uint64(closed) {
		t.Fatalf("stats paid %d closed %d; seen %d %d", st.Paid, st.Closed, paid, closed)
	}
}
