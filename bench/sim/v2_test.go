package sim

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

func v2Req(id *Identity, otn, openid, notify string, st wxpay.V2SignType) wxpay.V2UnifiedOrder {
	return wxpay.V2UnifiedOrder{
		AppID: id.AppID, MchID: id.MchID, NonceStr: wxpay.NewNonce(), SignType: st, Body: "腾讯充值中心-QQ会员充值",
		OutTradeNo: otn, TotalFee: 88, SpbillCreateIP: "14.23.150.211", NotifyURL: notify, TradeType: "JSAPI", OpenID: openid,
	}
}

// unifiedorder posts a signed APIv2 request and returns the reply map,
// verified when return_code is SUCCESS.
func unifiedorder(t *testing.T, ts *testSim, params map[string]string, st wxpay.V2SignType, sign bool) map[string]string {
	t.Helper()
	k, _ := wxpay.NewV2Key(ts.Identity().APIv2Key)
	if sign {
		s, err := k.Sign(params, st)
		if err != nil {
			t.Fatal(err)
		}
		params["sign"] = s
	}
	resp, err := http.Post(ts.URL()+"/pay/unifiedorder", "text/xml", bytes.NewReader(wxpay.AppendV2XML(nil, params)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p, err := wxpay.ParseV2XML(b)
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if p["return_code"] == "SUCCESS" {
		if err := k.Verify(p, st); err != nil {
			t.Fatalf("reply sign: %v (%s)", err, b)
		}
	}
	return p
}

func TestV2UnifiedOrder(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	id := ts.Identity()
	m := newMerchant(t, ts.Server, nil)
	for _, st := range []wxpay.V2SignType{wxpay.V2SignMD5, wxpay.V2SignHMACSHA256} {
		t.Run("a "+string(st)+" signed order gets a signed prepay_id and pays with an APIv2 notification", func(t *testing.T) {
			otn := "V2ORDER" + string(st[:3])
			o := v2Req(id, otn, "oV2", m.url, st)
			r := unifiedorder(t, ts, o.Params(), st, true)
			if r["result_code"] != "SUCCESS" || r["trade_type"] != "JSAPI" || len(r["prepay_id"]) != 36 || r["appid"] != id.AppID {
				t.Fatalf("reply %v", r)
			}
			again := unifiedorder(t, ts, v2Req(id, otn, "oV2", m.url, st).Params(), st, true)
			if again["prepay_id"] != r["prepay_id"] {
				t.Fatalf("identical retry %v", again)
			}
			other := v2Req(id, otn, "oV2", m.url, st)
			other.TotalFee = 89
			if x := unifiedorder(t, ts, other.Params(), st, true); x["result_code"] != "FAIL" || x["err_code"] != "OUT_TRADE_NO_USED" {
				t.Fatalf("changed retry %v", x)
			}
			if code, txn := ts.c.pay(r["prepay_id"], "oV2"); code != 201 {
				t.Fatalf("pay %d %s", code, txn)
			}
			a := m.next(t)
			if !a.valid || a.v2["out_trade_no"] != otn || a.v2["total_fee"] != "88" || a.v2["result_code"] != "SUCCESS" {
				t.Fatalf("notification %+v", a)
			}
			n, err := wxpay.DecodeV2PayNotification(a.v2)
			if err != nil || !n.Paid() {
				t.Fatalf("%+v %v", n, err)
			}
			eventually(t, "ack", func() bool {
				var v OrderView
				ts.c.simGet("/sim/v1/orders/"+otn, &v)
				return len(v.Notifications) == 1 && v.Notifications[0].Acknowledged && v.APIv2
			})
		})
	}
	t.Run("a wrong sign is return_code FAIL", func(t *testing.T) {
		p := v2Req(id, "V2BADSIGN1", "o", m.url, "").Params()
		p["sign"] = "0123456789ABCDEF0123456789ABCDEF"
		if r := unifiedorder(t, ts, p, wxpay.V2SignMD5, false); r["return_code"] != "FAIL" || r["return_msg"] != "签名错误" {
			t.Fatalf("%v", r)
		}
	})
	t.Run("a missing openid is LACK_PARAMS", func(t *testing.T) {
		o := v2Req(id, "V2NOOPEN01", "", m.url, "")
		if r := unifiedorder(t, ts, o.Params(), wxpay.V2SignMD5, true); r["result_code"] != "FAIL" || r["err_code"] != "LACK_PARAMS" {
			t.Fatalf("%v", r)
		}
	})
	t.Run("a bad out_trade_no is PARAM_ERROR", func(t *testing.T) {
		o := v2Req(id, "V2.BAD", "o", m.url, "")
		if r := unifiedorder(t, ts, o.Params(), wxpay.V2SignMD5, true); r["err_code"] != "PARAM_ERROR" {
			t.Fatalf("%v", r)
		}
	})
	t.Run("another mch_id or broken XML is return_code FAIL", func(t *testing.T) {
		o := v2Req(id, "V2MCH00001", "o", m.url, "")
		o.MchID = "1999999999"
		if r := unifiedorder(t, ts, o.Params(), wxpay.V2SignMD5, true); r["return_code"] != "FAIL" {
			t.Fatalf("%v", r)
		}
		resp, err := http.Post(ts.URL()+"/pay/unifiedorder", "text/xml", bytes.NewReader([]byte("<xml><a>")))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if p, _ := wxpay.ParseV2XML(b); p["return_code"] != "FAIL" {
			t.Fatalf("%s", b)
		}
	})
	t.Run("an APIv3 prepay cannot reuse an APIv2 out_trade_no", func(t *testing.T) {
		ts.c.do("POST", "/v3/pay/transactions/jsapi", prepayReq(id, "V2ORDERMD5", "oV2", m.url)).wantErr(t, 400, wxpay.CodeOrderPaid)
	})
	if st := ts.Stats(); st.V2Orders != 2 || st.Requests["v2_unifiedorder"] != 11 {
		t.Fatalf("stats %+v", st)
	}
}

func TestV2Tamper(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.TamperRate = 1; c.StaleRate = 1 })
	m := newMerchant(t, ts.Server, nil)
	r := unifiedorder(t, ts, v2Req(ts.Identity(), "V2TAMPER01", "o", m.url, "").Params(), wxpay.V2SignMD5, true)
	ts.c.pay(r["prepay_id"], "o")
	got := collect(t, ts, m, 2) // genuine + tampered; no stale copy for APIv2
	valid := 0
	for _, a := range got {
		if a.valid {
			valid++
		}
	}
	if valid != 1 {
		t.Fatalf("valid %d of %d", valid, len(got))
	}
	m.none(t, 50*time.Millisecond)
}
