package peers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net/http"
	"strconv"
	"testing"
	"time"

	gpaes "github.com/go-pay/crypto/aes"
	wechatv3 "github.com/go-pay/gopay/wechat/v3"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxpayd/wxpayd/wxpay"
)

// peerNotification builds a notification the way the peers would: the
// resource encrypted with gopay's AES-GCM (wechatpay-go ships only the
// decrypting half, utils.DecryptAES256GCM, which checks the round trip), the
// body signed with wechatpay-go's SHA256WithRSASigner over TS\nNONCE\nBODY\n.
func peerNotification(t testing.TB, ts int64, id, eventType, originalType string, plain []byte) notification {
	t.Helper()
	const nonce = "fdasflkja484"
	const ad = "transaction"
	ct, err := gpaes.GCMEncrypt(plain, []byte(nonce), []byte(ad), []byte(apiV3Key))
	if err != nil {
		t.Fatal(err)
	}
	ctB64 := base64.StdEncoding.EncodeToString(ct)
	if back, err := utils.DecryptAES256GCM(apiV3Key, ad, nonce, ctB64); err != nil || back != string(plain) {
		t.Fatalf("wechatpay-go cannot open gopay's ciphertext: %v", err)
	}
	body := envelope(id, eventType, originalType, ctB64, ad, nonce)
	priv, _ := platformKey(t)
	s := &signers.SHA256WithRSASigner{MchID: "wechat", CertificateSerialNo: platformKeyID, PrivateKey: rsaCopy(t, priv)}
	tss := strconv.FormatInt(ts, 10)
	wNonce := "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz"
	res, err := s.Sign(context.Background(), tss+"\n"+wNonce+"\n"+string(body)+"\n")
	if err != nil {
		t.Fatal(err)
	}
	return notification{ts: tss, nonce: wNonce, serial: platformKeyID, signature: res.Signature, body: body}
}

// ourNotification builds a notification with the product's Seal and
// SignResponse, as the simulator does.
func ourNotification(t testing.TB, b wxpay.Backend, ts int64, id string, plain []byte) notification {
	t.Helper()
	aead, err := wxpay.NewAEAD([]byte(apiV3Key))
	if err != nil {
		t.Fatal(err)
	}
	const nonce = "uluk4a9R25RW"
	ct, err := aead.Seal(nonce, "transaction", plain)
	if err != nil {
		t.Fatal(err)
	}
	body := envelope(id, wxpay.EventTransactionSuccess, wxpay.OriginalTypeTransaction, ct, "transaction", nonce)
	tss := strconv.FormatInt(ts, 10)
	n := notification{ts: tss, nonce: wxpay.NewNonce(), serial: platformKeyID, body: body}
	if n.signature, err = wxpay.SignResponse(ourPlatformSigner(t, b), n.ts, n.nonce, body); err != nil {
		t.Fatal(err)
	}
	return n
}

// httpRequest wraps a notification in the *http.Request the SDKs take.
func (n notification) httpRequest() *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "https://merchant.example/notify", bytes.NewReader(n.body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(wxpay.HeaderTimestamp, n.ts)
	r.Header.Set(wxpay.HeaderNonce, n.nonce)
	r.Header.Set(wxpay.HeaderSignature, n.signature)
	r.Header.Set(wxpay.HeaderSerial, n.serial)
	r.Header.Set(wxpay.HeaderSignatureType, wxpay.SignatureType)
	return r
}

// wechatpayGoNotifyHandler is wechatpay-go's handler trusting the platform
// public key.
func wechatpayGoNotifyHandler(t testing.TB) *notify.Handler {
	t.Helper()
	_, pub := platformKey(t)
	h, err := notify.NewRSANotifyHandler(apiV3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(platformKeyID, *pub))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func str(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func i64(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

// sameTransaction compares our decoded transaction with wechatpay-go's.
func sameTransaction(t *testing.T, ours wxpay.Transaction, theirs *payments.Transaction) {
	t.Helper()
	type flat struct {
		appid, mchid, outTradeNo, txID, tradeType, state, desc, bank, attach, success, openid, cur, payerCur string
		total, payerTotal                                                                                    int64
	}
	o := flat{ours.AppID, ours.MchID, ours.OutTradeNo, ours.TransactionID, ours.TradeType, ours.TradeState,
		ours.TradeStateDesc, ours.BankType, ours.Attach, ours.SuccessTime, ours.Payer.OpenID,
		ours.Amount.Currency, ours.Amount.PayerCurrency, ours.Amount.Total, ours.Amount.PayerTotal}
	w := flat{str(theirs.Appid), str(theirs.Mchid), str(theirs.OutTradeNo), str(theirs.TransactionId),
		str(theirs.TradeType), str(theirs.TradeState), str(theirs.TradeStateDesc), str(theirs.BankType),
		str(theirs.Attach), str(theirs.SuccessTime), str(theirs.Payer.Openid), str(theirs.Amount.Currency),
		str(theirs.Amount.PayerCurrency), i64(theirs.Amount.Total), i64(theirs.Amount.PayerTotal)}
	if o != w {
		t.Errorf("transaction differs\nours:         %+v\nwechatpay-go: %+v", o, w)
	}
}

// wpgoTransaction is a transaction as wechatpay-go's model marshals it
// (keys sorted, HTML characters escaped as \u003c etc.).
func wpgoTransaction(outTradeNo, attach string, promotions bool) payments.Transaction {
	tx := payments.Transaction{
		Appid: core.String(appID), Mchid: core.String(mchID), OutTradeNo: core.String(outTradeNo),
		TransactionId: core.String("4200000985202103031441826014"), TradeType: core.String("JSAPI"),
		TradeState: core.String("SUCCESS"), TradeStateDesc: core.String("支付成功"), BankType: core.String("CMC"),
		Attach: core.String(attach), SuccessTime: core.String("2018-06-08T10:34:56+08:00"),
		Payer: &payments.TransactionPayer{Openid: core.String("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")},
		Amount: &payments.TransactionAmount{Total: core.Int64(100), PayerTotal: core.Int64(90),
			Currency: core.String("CNY"), PayerCurrency: core.String("CNY")},
	}
	if promotions {
		tx.PromotionDetail = []payments.PromotionDetail{{
			CouponId: core.String("109519"), Name: core.String("单品惠-6"), Scope: core.String("SINGLE"),
			Type: core.String("DISCOUNT"), Amount: core.Int64(10), StockId: core.String("931386"),
			WechatpayContribute: core.Int64(0), MerchantContribute: core.Int64(10), OtherContribute: core.Int64(0),
			Currency: core.String("CNY"),
			GoodsDetail: []payments.PromotionGoodsDetail{{GoodsId: core.String("M1006"), Quantity: core.Int64(1),
				UnitPrice: core.Int64(100), DiscountAmount: core.Int64(10), GoodsRemark: core.String("商品备注")}},
		}}
	}
	return tx
}

func TestWeParseNotificationsBuiltByThePeers(t *testing.T) {
	t.Parallel()
	now := time.Now()
	cases := []struct {
		name string
		tx   payments.Transaction
	}{
		{"a TRANSACTION.SUCCESS with an ASCII attach decodes to the same transaction",
			wpgoTransaction("1217752501201407033233368018", "order 42", false)},
		{"an attach with quotes, backslashes, HTML escapes and emoji decodes to the same text",
			wpgoTransaction("A_b-c|d*1", "\"q\" \\ <b>&amp;</b> \u2028 \U0001F600 自定义数据", false)},
		{"promotion details the product does not model are skipped",
			wpgoTransaction("1217752501201407033233368019", "", true)},
	}
	for _, b := range backends(t) {
		p := ourNotifyParser(t, b, now)
		for i, c := range cases {
			t.Run(b.Name()+"/"+c.name, func(t *testing.T) {
				plain, err := c.tx.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				n := peerNotification(t, now.Unix(), "EV-2018022511223320873-"+strconv.Itoa(i),
					wxpay.EventTransactionSuccess, wxpay.OriginalTypeTransaction, plain)
				env, tx, err := p.ParseTransaction(n.headers(), n.body)
				if err != nil {
					t.Fatalf("ParseTransaction: %v", err)
				}
				if env.EventType != wxpay.EventTransactionSuccess || env.Summary != "支付成功" || env.Resource.Nonce != "fdasflkja484" {
					t.Errorf("envelope %+v", env)
				}
				sameTransaction(t, tx, &c.tx)
				// wechatpay-go's own handler agrees on the same bytes.
				var theirs payments.Transaction
				if _, err := wechatpayGoNotifyHandler(t).ParseNotifyRequest(context.Background(), n.httpRequest(), &theirs); err != nil {
					t.Fatalf("wechatpay-go handler: %v", err)
				}
				sameTransaction(t, tx, &theirs)
				// And a changed byte is rejected by ours.
				bad := bytes.Replace(n.body, []byte(`"summary":"支付成功"`), []byte(`"summary":"支付成功 "`), 1)
				if _, _, err := p.ParseTransaction(n.headers(), bad); !errors.Is(err, wxpay.ErrBadSignature) {
					t.Errorf("tampered body: %v, want ErrBadSignature", err)
				}
			})
		}
		t.Run(b.Name()+"/a REFUND.SUCCESS signed by wechatpay-go decodes to what gopay decodes", func(t *testing.T) {
			plain := []byte(`{"mchid":"1900000100","transaction_id":"1008450740201411110005820873","out_trade_no":"20150806125346",` +
				`"refund_id":"50200207182018070300011301001","out_refund_no":"7752501201407033233368018","refund_status":"SUCCESS",` +
				`"success_time":"2018-06-08T10:34:56+08:00","user_received_account":"招商银行信用卡0403",` +
				`"amount":{"total":999,"refund":999,"payer_total":999,"payer_refund":999}}`)
			n := peerNotification(t, now.Unix(), "EV-refund-1", wxpay.EventRefundSuccess, wxpay.OriginalTypeRefund, plain)
			_, r, err := p.ParseRefund(n.headers(), n.body)
			if err != nil {
				t.Fatalf("ParseRefund: %v", err)
			}
			req, err := wechatv3.V3ParseNotify(n.httpRequest())
			if err != nil {
				t.Fatal(err)
			}
			_, pub := platformKey(t)
			if err := req.VerifySignByPK(pub); err != nil {
				t.Fatalf("gopay verify: %v", err)
			}
			g, err := req.DecryptRefundCipherText(apiV3Key)
			if err != nil {
				t.Fatal(err)
			}
			if r.MchID != g.Mchid || r.TransactionID != g.TransactionId || r.OutTradeNo != g.OutTradeNo ||
				r.RefundID != g.RefundId || r.OutRefundNo != g.OutRefundNo || r.RefundStatus != g.RefundStatus ||
				r.SuccessTime != g.SuccessTime || r.UserReceivedAccount != g.UserReceivedAccount ||
				r.Amount.Total != int64(g.Amount.Total) || r.Amount.Refund != int64(g.Amount.Refund) ||
				r.Amount.PayerTotal != int64(g.Amount.PayerTotal) || r.Amount.PayerRefund != int64(g.Amount.PayerRefund) {
				t.Errorf("ours %+v\ngopay %+v %+v", r, *g, *g.Amount)
			}
		})
		t.Run(b.Name()+"/the K4 notification from wechatpay-go's tests verifies under its certificate serial", func(t *testing.T) {
			ks := wxpay.NewKeySet(b)
			if err := ks.AddCertificate(k4Certificate(t)); err != nil {
				t.Fatal(err)
			}
			v := wxpay.NewVerifier(ks, wxpay.WithClock(func() time.Time { return time.Unix(1624523846, 0) }))
			h := &wxpay.Headers{Timestamp: "1624523846", Nonce: "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz",
				Signature: readTestdataString(t, "k4_signature.txt"), Serial: "D7CE59D1F522D701"}
			if err := v.Verify(h, readTestdata(t, "k4_body.json")); err != nil {
				t.Fatal(err)
			}
			h.Signature = wxpay.SignTestPrefix + h.Signature[len(wxpay.SignTestPrefix):]
			if err := v.Verify(h, readTestdata(t, "k4_body.json")); err == nil {
				t.Fatal("a SIGNTEST probe verified")
			}
		})
	}
}

// k4Certificate is a certificate with wechatpay-go's test serial
// D7CE59D1F522D701 wrapping the K1 public key, as in its notify tests.
func k4Certificate(t *testing.T) *x509.Certificate {
	t.Helper()
	priv, pub := merchantKey(t)
	serial, _ := new(big.Int).SetString("D7CE59D1F522D701", 16)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "Tenpay.com sign"},
		NotBefore: time.Unix(1600000000, 0), NotAfter: time.Unix(1800000000, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPeersAcceptNotificationsWeBuild(t *testing.T) {
	t.Parallel()
	_, pub := platformKey(t)
	for _, b := range backends(t) {
		t.Run(b.Name()+"/wechatpay-go's handler and gopay verify, decrypt and decode our notification", func(t *testing.T) {
			plain := transactionPlain("1217752501201407033233368018", `json "escapes" \ and 中文`)
			want, err := wxpay.DecodeTransaction(plain)
			if err != nil {
				t.Fatal(err)
			}
			n := ourNotification(t, b, time.Now().Unix(), "EV-ours-1", plain)

			var theirs payments.Transaction
			req, err := wechatpayGoNotifyHandler(t).ParseNotifyRequest(context.Background(), n.httpRequest(), &theirs)
			if err != nil {
				t.Fatalf("wechatpay-go handler: %v", err)
			}
			if req.Resource.Plaintext != string(plain) {
				t.Errorf("wechatpay-go plaintext %q", req.Resource.Plaintext)
			}
			sameTransaction(t, want, &theirs)

			gr, err := wechatv3.V3ParseNotify(n.httpRequest())
			if err != nil {
				t.Fatal(err)
			}
			if err := gr.VerifySignByPKMap(map[string]*rsa.PublicKey{platformKeyID: pub}); err != nil {
				t.Fatalf("gopay verify: %v", err)
			}
			g, err := gr.DecryptPayCipherText(apiV3Key)
			if err != nil {
				t.Fatalf("gopay decrypt: %v", err)
			}
			if g.OutTradeNo != want.OutTradeNo || g.TransactionId != want.TransactionID || g.Attach != want.Attach ||
				g.TradeState != want.TradeState || int64(g.Amount.Total) != want.Amount.Total || g.Payer.Openid != want.Payer.OpenID {
				t.Errorf("gopay %+v, want %+v", *g, want)
			}
			// The peers are not vacuous: a wrong key is refused by both.
			other := n
			other.body = append(append([]byte(nil), n.body...), ' ')
			if _, err := wechatpayGoNotifyHandler(t).ParseNotifyRequest(context.Background(), other.httpRequest(), &theirs); err == nil {
				t.Error("wechatpay-go accepted a changed body")
			}
			gr2, _ := wechatv3.V3ParseNotify(other.httpRequest())
			if gr2 == nil || gr2.VerifySignByPK(pub) == nil {
				t.Error("gopay accepted a changed body")
			}
		})
	}
}
