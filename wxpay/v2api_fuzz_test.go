package wxpay

import (
	"errors"
	"testing"
)

// FuzzV2Reply feeds arbitrary bytes to what wxpayd does with an APIv2
// reply: Reply, then every decoder of the APIv2 order API. Nothing may
// panic; a reply Reply accepts must carry a valid sign; a refusal is an
// *APIError with a status the client classifies.
func FuzzV2Reply(f *testing.F) {
	k, err := NewV2Key([]byte("192006250b4c09247ec02edce69f6a2d"))
	if err != nil {
		f.Fatal(err)
	}
	m := &V2Merchant{AppID: "wxd930ea5d5a258f4f", MchID: "10000100", Key: k}
	sign := func(p map[string]string) []byte {
		sig, _ := m.Key.Sign(p, V2SignMD5)
		p["sign"] = sig
		return AppendV2XML(nil, p)
	}
	base := func(extra map[string]string) map[string]string {
		p := map[string]string{"return_code": "SUCCESS", "appid": m.AppID, "mch_id": m.MchID, "nonce_str": "n", "result_code": "SUCCESS"}
		for k, v := range extra {
			p[k] = v
		}
		return p
	}
	f.Add(sign(base(map[string]string{"prepay_id": "wx1", "trade_type": "JSAPI"})))
	f.Add(sign(base(map[string]string{"out_trade_no": "01A000001", "trade_state": "SUCCESS", "transaction_id": "42", "total_fee": "1"})))
	f.Add(sign(base(map[string]string{"refund_count": "1", "out_refund_no_0": "R", "refund_id_0": "5", "refund_status_0": "CHANGE", "refund_fee_0": "1"})))
	f.Add(sign(base(map[string]string{"out_refund_no": "R", "refund_id": "5", "refund_fee": "1", "total_fee": "1"})))
	f.Add(sign(base(map[string]string{"result_code": "FAIL", "err_code": "SYSTEMERROR"})))
	f.Add([]byte("<xml><return_code>FAIL</return_code><return_msg>签名错误</return_msg></xml>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := m.Reply(body)
		var e *APIError
		switch {
		case err == nil:
			if m.Key.VerifyAuto(p) != nil {
				t.Fatal("an accepted reply does not verify")
			}
			_, _ = DecodeV2Prepay(p)
			_, _ = DecodeV2OrderQuery(p)
			_, _ = DecodeV2Refund(p)
			_, _ = DecodeV2RefundQuery(p, "R")
		case errors.As(err, &e):
			if e.Status < 400 || e.Status > 599 || e.Code == "" {
				t.Fatalf("refusal %+v", e)
			}
		}
	})
}
