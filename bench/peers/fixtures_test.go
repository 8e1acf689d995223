package peers

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

// Fixtures shared by the cross-checks and the benchmarks.
//
// The merchant key is the wechatpay-go test key of the known answers K1 and
// K9 (shared/docs/wechatpay-kat-vectors.md §A). The platform key plays
// WeChat's side (notifications and responses); it was generated once with
// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` so that a
// mix-up of the two keys cannot pass.
const (
	mchID          = "1900009191"
	merchantSerial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
	platformKeyID  = "PUB_KEY_ID_0114232000000000000000000001"
	appID          = "wx8888888888888888"
	prepayID       = "wx201410272009395522657a690389285100"
	apiV3Key       = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb" // 32 bytes (K3/K5)
	apiV2Key       = "192006250b4c09247ec02edce69f6a2d" // K6
	jsapiPath      = "/v3/pay/transactions/jsapi"
)

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func readTestdataString(tb testing.TB, name string) string {
	return strings.TrimSpace(string(readTestdata(tb, name)))
}

type keyPEMs struct {
	once sync.Once
	priv *rsa.PrivateKey
	pub  *rsa.PublicKey
	err  error
}

var merchantPEM, platformPEM keyPEMs

func (k *keyPEMs) load(tb testing.TB, privFile, pubFile string) (*rsa.PrivateKey, *rsa.PublicKey) {
	tb.Helper()
	k.once.Do(func() {
		privBytes, err := os.ReadFile(filepath.Join("testdata", privFile))
		if err != nil {
			k.err = err
			return
		}
		pubBytes, err := os.ReadFile(filepath.Join("testdata", pubFile))
		if err != nil {
			k.err = err
			return
		}
		if k.priv, k.err = wxpay.ParsePrivateKeyPEM(privBytes); k.err != nil {
			return
		}
		k.pub, k.err = wxpay.ParsePublicKeyPEM(pubBytes)
	})
	if k.err != nil {
		tb.Fatal(k.err)
	}
	return k.priv, k.pub
}

// merchantKey returns the merchant API key pair (K1).
func merchantKey(tb testing.TB) (*rsa.PrivateKey, *rsa.PublicKey) {
	return merchantPEM.load(tb, "merchant_key.pem", "merchant_public.pem")
}

// platformKey returns the key pair that signs as WeChat.
func platformKey(tb testing.TB) (*rsa.PrivateKey, *rsa.PublicKey) {
	return platformPEM.load(tb, "platform_key.pem", "platform_public.pem")
}

// rsaCopy returns a deep enough copy of k for handing to code that may
// precompute into it, so every party starts from the same parsed key.
func rsaCopy(tb testing.TB, k *rsa.PrivateKey) *rsa.PrivateKey {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c.(*rsa.PrivateKey)
}

// ourSigner builds a wxpay.Signer for the merchant with backend b.
func ourSigner(tb testing.TB, b wxpay.Backend) *wxpay.Signer {
	tb.Helper()
	priv, _ := merchantKey(tb)
	pk, err := b.NewPrivateKey(rsaCopy(tb, priv))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := wxpay.NewSigner(mchID, merchantSerial, pk)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// ourPlatformSigner returns the platform private key prepared by b, for
// signing notifications and responses as WeChat does.
func ourPlatformSigner(tb testing.TB, b wxpay.Backend) wxpay.PrivateKey {
	tb.Helper()
	priv, _ := platformKey(tb)
	pk, err := b.NewPrivateKey(rsaCopy(tb, priv))
	if err != nil {
		tb.Fatal(err)
	}
	return pk
}

// ourNotifyParser returns a NotifyParser that trusts the platform public
// key (as a WeChat Pay public key) with backend b and a fixed clock.
func ourNotifyParser(tb testing.TB, b wxpay.Backend, now time.Time) *wxpay.NotifyParser {
	tb.Helper()
	_, pub := platformKey(tb)
	ks := wxpay.NewKeySet(b)
	if err := ks.AddPublicKey(platformKeyID, pub); err != nil {
		tb.Fatal(err)
	}
	aead, err := wxpay.NewAEAD([]byte(apiV3Key))
	if err != nil {
		tb.Fatal(err)
	}
	return wxpay.NewNotifyParser(wxpay.NewVerifier(ks, wxpay.WithClock(func() time.Time { return now })), aead)
}

// prepayBody is a realistic JSAPI prepay request body (a little over 400
// bytes), marshalled once with the product's model.
func prepayBody(tb testing.TB) []byte {
	tb.Helper()
	req := wxpay.PrepayRequest{
		AppID:       appID,
		MchID:       mchID,
		Description: "Image形象店-深圳腾大-QQ公仔",
		OutTradeNo:  "1217752501201407033233368018",
		TimeExpire:  "2018-06-08T10:34:56+08:00",
		Attach:      "自定义数据说明",
		NotifyURL:   "https://www.weixin.qq.com/wxpay/pay.php",
		GoodsTag:    "WXG",
		Amount:      wxpay.Amount{Total: 100, Currency: "CNY"},
		Payer:       wxpay.Payer{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
		SceneInfo:   &wxpay.SceneInfo{PayerClientIP: "14.23.150.211", DeviceID: "013467007045764"},
		SettleInfo:  &wxpay.SettleInfo{ProfitSharing: false},
	}
	b, err := json.Marshal(req)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// transactionPlain is a TRANSACTION.SUCCESS resource as WeChat sends it.
func transactionPlain(outTradeNo, attach string) []byte {
	return []byte(`{"mchid":"` + mchID + `","appid":"` + appID + `","out_trade_no":"` + outTradeNo +
		`","transaction_id":"4200000985202103031441826014","trade_type":"JSAPI","trade_state":"SUCCESS",` +
		`"trade_state_desc":"支付成功","bank_type":"OTHERS","attach":` + strconv.Quote(attach) +
		`,"success_time":"2021-03-03T10:36:32+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},` +
		`"amount":{"total":1,"payer_total":1,"currency":"CNY","payer_currency":"CNY"}}`)
}

// notification is a signed APIv3 notification: headers and raw body.
type notification struct {
	ts, nonce, serial, signature string
	body                         []byte
}

func (n notification) headers() *wxpay.Headers {
	return &wxpay.Headers{
		Timestamp: n.ts, Nonce: n.nonce, Signature: n.signature,
		Serial: n.serial, SignatureType: wxpay.SignatureType,
	}
}

// envelope returns the notification body around an encrypted resource.
func envelope(id, eventType, originalType, ciphertext, ad, nonce string) []byte {
	return []byte(`{"id":"` + id + `","create_time":"2021-03-03T10:36:33+08:00","resource_type":"encrypt-resource",` +
		`"event_type":"` + eventType + `","summary":"支付成功","resource":{"original_type":"` + originalType +
		`","algorithm":"AEAD_AES_256_GCM","ciphertext":"` + ciphertext + `","associated_data":"` + ad +
		`","nonce":"` + nonce + `"}}`)
}
