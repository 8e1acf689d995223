package simjudge

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-pay/gopay"
	gpwechat "github.com/go-pay/gopay/wechat"

	"github.com/wxpayd/wxpayd/bench/sim"
)

// TestGopayJudgesAPIv2Orders: gopay's APIv2 client against the simulator's
// APIv2 after unifiedorder — orderquery, closeorder, /secapi/pay/refund
// over TLS with the merchant's API certificate (apiclient_cert.pem), and
// refundquery — verifying every reply's sign itself; and gopay decrypts the
// simulator's refund notification (req_info).
func TestGopayJudgesAPIv2Orders(t *testing.T) {
	t.Parallel()
	s := startSim(t, func(c *sim.Config) { c.RefundDelay = 10 * time.Millisecond })
	id := s.Identity()
	key := string(id.APIv2Key)
	refunds := make(chan *gpwechat.RefundNotify, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wxpay/v2/refund-notify" {
			n, err := gpwechat.ParseRefundNotify(r)
			if err != nil {
				w.WriteHeader(400)
				return
			}
			info, err := gpwechat.DecryptRefundNotifyReqInfo(n.ReqInfo, key)
			if err != nil || n.Appid != id.AppID || n.MchId != id.MchID {
				w.WriteHeader(400)
				return
			}
			refunds <- info
		} else if _, err := io.Copy(io.Discard, r.Body); err != nil {
			w.WriteHeader(400)
			return
		}
		io.WriteString(w, "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>")
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	for _, st := range []string{gpwechat.SignType_MD5, gpwechat.SignType_HMAC_SHA256} {
		t.Run(st, func(t *testing.T) {
			c := gpwechat.NewClient(id.AppID, id.MchID, key, true)
			c.BaseURL = s.URL()
			// gopay has one BaseURL for both; the simulator serves /secapi/ on
			// its TLS listener.
			tlsc := gpwechat.NewClient(id.AppID, id.MchID, key, true)
			tlsc.BaseURL = s.TLSURL()
			keyDER, err := x509.MarshalPKCS8PrivateKey(id.MerchantKey)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlsc.AddCertPemFileContent(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.MerchantCert.Raw}),
				pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
				t.Fatal(err)
			}
			verify := func(what string, rsp any) {
				t.Helper()
				if ok, err := gpwechat.VerifySign(key, st, rsp); err != nil || !ok {
					t.Fatalf("gopay rejects the sign of the %s reply: %v", what, err)
				}
			}
			otn := "GP2ORD" + st[:3]
			order := func(otn string) string {
				bm := make(gopay.BodyMap)
				bm.Set("nonce_str", "5K8264ILTKCH16CQ2502SI8ZNMTM67VS").Set("body", "gopay APIv2").Set("out_trade_no", otn).
					Set("total_fee", 88).Set("spbill_create_ip", "127.0.0.1").Set("notify_url", srv.URL+"/wxpay/v2/notify").
					Set("trade_type", "JSAPI").Set("sign_type", st).Set("openid", "oGopay2")
				rsp, err := c.UnifiedOrder(ctx, bm)
				if err != nil || rsp.ResultCode != "SUCCESS" {
					t.Fatalf("unifiedorder: %+v %v", rsp, err)
				}
				verify("unifiedorder", rsp)
				return rsp.PrepayId
			}
			query := func(otn string) *gpwechat.QueryOrderResponse {
				bm := make(gopay.BodyMap)
				bm.Set("nonce_str", "n1").Set("out_trade_no", otn).Set("sign_type", st)
				rsp, _, err := c.QueryOrder(ctx, bm)
				if err != nil || rsp.ReturnCode != "SUCCESS" {
					t.Fatalf("orderquery: %+v %v", rsp, err)
				}
				verify("orderquery", rsp)
				return rsp
			}
			// Close an unpaid order.
			closed := otn + "C"
			order(closed)
			if q := query(closed); q.TradeState != "NOTPAY" || q.TotalFee != "88" {
				t.Fatalf("query %+v", q)
			}
			bm := make(gopay.BodyMap)
			bm.Set("nonce_str", "n2").Set("out_trade_no", closed).Set("sign_type", st)
			crsp, err := c.CloseOrder(ctx, bm)
			if err != nil || crsp.ResultCode != "SUCCESS" {
				t.Fatalf("closeorder: %+v %v", crsp, err)
			}
			verify("closeorder", crsp)
			if q := query(closed); q.TradeState != "CLOSED" {
				t.Fatalf("after close %+v", q)
			}
			// Pay one and refund it over client-certificate TLS.
			paid := otn + "P"
			txn := simPay(t, s, order(paid), "oGopay2")
			if q := query(paid); q.TradeState != "SUCCESS" || q.TransactionId != txn || q.Openid != "oGopay2" {
				t.Fatalf("query paid %+v", q)
			}
			rbm := make(gopay.BodyMap)
			rbm.Set("nonce_str", "n3").Set("out_trade_no", paid).Set("out_refund_no", paid+"R1").Set("total_fee", 88).
				Set("refund_fee", 30).Set("notify_url", srv.URL+"/wxpay/v2/refund-notify").Set("sign_type", st)
			rrsp, _, err := tlsc.Refund(ctx, rbm)
			if err != nil || rrsp.ResultCode != "SUCCESS" || rrsp.RefundId == "" || rrsp.RefundFee != "30" {
				t.Fatalf("refund: %+v %v", rrsp, err)
			}
			verify("refund", rrsp)
			// The plain listener has no client certificate to check: gopay's
			// refund through it is refused.
			if bad, _, err := c.Refund(ctx, rbm); err == nil && bad.ReturnCode != "FAIL" {
				t.Fatalf("a refund without the certificate: %+v", bad)
			}
			select {
			case n := <-refunds:
				if n.OutRefundNo != paid+"R1" || n.RefundStatus != "SUCCESS" || n.RefundFee != "30" || n.RefundId != rrsp.RefundId {
					t.Fatalf("refund notification %+v", n)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no APIv2 refund notification")
			}
			qbm := make(gopay.BodyMap)
			qbm.Set("nonce_str", "n4").Set("out_refund_no", paid+"R1").Set("sign_type", st)
			qr, _, err := c.QueryRefund(ctx, qbm)
			if err != nil || qr.ResultCode != "SUCCESS" || qr.RefundCount != "1" || qr.OutTradeNo != paid {
				t.Fatalf("refundquery: %+v %v", qr, err)
			}
			verify("refundquery", qr)
		})
	}
}
