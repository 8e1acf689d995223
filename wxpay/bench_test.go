package wxpay

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
)

// Micro-benchmarks of the signing hot path with the pure-Go backend and its
// floors. Side-by-side runs against the SDKs and the OpenSSL backend live in
// bench/peers; these guard the package's own overhead.

var prepayBody = []byte(`{"appid":"wxd678efh567hg6787","mchid":"1230000109","description":"Image形象店-深圳腾大-QQ公仔","out_trade_no":"1217752501201407033233368018","time_expire":"2018-06-08T10:34:56+08:00","attach":"自定义数据说明","notify_url":"https://www.weixin.qq.com/wxpay/pay.php","goods_tag":"WXG","amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}`)

func BenchmarkAuthorization(b *testing.B) {
	s := katSigner(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(prepayBody)))
	for b.Loop() {
		if _, err := s.Authorization("POST", "/v3/pay/transactions/jsapi", prepayBody, 1554208460, "593BEC0C930BF1AFEB40B4A08C8FB242"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignFloorCryptoRSA(b *testing.B) {
	k := katPrivateKey(b)
	k.Precompute()
	d := sha256.Sum256(prepayBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, d[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNotify(b *testing.B) {
	f := newFixture(b)
	h, body := f.notification(b, testTransaction, f.pubKeyID)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if n, err := f.parser.ParseNotice(h, body); err != nil || n.Kind != NoticePayment {
				b.Fatal(n.Kind, err)
			}
		}
	})
}

// BenchmarkNotifyWithoutVerify times ParseNotice's steps after the RSA
// verify (envelope, decrypt, decode), which no key set can skip.
func BenchmarkNotifyWithoutVerify(b *testing.B) {
	f := newFixture(b)
	_, body := f.notification(b, testTransaction, f.pubKeyID)
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		n, err := ParseNotification(body)
		if err != nil {
			b.Fatal(err)
		}
		plain, err := n.Resource.Decrypt(f.aead, dst[:0])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeTransaction(plain); err != nil {
			b.Fatal(err)
		}
	}
}
