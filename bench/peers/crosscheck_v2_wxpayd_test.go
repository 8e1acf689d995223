package peers

import (
	"strconv"
	"testing"
	"time"

	"github.com/go-pay/gopay/wechat"

	"github.com/wxpayd/wxpayd/wxpay"
)

// TestGopayVerifiesWxpaydV2PaySign: gopay recomputes the paySign of the
// wx.requestPayment parameters wxpayd gives an APIv2 merchant's buyers.
// wxpayd signs them with wxpay.V2Merchant (the ingress's PaySigner on
// APIv2: ingress's TestEndToEndV2PayAndRefund holds its answers to the
// same signature); this module does not link the actors, so the signer is
// checked here as the ingress calls it: appId, the order's prepay_id, the
// current Unix time and a fresh nonce.
func TestGopayVerifiesWxpaydV2PaySign(t *testing.T) {
	t.Parallel()
	for _, st := range []wxpay.V2SignType{wxpay.V2SignMD5, wxpay.V2SignHMACSHA256} {
		for _, key := range []string{apiV2Key, "qazwsxedcrfvtgbyhnujmikolp111111"} {
			m := &wxpay.V2Merchant{AppID: appID, MchID: "1900000109", Key: newV2Key(t, key), SignType: st}
			for i := range 50 {
				prepay := "wx" + time.Now().Format("20060102150405") + strconv.FormatInt(1_000_000_000_000_000_000+int64(i)*7919, 16)[:14]
				p, err := m.RequestPayment(m.AppID, prepay, time.Now().Unix()+int64(i), wxpay.NewNonce())
				if err != nil {
					t.Fatal(err)
				}
				theirs := wechat.GetMiniPaySign(p.AppID, p.NonceStr, p.Package, p.SignType, p.TimeStamp, key)
				if p.SignType != string(st) || theirs != p.PaySign {
					t.Fatalf("%s: gopay %s, wxpayd %s (%+v)", st, theirs, p.PaySign, p)
				}
			}
		}
	}
}
