package sim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
	wxclient "github.com/wxpayd/wxpayd/wxpay/client"
)

// wxpayd's own clients (wxpay/client) against the simulator: what the server
// will do in `make run` and load tests, with its verification on.
func TestWxpayClient(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{ModePublicKey, ModeCertificate} {
		t.Run(mode+" mode: prepay, query, close, refund and login through wxpay/client", func(t *testing.T) {
			t.Parallel()
			ts := startSim(t, func(c *Config) { c.Clock = SystemClock; c.SigningMode = mode; c.RefundDelay = time.Millisecond })
			id := ts.Identity()
			ctx := context.Background()
			mk, _ := wxpay.GoBackend.NewPrivateKey(id.MerchantKey)
			signer, _ := wxpay.NewSigner(id.MchID, id.MerchantSerial, mk)
			ks := wxpay.NewKeySet(nil)
			if mode == ModePublicKey {
				ks.AddPublicKey(id.PublicKeyID, &id.WechatPayKey.PublicKey)
			} else {
				ks.AddCertificate(id.PlatformCert)
			}
			c, err := wxclient.New(wxclient.Config{BaseURL: ts.URL()}, signer, wxpay.NewVerifier(ks))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			m := newMerchant(t, ts.Server, nil)
			req := &wxpay.PrepayRequest{
				AppID: id.AppID, MchID: id.MchID, Description: "wxpayd", OutTradeNo: "CLIENT0001", NotifyURL: m.url,
				Amount: wxpay.Amount{Total: 300, Currency: "CNY"}, Payer: wxpay.Payer{OpenID: "oClient"},
			}
			pr, err := c.Prepay(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := c.QueryByOutTradeNo(ctx, "CLIENT0001")
			if err != nil || tx.TradeState != wxpay.TradeStateNotPay {
				t.Fatalf("%+v %v", tx, err)
			}
			if _, err := ts.Pay(pr.PrepayID, "oClient"); err != nil {
				t.Fatal(err)
			}
			m.next(t)
			if tx, err = c.QueryByOutTradeNo(ctx, "CLIENT0001"); err != nil || tx.TradeState != wxpay.TradeStateSuccess {
				t.Fatalf("%+v %v", tx, err)
			}
			rf, err := c.CreateRefund(ctx, &wxpay.RefundRequest{OutTradeNo: "CLIENT0001", OutRefundNo: "CR1",
				Amount: wxpay.RefundAmount{Refund: 100, Total: 300, Currency: "CNY"}})
			if err != nil || rf.Status != wxpay.RefundStatusProcessing {
				t.Fatalf("%+v %v", rf, err)
			}
			if a := m.next(t); a.event != wxpay.EventRefundSuccess || !a.valid {
				t.Fatalf("%+v", a)
			}
			if rf, err = c.QueryRefund(ctx, "CR1"); err != nil || rf.Status != wxpay.RefundStatusSuccess {
				t.Fatalf("%+v %v", rf, err)
			}
			req.OutTradeNo = "CLIENT0002"
			if _, err := c.Prepay(ctx, req); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseOrder(ctx, "CLIENT0002"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.QueryByOutTradeNo(ctx, "NOSUCH0001"); err == nil {
				t.Fatal("unknown order found")
			} else if code, _ := wxpay.APIErrorCode(err); code != wxpay.CodeOrderNotExist {
				t.Fatalf("unknown order: %v", err)
			}
			if mode == ModeCertificate {
				aead, _ := wxpay.NewAEAD(id.APIv3Key)
				certs, err := c.Certificates(ctx, aead)
				if err != nil || len(certs) != 1 || wxpay.CertificateSerial(certs[0]) != id.PlatformSerial {
					t.Fatalf("certificates %v %v", certs, err)
				}
			}

			lc, err := wxclient.NewLoginClient(wxclient.LoginConfig{BaseURL: ts.URL(), AppID: id.AppID, AppSecret: id.AppSecret})
			if err != nil {
				t.Fatal(err)
			}
			defer lc.Close(ctx)
			s, err := lc.Code2Session(ctx, "code-client.1")
			if err != nil || s.OpenID != OpenID(id.AppID, "code-client") || s.SessionKey == "" {
				t.Fatalf("%v %v", s, err)
			}
			if _, err := lc.Code2Session(ctx, "code-client.1"); !errors.Is(err, wxclient.ErrCodeUsed) {
				t.Fatalf("reuse: %v", err)
			}
			if _, err := lc.Code2Session(ctx, "061xyz"); !errors.Is(err, wxclient.ErrInvalidCode) {
				t.Fatalf("invalid: %v", err)
			}
		})
	}
}
