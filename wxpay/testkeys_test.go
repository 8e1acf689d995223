package wxpay

import (
	"crypto/rand"
	"crypto/rsa"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fixture is a signed-notification world for tests: a WeChat key pair in a
// key set under a public-key id and a certificate serial, an APIv3 key and a
// fixed clock.
type fixture struct {
	wechatKey  PrivateKey
	otherKey   PrivateKey
	keys       *KeySet
	verifier   *Verifier
	aead       *AEAD
	parser     *NotifyParser
	now        time.Time
	pubKeyID   string
	certSerial string
}

var (
	otherKeyOnce sync.Once
	otherRSA     *rsa.PrivateKey
)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	otherKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		otherRSA = k
	})
	wk, err := GoBackend.NewPrivateKey(katPrivateKey(t))
	if err != nil {
		t.Fatal(err)
	}
	ok, err := GoBackend.NewPrivateKey(otherRSA)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		wechatKey: wk, otherKey: ok, now: time.Unix(1700000000, 0),
		pubKeyID: "PUB_KEY_ID_0114232134912410000000000000000", certSerial: "D7CE59D1F522D701",
	}
	f.keys = NewKeySet(GoBackend)
	if err := f.keys.AddPublicKey(f.pubKeyID, katPublicKey(t)); err != nil {
		t.Fatal(err)
	}
	if err := f.keys.AddCertificate(katCertificate(t, f.certSerial, f.now.Add(-24*time.Hour), f.now.Add(365*24*time.Hour))); err != nil {
		t.Fatal(err)
	}
	f.verifier = NewVerifier(f.keys, WithClock(func() time.Time { return f.now }))
	f.aead, err = NewAEAD([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	f.parser = NewNotifyParser(f.verifier, f.aead)
	return f
}

const testTransaction = `{"mchid":"1900009191","appid":"wxd678efh567hg6787","out_trade_no":"1217752501201407033233368018","transaction_id":"4200000985202103031441826014","trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"CMC","attach":"","success_time":"2021-03-03T11:40:41+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"}}`

// notification returns a signed TRANSACTION.SUCCESS notification body and
// its headers, encrypted with f.aead and signed by WeChat's key under serial.
func (f *fixture) notification(t testing.TB, plaintext, serial string) (*Headers, []byte) {
	t.Helper()
	ct, err := f.aead.Seal("a1b2c3d4e5f6", "transaction", []byte(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"id":"EV-2018022511223320873","create_time":"2015-05-20T13:29:35+08:00","resource_type":"encrypt-resource","event_type":"TRANSACTION.SUCCESS","summary":"支付成功","resource":{"original_type":"transaction","algorithm":"AEAD_AES_256_GCM","ciphertext":"` +
		ct + `","associated_data":"transaction","nonce":"a1b2c3d4e5f6"}}`)
	return f.sign(t, serial, body), body
}

func (f *fixture) sign(t testing.TB, serial string, body []byte) *Headers {
	t.Helper()
	ts := strconv.FormatInt(f.now.Unix(), 10)
	sig, err := SignResponse(f.wechatKey, ts, "nonce-593BEC0C930BF1AF", body)
	if err != nil {
		t.Fatal(err)
	}
	return &Headers{Timestamp: ts, Nonce: "nonce-593BEC0C930BF1AF", Signature: sig, Serial: serial, SignatureType: SignatureType}
}
