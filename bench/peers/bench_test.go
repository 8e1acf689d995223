package peers

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"testing"
	"time"

	wechatv3 "github.com/go-pay/gopay/wechat/v3"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/credentials"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxpayd/wxpayd/bench/cpustat"
	"github.com/wxpayd/wxpayd/wxpay"
)

// Side-by-side benchmarks: the same inputs through wxpayd (both backends),
// the SDKs, and floors that do only the cryptography. Sub-benchmark names
// are what cmd/benchtable pairs: wxpayd-<backend>, the SDK's name, and
// floor-<what>. Every floor hashes the exact message into a preallocated
// buffer and makes the bare RSA call (plus, for notifications, one AES-GCM
// open of the pre-decoded ciphertext); everything above a floor is protocol
// overhead.

var (
	sinkString string
	sinkBytes  []byte
	sinkErr    error
	sinkAny    any
)

// cpuPerOp reports the process CPU time per iteration as cpu-ns/op. Unlike
// ns/op (wall time) it does not grow while other processes hold the CPU, so
// on a shared machine it shows whether a ratio moved because of the code or
// because of the neighbours. It includes every thread of the process, so
// garbage collection running beside the loop counts against the allocating
// contender. Call it as `defer cpuPerOp(b)()` right before the loop.
func cpuPerOp(b *testing.B) func() {
	start, ok := cpustat.Process()
	return func() {
		end, ok2 := cpustat.Process()
		if ok && ok2 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

const (
	benchTS    = int64(1554208460)
	benchNonce = "593BEC0C930BF1AFEB40B4A08C8FB242"
)

// floorOpenSSLSign hashes msg into a preallocated buffer and makes the bare
// golang-fips/openssl sign call on a key built once.
func floorOpenSSLSign(b *testing.B, msg []byte) {
	priv, _ := merchantKey(b)
	fs := newFIPSSigner(b, priv)
	buf := make([]byte, 0, len(msg))
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		d := sha256.Sum256(append(buf[:0], msg...))
		sinkBytes, sinkErr = fs.sign(&d)
	}
}

// floorCryptoRSASign is the same with crypto/rsa on a precomputed key.
func floorCryptoRSASign(b *testing.B, msg []byte) {
	priv, _ := merchantKey(b)
	k := rsaCopy(b, priv)
	k.Precompute()
	buf := make([]byte, 0, len(msg))
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		d := sha256.Sum256(append(buf[:0], msg...))
		sinkBytes, sinkErr = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	}
}

func BenchmarkAuthorization(b *testing.B) {
	// Sub-benchmarks run one after the other (-count repeats each in place),
	// so every compared pair is adjacent: floor-openssl, wxpayd-openssl,
	// wechatpay-go, then wxpayd-go, floor-crypto-rsa.
	body := prepayBody(b)
	msg := []byte(requestMessage("POST", jsapiPath, strconv.FormatInt(benchTS, 10), benchNonce, body))
	ours := func(b *testing.B, be wxpay.Backend) {
		s := ourSigner(b, be)
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			sinkString, sinkErr = s.Authorization("POST", jsapiPath, body, benchTS, benchNonce)
		}
	}
	b.Run("floor-openssl", func(b *testing.B) { floorOpenSSLSign(b, msg) })
	b.Run("wxpayd-openssl", func(b *testing.B) { ours(b, mustOpenSSL(b)) })
	b.Run("wechatpay-go", func(b *testing.B) {
		// core.Client signs every request with exactly this: its
		// WechatPayCredentials around SHA256WithRSASigner.
		priv, _ := merchantKey(b)
		cred := &credentials.WechatPayCredentials{Signer: &signers.SHA256WithRSASigner{
			MchID: mchID, CertificateSerialNo: merchantSerial, PrivateKey: rsaCopy(b, priv)}}
		ctx := context.Background()
		signBody := string(body)
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			sinkString, sinkErr = cred.GenerateAuthorizationHeader(ctx, "POST", jsapiPath, signBody)
		}
	})
	b.Run("wxpayd-go", func(b *testing.B) { ours(b, wxpay.GoBackend) })
	b.Run("floor-crypto-rsa", func(b *testing.B) { floorCryptoRSASign(b, msg) })
}

// wpgoRequestPayment is wechatpay-go's PrepayWithRequestPayment after its
// Prepay call (services/payments/jsapi/api_jsapi_request_payment.go, v0.2.20),
// line for line: the prepay round trip itself is not part of paySign. The
// cross-check TestWechatpayGoClientAgreesWithOurSignerAndSignResponse runs
// the real method end to end.
func wpgoRequestPayment(ctx context.Context, c *core.Client, appid, prepayID string) (*string, error) {
	timeStamp := core.String(strconv.FormatInt(time.Now().Unix(), 10))
	nonce, err := utils.GenerateNonce()
	if err != nil {
		return nil, err
	}
	nonceStr := core.String(nonce)
	pkg := core.String("prepay_id=" + prepayID)
	message := fmt.Sprintf("%s\n%s\n%s\n%s\n", appid, *timeStamp, *nonceStr, *pkg)
	signatureResult, err := c.Sign(ctx, message)
	if err != nil {
		return nil, err
	}
	return core.String(signatureResult.Signature), nil
}

func BenchmarkPaySign(b *testing.B) {
	// Adjacent pairs, as in BenchmarkAuthorization.
	ts := strconv.FormatInt(benchTS, 10)
	msg := []byte(appID + "\n" + ts + "\n" + benchNonce + "\nprepay_id=" + prepayID + "\n")
	ours := func(b *testing.B, be wxpay.Backend) {
		s := ourSigner(b, be)
		b.ReportAllocs()
		defer cpuPerOp(b)()
		var p wxpay.PayParams
		for b.Loop() {
			p, sinkErr = s.RequestPayment(appID, prepayID, benchTS, benchNonce)
		}
		sinkString = p.PaySign
	}
	b.Run("floor-openssl", func(b *testing.B) { floorOpenSSLSign(b, msg) })
	b.Run("wxpayd-openssl", func(b *testing.B) { ours(b, mustOpenSSL(b)) })
	b.Run("wechatpay-go", func(b *testing.B) {
		priv, _ := merchantKey(b)
		c, err := core.NewClient(context.Background(),
			option.WithMerchantCredential(mchID, merchantSerial, rsaCopy(b, priv)), option.WithoutValidator())
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			sinkAny, sinkErr = wpgoRequestPayment(ctx, c, appID, prepayID)
		}
	})
	b.Run("gopay", func(b *testing.B) {
		gp, err := wechatv3.NewClientV3(mchID, merchantSerial, apiV3Key, string(readTestdata(b, "merchant_key.pem")))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			sinkAny, sinkErr = gp.PaySignOfApplet(appID, prepayID)
		}
	})
	b.Run("wxpayd-go", func(b *testing.B) { ours(b, wxpay.GoBackend) })
	b.Run("floor-crypto-rsa", func(b *testing.B) { floorCryptoRSASign(b, msg) })
}

// reusableBody is a request body the SDK benchmarks rewind instead of
// rebuilding the request.
type reusableBody struct{ bytes.Reader }

func (*reusableBody) Close() error { return nil }

func BenchmarkNotify(b *testing.B) {
	// One notification (1 KB body) for every contender, signed now because
	// the SDKs check the timestamp against time.Now. Adjacent pairs:
	// floor-verify+gcm-openssl, wxpayd-openssl, wechatpay-go, gopay,
	// wxpayd-go, floor-verify+gcm-go.
	now := time.Now()
	plain := transactionPlain("1217752501201407033233368018", "order 42")
	n := ourNotification(b, wxpay.GoBackend, now.Unix(), "EV-2018022511223320873", plain)
	_, pub := platformKey(b)

	// The floors hash TS\nNONCE\nBODY\n into a preallocated buffer, verify
	// the pre-decoded signature and open the pre-decoded ciphertext.
	env, err := wxpay.ParseNotification(n.body)
	if err != nil {
		b.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(n.signature)
	ct, _ := base64.StdEncoding.DecodeString(env.Resource.Ciphertext)
	gcmNonce, ad := []byte(env.Resource.Nonce), []byte(env.Resource.AssociatedData)
	block, _ := aes.NewCipher([]byte(apiV3Key))
	gcm, _ := cipher.NewGCM(block)
	msg := make([]byte, 0, len(n.body)+64)
	dst := make([]byte, 0, len(ct))
	floor := func(b *testing.B, verify func(d *[sha256.Size]byte) error) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			m := append(msg[:0], n.ts...)
			m = append(m, '\n')
			m = append(m, n.nonce...)
			m = append(m, '\n')
			m = append(m, n.body...)
			m = append(m, '\n')
			d := sha256.Sum256(m)
			if err := verify(&d); err != nil {
				b.Fatal(err)
			}
			sinkBytes, sinkErr = gcm.Open(dst[:0], gcmNonce, ct, ad)
		}
	}
	ours := func(b *testing.B, be wxpay.Backend) {
		p := ourNotifyParser(b, be, now)
		h := n.headers()
		if _, _, err := p.ParseTransaction(h, n.body); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			_, tx, err := p.ParseTransaction(h, n.body)
			sinkString, sinkErr = tx.TransactionID, err
		}
	}

	b.Run("floor-verify+gcm-openssl", func(b *testing.B) {
		fv := newFIPSVerifier(b, pub)
		floor(b, func(d *[sha256.Size]byte) error { return fv.verify(d, sig) })
	})
	b.Run("wxpayd-openssl", func(b *testing.B) { ours(b, mustOpenSSL(b)) })
	b.Run("wechatpay-go", func(b *testing.B) {
		handler := wechatpayGoNotifyHandler(b)
		req := n.httpRequest()
		body := &reusableBody{}
		ctx := context.Background()
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			body.Reset(n.body)
			req.Body = body
			var tx payments.Transaction
			if _, err := handler.ParseNotifyRequest(ctx, req, &tx); err != nil {
				b.Fatal(err)
			}
			sinkAny = tx.TransactionId
		}
	})
	b.Run("gopay", func(b *testing.B) {
		req := n.httpRequest()
		body := &reusableBody{}
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			body.Reset(n.body)
			req.Body = body
			nr, err := wechatv3.V3ParseNotify(req)
			if err != nil {
				b.Fatal(err)
			}
			if err := nr.VerifySignByPK(pub); err != nil {
				b.Fatal(err)
			}
			res, err := nr.DecryptPayCipherText(apiV3Key)
			if err != nil {
				b.Fatal(err)
			}
			sinkAny = res.TransactionId
		}
	})
	b.Run("wxpayd-go", func(b *testing.B) { ours(b, wxpay.GoBackend) })
	b.Run("floor-verify+gcm-go", func(b *testing.B) {
		floor(b, func(d *[sha256.Size]byte) error { return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig) })
	})
}

// BenchmarkRSA is the raw floor of each backend's primitive, for reading
// against `openssl speed rsa2048`: a SHA-256 digest signed or verified.
func BenchmarkRSA(b *testing.B) {
	priv, pub := merchantKey(b)
	d := sha256.Sum256([]byte("source"))
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, d[:])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sign-openssl", func(b *testing.B) {
		fs := newFIPSSigner(b, priv)
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			sinkBytes, sinkErr = fs.sign(&d)
		}
	})
	b.Run("sign-crypto-rsa", func(b *testing.B) {
		k := rsaCopy(b, priv)
		k.Precompute()
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			sinkBytes, sinkErr = rsa.SignPKCS1v15(nil, k, crypto.SHA256, d[:])
		}
	})
	b.Run("verify-openssl", func(b *testing.B) {
		fv := newFIPSVerifier(b, pub)
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			sinkErr = fv.verify(&d, sig)
		}
	})
	b.Run("verify-crypto-rsa", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			sinkErr = rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
		}
	})
}

// BenchmarkNotifyParts times the steps of NotifyParser.ParseTransaction
// alone, on the BenchmarkNotify input, to show where the time above the
// floor goes.
func BenchmarkNotifyParts(b *testing.B) {
	now := time.Now()
	plain := transactionPlain("1217752501201407033233368018", "order 42")
	n := ourNotification(b, wxpay.GoBackend, now.Unix(), "EV-2018022511223320873", plain)
	_, pub := platformKey(b)
	verify := func(b *testing.B, be wxpay.Backend) {
		ks := wxpay.NewKeySet(be)
		if err := ks.AddPublicKey(platformKeyID, pub); err != nil {
			b.Fatal(err)
		}
		v := wxpay.NewVerifier(ks, wxpay.WithClock(func() time.Time { return now }))
		h := n.headers()
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			if err := v.Verify(h, n.body); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("verify-openssl", func(b *testing.B) { verify(b, mustOpenSSL(b)) })
	b.Run("verify-go", func(b *testing.B) { verify(b, wxpay.GoBackend) })
	b.Run("envelope", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			env, err := wxpay.ParseNotification(n.body)
			sinkString, sinkErr = env.ID, err
		}
	})
	env, err := wxpay.ParseNotification(n.body)
	if err != nil {
		b.Fatal(err)
	}
	aead, err := wxpay.NewAEAD([]byte(apiV3Key))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decrypt", func(b *testing.B) {
		dst := make([]byte, 0, 1024)
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			sinkBytes, sinkErr = env.Resource.Decrypt(aead, dst[:0])
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			tx, err := wxpay.DecodeTransaction(plain)
			sinkString, sinkErr = tx.TransactionID, err
		}
	})
}
