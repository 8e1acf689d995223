package wxpay

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func testV2Merchant(t *testing.T, st V2SignType) *V2Merchant {
	t.Helper()
	k, err := NewV2Key([]byte("192006250b4c09247ec02edce69f6a2d"))
	if err != nil {
		t.Fatal(err)
	}
	return &V2Merchant{AppID: "wxd930ea5d5a258f4f", MchID: "10000100", Key: k, SignType: st}
}

// signedReply is what WeChat answers: params signed with the merchant key.
func signedReply(t *testing.T, m *V2Merchant, st V2SignType, p map[string]string) []byte {
	t.Helper()
	sig, err := m.Key.Sign(p, st)
	if err != nil {
		t.Fatal(err)
	}
	p["sign"] = sig
	return AppendV2XML(nil, p)
}

func TestV2MerchantPaySignKAT(t *testing.T) {
	t.Parallel()
	// K7: the official APIv2 paySign sample.
	k, _ := NewV2Key([]byte("qazwsxedcrfvtgbyhnujmikolp111111"))
	m := &V2Merchant{AppID: "wxd678efh567hg6787", MchID: "1", Key: k}
	p, err := m.RequestPayment("wxd678efh567hg6787", "wx2017033010242291fcfe0db70013231072", 1490840662, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS")
	if err != nil || p.PaySign != "22D9B4E54AB1950F51E0649E8810ACD6" || p.SignType != "MD5" {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestV2MerchantUnifiedOrder(t *testing.T) {
	t.Parallel()
	for _, st := range []V2SignType{V2SignMD5, V2SignHMACSHA256} {
		m := testV2Merchant(t, st)
		req := &PrepayRequest{
			Description: "test", OutTradeNo: "01ORDER0001", TimeExpire: "2026-05-20T13:44:35+08:00", Attach: "sku=tea",
			NotifyURL: "https://shop.example.com/wxpay/v2/notify", Amount: Amount{Total: 1999, Currency: "CNY"},
			Payer:  Payer{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
			Detail: &Detail{GoodsDetail: []GoodsDetail{{MerchantGoodsID: "tea", GoodsName: "茶", Quantity: 1, UnitPrice: 1999}}},
		}
		body, err := m.UnifiedOrder(req, "10.0.0.1", "nonce0001")
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseV2XML(body)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"appid": m.AppID, "mch_id": m.MchID, "nonce_str": "nonce0001", "body": "test", "out_trade_no": "01ORDER0001",
			"total_fee": "1999", "spbill_create_ip": "10.0.0.1", "time_expire": "20260520134435", "trade_type": "JSAPI",
			"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "attach": "sku=tea", "notify_url": req.NotifyURL,
			"detail": `{"goods_detail":[{"goods_id":"tea","goods_name":"茶","quantity":1,"price":1999}]}`,
		}
		for k, v := range want {
			if p[k] != v {
				t.Errorf("%s: %s=%q, want %q", st, k, p[k], v)
			}
		}
		if (p["sign_type"] == "HMAC-SHA256") != (st == V2SignHMACSHA256) || p["sign_type"] == "MD5" {
			t.Errorf("%s: sign_type %q", st, p["sign_type"])
		}
		if err := m.Key.Verify(p, st); err != nil {
			t.Errorf("%s: %v", st, err)
		}
		// A buyer IP in the request wins over the configured one.
		req.SceneInfo = &SceneInfo{PayerClientIP: "1.2.3.4"}
		body, _ = m.UnifiedOrder(req, "10.0.0.1", "nonce0002")
		if p, _ := ParseV2XML(body); p["spbill_create_ip"] != "1.2.3.4" {
			t.Errorf("spbill_create_ip %q", p["spbill_create_ip"])
		}
	}
	m := testV2Merchant(t, "")
	bad := []*PrepayRequest{
		nil,
		{Description: "x", OutTradeNo: "01ORDER0001", NotifyURL: "https://a/b", Amount: Amount{Total: 1, Currency: "USD"}, Payer: Payer{OpenID: "o"}},
		{Description: "x", OutTradeNo: "01ORDER0001", NotifyURL: "https://a/b", Amount: Amount{Total: 0}, Payer: Payer{OpenID: "o"}},
		{Description: "x", OutTradeNo: "01ORDER0001", NotifyURL: "https://a/b", Amount: Amount{Total: 1}},
		{Description: "x", OutTradeNo: "bad no", NotifyURL: "https://a/b", Amount: Amount{Total: 1}, Payer: Payer{OpenID: "o"}},
		{Description: "x", OutTradeNo: "01ORDER0001", NotifyURL: "https://a/b", Amount: Amount{Total: 1}, Payer: Payer{OpenID: "o"}, TimeExpire: "soon"},
	}
	for i, r := range bad {
		if _, err := m.UnifiedOrder(r, "10.0.0.1", "n"); err == nil {
			t.Errorf("bad request %d accepted", i)
		}
	}
}

func TestV2MerchantReply(t *testing.T) {
	t.Parallel()
	m := testV2Merchant(t, V2SignHMACSHA256)
	ok := func() map[string]string {
		return map[string]string{"return_code": "SUCCESS", "return_msg": "OK", "appid": m.AppID, "mch_id": m.MchID,
			"nonce_str": "r1", "result_code": "SUCCESS", "prepay_id": "wx201410272009395522657a690389285100", "trade_type": "JSAPI"}
	}
	p, err := m.Reply(signedReply(t, m, V2SignHMACSHA256, ok()))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := DecodeV2Prepay(p); err != nil || r.PrepayID != "wx201410272009395522657a690389285100" {
		t.Fatalf("%+v %v", r, err)
	}
	// An MD5-signed reply verifies too (by the sign's length).
	if _, err := m.Reply(signedReply(t, m, V2SignMD5, ok())); err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(signedReply(t, m, V2SignHMACSHA256, ok())), "wx2014", "wx2015", 1)
	if _, err := m.Reply([]byte(forged)); !errors.Is(err, ErrV2BadSign) {
		t.Fatalf("forged: %v", err)
	}
	unsigned := ok()
	if _, err := m.Reply(AppendV2XML(nil, unsigned)); !errors.Is(err, ErrV2MissingSign) {
		t.Fatalf("unsigned: %v", err)
	}
	other := ok()
	other["mch_id"] = "20000200"
	if _, err := m.Reply(signedReply(t, m, V2SignHMACSHA256, other)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("another merchant: %v", err)
	}
	if _, err := m.Reply([]byte("<html>502</html>")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("not XML: %v", err)
	}
	for _, tc := range []struct {
		msg    string
		status int
		code   string
	}{
		{"签名错误", 401, CodeSignError}, {"系统繁忙，请稍后再试", 500, CodeSystemError},
		{"XML格式错误", 400, CodeParamError}, {"请使用商户API证书访问此接口", 403, CodeNoAuth},
	} {
		_, err := m.Reply(AppendV2XML(nil, map[string]string{"return_code": "FAIL", "return_msg": tc.msg}))
		var e *APIError
		if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("return_msg %q: %v", tc.msg, err)
		}
	}
}

// TestV2ErrorTable holds V2APIError to the table in v2errors.go.
func TestV2ErrorTable(t *testing.T) {
	t.Parallel()
	m := testV2Merchant(t, V2SignMD5)
	for _, tc := range []struct {
		errCode string
		status  int
		code    string
	}{
		{"SYSTEMERROR", http.StatusInternalServerError, CodeSystemError},
		{"BIZERR_NEED_RETRY", http.StatusInternalServerError, CodeSystemError},
		{"BANKERROR", http.StatusInternalServerError, "BANK_ERROR"},
		{"FREQUENCY_LIMITED", http.StatusTooManyRequests, CodeFrequencyLimited},
		{"INVALID_REQ_TOO_MUCH", http.StatusTooManyRequests, CodeFrequencyLimited},
		{"ORDERPAID", http.StatusBadRequest, CodeOrderPaid},
		{"ORDERCLOSED", http.StatusBadRequest, CodeOrderClosed},
		{"ORDERREVERSED", http.StatusBadRequest, CodeOrderClosed},
		{"ORDERNOTEXIST", http.StatusNotFound, CodeOrderNotExist},
		{"REFUNDNOTEXIST", http.StatusNotFound, CodeResourceNotExists},
		{"OUT_TRADE_NO_USED", http.StatusForbidden, CodeOutTradeNoUsed},
		{"NOAUTH", http.StatusForbidden, CodeNoAuth},
		{"NOTENOUGH", http.StatusForbidden, CodeNotEnough},
		{"USER_ACCOUNT_ABNORMAL", http.StatusForbidden, "USER_ACCOUNT_ABNORMAL"},
		{"SIGNERROR", http.StatusUnauthorized, CodeSignError},
		{"APPID_MCHID_NOT_MATCH", http.StatusBadRequest, CodeAppIDMchIDMismatch},
		{"MCHID_NOT_EXIST", http.StatusBadRequest, CodeMchNotExists},
		{"LACK_PARAMS", http.StatusBadRequest, CodeParamError},
		{"XML_FORMAT_ERROR", http.StatusBadRequest, CodeParamError},
		{"REFUND_FEE_MISMATCH", http.StatusBadRequest, "REFUND_FEE_MISMATCH"},
		{"TRADE_OVERDUE", http.StatusBadRequest, "TRADE_OVERDUE"},
		{"", http.StatusBadRequest, "RESULT_FAIL"},
	} {
		p := map[string]string{"return_code": "SUCCESS", "appid": m.AppID, "mch_id": m.MchID, "nonce_str": "x",
			"result_code": "FAIL", "err_code": tc.errCode, "err_code_des": "描述"}
		_, err := m.Reply(signedReply(t, m, V2SignMD5, p))
		var e *APIError
		if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code {
			t.Errorf("%s: got %v, want %d %s", tc.errCode, err, tc.status, tc.code)
		}
		if tc.errCode != "" && !strings.Contains(e.Message, tc.errCode) {
			t.Errorf("%s: the message %q lost the err_code", tc.errCode, e.Message)
		}
	}
}

func TestDecodeV2OrderQuery(t *testing.T) {
	t.Parallel()
	paid := map[string]string{"appid": "wx1", "mch_id": "1", "out_trade_no": "01A000001", "trade_state": "SUCCESS",
		"transaction_id": "4200000001", "total_fee": "1999", "cash_fee": "1999", "openid": "o1", "time_end": "20260520133000",
		"trade_type": "JSAPI", "bank_type": "CMC", "attach": "a"}
	tx, err := DecodeV2OrderQuery(paid)
	if err != nil || tx.Amount.Total != 1999 || tx.Amount.Currency != "CNY" || tx.Payer.OpenID != "o1" ||
		tx.SuccessTime != "2026-05-20T13:30:00+08:00" || tx.TradeState != TradeStateSuccess {
		t.Fatalf("%+v %v", tx, err)
	}
	unpaid := map[string]string{"out_trade_no": "01A000001", "trade_state": "NOTPAY", "total_fee": "1999"}
	if tx, err := DecodeV2OrderQuery(unpaid); err != nil || tx.TradeState != TradeStateNotPay {
		t.Fatalf("%+v %v", tx, err)
	}
	delete(paid, "transaction_id")
	if _, err := DecodeV2OrderQuery(paid); !errors.Is(err, ErrMissingField) {
		t.Fatalf("paid without transaction_id: %v", err)
	}
}

func TestDecodeV2Refunds(t *testing.T) {
	t.Parallel()
	r, err := DecodeV2Refund(map[string]string{"out_refund_no": "R1", "refund_id": "503", "refund_fee": "500",
		"total_fee": "1999", "transaction_id": "42", "out_trade_no": "01A000001"})
	if err != nil || r.Status != RefundStatusProcessing || r.Amount.Refund != 500 || r.Amount.Total != 1999 {
		t.Fatalf("%+v %v", r, err)
	}
	q := map[string]string{"refund_count": "3", "total_fee": "1999", "out_trade_no": "01A000001",
		"out_refund_no_0": "R0", "refund_id_0": "500", "refund_status_0": "SUCCESS", "refund_fee_0": "1",
		"refund_success_time_0": "2026-05-20 13:30:00",
		"out_refund_no_1":       "R1", "refund_id_1": "501", "refund_status_1": "CHANGE", "refund_fee_1": "2",
		"out_refund_no_2": "R2", "refund_id_2": "502", "refund_status_2": "REFUNDCLOSE", "refund_fee_2": "3"}
	for no, want := range map[string]string{"R0": RefundStatusSuccess, "R1": RefundStatusAbnormal, "R2": RefundStatusClosed} {
		r, err := DecodeV2RefundQuery(q, no)
		if err != nil || r.Status != want || r.OutRefundNo != no {
			t.Fatalf("%s: %+v %v", no, r, err)
		}
	}
	if r, _ := DecodeV2RefundQuery(q, "R0"); r.SuccessTime != "2026-05-20T13:30:00+08:00" || r.Amount.Refund != 1 {
		t.Fatalf("R0: %+v", r)
	}
	if _, err := DecodeV2RefundQuery(q, "R9"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("absent refund: %v", err)
	}
	q["refund_status_0"] = "WHATEVER"
	if _, err := DecodeV2RefundQuery(q, "R0"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown status: %v", err)
	}
}
