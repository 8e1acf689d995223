package wxpay

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNotifyParserAcceptsBothKeyKinds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, serial := range []string{f.pubKeyID, f.certSerial} {
		h, body := f.notification(t, testTransaction, serial)
		n, err := f.parser.ParseNotice(h, body)
		if err != nil {
			t.Fatalf("serial %s: %v", serial, err)
		}
		if n.Kind != NoticePayment || n.ID != "EV-2018022511223320873" || n.EventType != EventTransactionSuccess ||
			n.OutTradeNo() != "1217752501201407033233368018" || n.Refund != (RefundNotice{}) {
			t.Fatalf("notice %+v", n)
		}
		want := Transaction{
			AppID: "wxd678efh567hg6787", MchID: "1900009191", OutTradeNo: "1217752501201407033233368018",
			TransactionID: "4200000985202103031441826014", TradeType: "JSAPI", TradeState: "SUCCESS",
			TradeStateDesc: "支付成功", BankType: "CMC", SuccessTime: "2021-03-03T11:40:41+08:00",
			Payer:  Payer{OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
			Amount: TransactionAmount{Total: 100, PayerTotal: 100, Currency: "CNY", PayerCurrency: "CNY"},
		}
		if n.Payment != want {
			t.Fatalf("transaction\n got %+v\nwant %+v", n.Payment, want)
		}
		// ParseTransaction is the same path, with the envelope.
		env, tx, err := f.parser.ParseTransaction(h, body)
		if err != nil || tx != want || env.Summary != "支付成功" {
			t.Fatalf("ParseTransaction: %+v %+v %v", env, tx, err)
		}
	}
}

func TestNotifyParserRejects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h0, body0 := f.notification(t, testTransaction, f.pubKeyID)
	tamper := func(mod func(h *Headers, body []byte) []byte) (*Headers, []byte) {
		h := *h0
		b := bytes.Clone(body0)
		return &h, mod(&h, b)
	}
	flipSig := func(sig string) string {
		raw, _ := base64.StdEncoding.DecodeString(sig)
		raw[10] ^= 1
		return base64.StdEncoding.EncodeToString(raw)
	}
	// resign builds a correctly signed notification around a new body, so
	// the failure tested is the one after the signature check.
	resign := func(body string) (*Headers, []byte) {
		return f.sign(t, f.pubKeyID, []byte(body)), []byte(body)
	}
	sealed := func(plain, aad, nonce string) string {
		ct, err := f.aead.Seal(nonce, aad, []byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	envelopeAs := func(event, originalType, alg, ct, aad, nonce string) string {
		return `{"id":"EV-1","create_time":"2015-05-20T13:29:35+08:00","resource_type":"encrypt-resource","event_type":"` + event +
			`","summary":"x","resource":{"original_type":"` + originalType + `","algorithm":"` +
			alg + `","ciphertext":"` + ct + `","associated_data":"` + aad + `","nonce":"` + nonce + `"}}`
	}
	envelope := func(alg, ct, aad, nonce string) string {
		return envelopeAs(EventTransactionSuccess, OriginalTypeTransaction, alg, ct, aad, nonce)
	}
	goodCT := sealed(testTransaction, "transaction", "a1b2c3d4e5f6")
	refundCT := sealed(testRefund, "refund", "a1b2c3d4e5f6")

	cases := []struct {
		name string
		in   func() (*Headers, []byte)
		want error
	}{
		{"a tampered body fails the signature", func() (*Headers, []byte) {
			return tamper(func(_ *Headers, b []byte) []byte { return bytes.Replace(b, []byte("EV-2018"), []byte("EV-2019"), 1) })
		}, ErrBadSignature},
		{"a tampered nonce header fails the signature", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Nonce += "x"; return b })
		}, ErrBadSignature},
		{"a tampered timestamp header fails the signature", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte {
				h.Timestamp = strconv.FormatInt(f.now.Unix()-1, 10)
				return b
			})
		}, ErrBadSignature},
		{"a flipped signature bit fails", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Signature = flipSig(h.Signature); return b })
		}, ErrBadSignature},
		{"a SIGNTEST probe of signature length fails like any bad signature", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Signature = SignTestPrefix + h.Signature[19:]; return b })
		}, ErrBadSignature},
		{"a short SIGNTEST probe fails as malformed", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Signature = SignTestPrefix + h.Signature[40:]; return b })
		}, ErrBadSignatureEncoding},
		{"a signature by another key fails", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte {
				sig, _ := SignResponse(f.otherKey, h.Timestamp, h.Nonce, b)
				h.Signature = sig
				return b
			})
		}, ErrBadSignature},
		{"a signature that is not Base64 fails", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Signature = "!!!" + h.Signature[3:]; return b })
		}, ErrBadSignatureEncoding},
		{"a truncated signature fails", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Signature = h.Signature[:100]; return b })
		}, ErrBadSignatureEncoding},
		{"an oversize signature fails before decoding", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Signature = strings.Repeat("A", 5000); return b })
		}, ErrBadSignatureEncoding},
		{"an unknown serial fails", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"; return b })
		}, ErrUnknownSerial},
		{"a missing serial fails", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Serial = ""; return b })
		}, ErrMissingHeader},
		{"a missing signature fails", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Signature = ""; return b })
		}, ErrMissingHeader},
		{"a missing nonce fails", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Nonce = ""; return b })
		}, ErrMissingHeader},
		{"a missing timestamp fails", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Timestamp = ""; return b })
		}, ErrMissingHeader},
		{"another signature type fails", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.SignatureType = "WECHATPAY2-SM2-WITH-SM3"; return b })
		}, ErrUnsupportedSignatureType},
		{"a non-numeric timestamp fails", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Timestamp = "17e8"; return b })
		}, ErrBadTimestamp},
		{"a negative timestamp fails", func() (*Headers, []byte) {
			return tamper(func(h *Headers, b []byte) []byte { h.Timestamp = "-1"; return b })
		}, ErrBadTimestamp},
		{"a stale timestamp of exactly 5 minutes fails", func() (*Headers, []byte) {
			old := *f
			old.now = f.now.Add(-5 * time.Minute)
			return old.notification(t, testTransaction, f.pubKeyID)
		}, ErrExpired},
		{"a future timestamp of 5 minutes fails", func() (*Headers, []byte) {
			fut := *f
			fut.now = f.now.Add(5 * time.Minute)
			return fut.notification(t, testTransaction, f.pubKeyID)
		}, ErrExpired},
		{"malformed JSON fails after a valid signature", func() (*Headers, []byte) {
			return resign(`{"id":"EV-1",`)
		}, ErrMalformed},
		{"a duplicated id member fails", func() (*Headers, []byte) {
			return resign(`{"id":"a","id":"b","event_type":"TRANSACTION.SUCCESS","resource":{}}`)
		}, ErrMalformed},
		{"a missing resource fails", func() (*Headers, []byte) {
			return resign(`{"id":"EV-1","event_type":"TRANSACTION.SUCCESS"}`)
		}, ErrMissingField},
		{"another algorithm fails", func() (*Headers, []byte) {
			return resign(envelope("AEAD_SM4_GCM", goodCT, "transaction", "a1b2c3d4e5f6"))
		}, ErrUnsupportedAlgorithm},
		{"a wrong associated data fails to decrypt", func() (*Headers, []byte) {
			return resign(envelope(AlgorithmAESGCM, goodCT, "refund", "a1b2c3d4e5f6"))
		}, ErrDecrypt},
		{"a wrong nonce fails to decrypt", func() (*Headers, []byte) {
			return resign(envelope(AlgorithmAESGCM, goodCT, "transaction", "a1b2c3d4e5f7"))
		}, ErrDecrypt},
		{"a nonce of the wrong length fails", func() (*Headers, []byte) {
			return resign(envelope(AlgorithmAESGCM, goodCT, "transaction", "a1b2c3"))
		}, ErrBadNonce},
		{"a truncated ciphertext fails", func() (*Headers, []byte) {
			return resign(envelope(AlgorithmAESGCM, goodCT[:8], "transaction", "a1b2c3d4e5f6"))
		}, ErrBadCiphertext},
		{"a ciphertext that is not Base64 fails", func() (*Headers, []byte) {
			return resign(envelope(AlgorithmAESGCM, "%%%%"+goodCT[4:], "transaction", "a1b2c3d4e5f6"))
		}, ErrBadCiphertext},
		{"a ciphertext under another APIv3 key fails", func() (*Headers, []byte) {
			other, _ := NewAEAD([]byte("ffffffffffffffffffffffffffffffff"))
			ct, _ := other.Seal("a1b2c3d4e5f6", "transaction", []byte(testTransaction))
			return resign(envelope(AlgorithmAESGCM, ct, "transaction", "a1b2c3d4e5f6"))
		}, ErrDecrypt},
		{"a plaintext without out_trade_no fails", func() (*Headers, []byte) {
			plain := strings.Replace(testTransaction, `"out_trade_no":"1217752501201407033233368018",`, "", 1)
			return resign(envelope(AlgorithmAESGCM, sealed(plain, "transaction", "a1b2c3d4e5f6"), "transaction", "a1b2c3d4e5f6"))
		}, ErrMissingField},
		{"a plaintext with a string amount fails", func() (*Headers, []byte) {
			plain := strings.Replace(testTransaction, `"total":100,`, `"total":"100",`, 1)
			return resign(envelope(AlgorithmAESGCM, sealed(plain, "transaction", "a1b2c3d4e5f6"), "transaction", "a1b2c3d4e5f6"))
		}, ErrMalformed},
		{"a payment event whose resource is a refund fails before decrypting", func() (*Headers, []byte) {
			return resign(envelopeAs(EventTransactionSuccess, OriginalTypeRefund, AlgorithmAESGCM, goodCT, "transaction", "a1b2c3d4e5f6"))
		}, ErrMalformed},
		{"a refund event whose resource is a transaction fails", func() (*Headers, []byte) {
			return resign(envelopeAs(EventRefundSuccess, OriginalTypeTransaction, AlgorithmAESGCM, refundCT, "refund", "a1b2c3d4e5f6"))
		}, ErrMalformed},
		{"another event whose resource is a transaction fails", func() (*Headers, []byte) {
			return resign(envelopeAs("SECURITY_ECHO.SUCCESS", OriginalTypeTransaction, AlgorithmAESGCM, goodCT, "transaction", "a1b2c3d4e5f6"))
		}, ErrMalformed},
		{"a refund event with a transaction plaintext fails", func() (*Headers, []byte) {
			return resign(envelopeAs(EventRefundSuccess, OriginalTypeRefund, AlgorithmAESGCM, goodCT, "transaction", "a1b2c3d4e5f6"))
		}, ErrMissingField},
		{"an oversize body fails before any crypto", func() (*Headers, []byte) {
			return resign(`{"id":"` + strings.Repeat("x", MaxNotificationBody) + `"}`)
		}, ErrMalformed},
	}
	sentinels := []error{
		ErrMissingHeader, ErrBadTimestamp, ErrExpired, ErrUnknownSerial, ErrUnsupportedSignatureType,
		ErrBadSignatureEncoding, ErrBadSignature, ErrUnsupportedAlgorithm, ErrBadNonce, ErrBadCiphertext,
		ErrDecrypt, ErrMalformed, ErrMissingField,
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, body := tc.in()
			n, err := f.parser.ParseNotice(h, body)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, s := range sentinels {
				if s != tc.want && errors.Is(err, s) {
					t.Fatalf("error %v also matches %v: sentinels must be distinct", err, s)
				}
			}
			if n.Payment != (Transaction{}) || n.Refund != (RefundNotice{}) {
				t.Fatalf("a refused notice carries a resource: %+v", n)
			}
		})
	}
}

func TestWrongKeyLengthIsRefused(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33} {
		if _, err := NewAEAD(make([]byte, n)); !errors.Is(err, ErrKeyLength) {
			t.Errorf("%d bytes: got %v", n, err)
		}
	}
}

func TestErrorsCarryNoSecrets(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h, body := f.notification(t, testTransaction, f.pubKeyID)
	h.Signature = h.Signature[:len(h.Signature)-4] + "AAAA"
	_, err := f.parser.ParseNotice(h, body)
	if err == nil || strings.Contains(err.Error(), h.Signature[:40]) || strings.Contains(err.Error(), "oUpF8u") {
		t.Fatalf("error leaks material: %v", err)
	}
}

const testRefund = `{"mchid":"1900000100","transaction_id":"1008450740201411110005820873","out_trade_no":"20150806125346","refund_id":"50200207182018070300011301001","out_refund_no":"7752501201407033233368018","refund_status":"CLOSE","success_time":"2018-06-08T10:34:56+08:00","user_received_account":"招商银行信用卡0403","amount":{"total":999,"refund":999,"payer_total":999,"payer_refund":999}}`

func TestRefundNotification(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ct, _ := f.aead.Seal("q1w2e3r4t5y6", "refund", []byte(testRefund))
	body := []byte(`{"id":"EV-2","create_time":"2018-06-08T10:34:56+08:00","resource_type":"encrypt-resource","event_type":"REFUND.CLOSED","summary":"退款关闭","resource":{"original_type":"refund","algorithm":"AEAD_AES_256_GCM","ciphertext":"` + ct + `","associated_data":"refund","nonce":"q1w2e3r4t5y6"}}`)
	nt, err := f.parser.ParseNotice(f.sign(t, f.certSerial, body), body)
	if err != nil {
		t.Fatal(err)
	}
	r := nt.Refund
	if nt.Kind != NoticeRefund || nt.ID != "EV-2" || nt.EventType != EventRefundClosed || nt.OutTradeNo() != "20150806125346" ||
		r.RefundStatus != RefundStatusClosed || r.Amount.Refund != 999 ||
		r.OutRefundNo != "7752501201407033233368018" || r.UserReceivedAccount != "招商银行信用卡0403" {
		t.Fatalf("got %+v", nt)
	}
	// ParseRefund is the same path.
	if n, r2, err := f.parser.ParseRefund(f.sign(t, f.certSerial, body), body); err != nil || r2 != r || n.ID != "EV-2" {
		t.Fatalf("ParseRefund: %+v %+v %v", n, r2, err)
	}
	// A transaction notification is not a refund.
	h2, body2 := f.notification(t, testTransaction, f.pubKeyID)
	if _, _, err := f.parser.ParseRefund(h2, body2); !errors.Is(err, ErrMalformed) {
		t.Fatalf("transaction parsed as refund: %v", err)
	}
}

func TestParseNoticeKinds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	signed := func(event, originalType, plain string) (*Headers, []byte) {
		ct, err := f.aead.Seal("z1x2c3v4b5n6", "aad", []byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(`{"id":"EV-K","event_type":"` + event + `","resource_type":"encrypt-resource","resource":{"original_type":"` +
			originalType + `","algorithm":"AEAD_AES_256_GCM","ciphertext":"` + ct + `","associated_data":"aad","nonce":"z1x2c3v4b5n6"}}`)
		return f.sign(t, f.pubKeyID, body), body
	}

	t.Run("another event that verifies and decrypts is a notice with nothing to apply", func(t *testing.T) {
		n, err := f.parser.ParseNotice(signed("SECURITY_ECHO.SUCCESS", "security", `{"echo":"x"}`))
		if err != nil || n.Kind != NoticeOther || n.ID != "EV-K" || n.OutTradeNo() != "" || n.Payment != (Transaction{}) {
			t.Fatalf("got %+v, %v", n, err)
		}
	})
	t.Run("a resource without original_type is typed by its event", func(t *testing.T) {
		n, err := f.parser.ParseNotice(signed(EventTransactionSuccess, "", testTransaction))
		if err != nil || n.Kind != NoticePayment || n.Payment.TransactionID != "4200000985202103031441826014" {
			t.Fatalf("got %+v, %v", n, err)
		}
		n, err = f.parser.ParseNotice(signed(EventRefundAbnormal, "", testRefund))
		if err != nil || n.Kind != NoticeRefund || n.Refund.RefundID != "50200207182018070300011301001" {
			t.Fatalf("got %+v, %v", n, err)
		}
	})
	t.Run("a refused notice still names its kind and id, and nothing else", func(t *testing.T) {
		h, body := signed(EventTransactionSuccess, OriginalTypeRefund, testTransaction)
		n, err := f.parser.ParseNotice(h, body)
		if !errors.Is(err, ErrMalformed) || n != (Notice{Kind: NoticePayment, ID: "EV-K", EventType: EventTransactionSuccess}) {
			t.Fatalf("got %+v, %v", n, err)
		}
		h.Nonce = "other"
		if n, err := f.parser.ParseNotice(h, body); !errors.Is(err, ErrBadSignature) || n != (Notice{}) {
			t.Fatalf("an unverified notice: %+v, %v", n, err)
		}
	})
	t.Run("a payment is not a refund and a refund is not a payment", func(t *testing.T) {
		if _, _, err := f.parser.ParseTransaction(signed(EventRefundSuccess, OriginalTypeRefund, testRefund)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseTransaction of a refund: %v", err)
		}
		if _, _, err := f.parser.ParseTransaction(signed("SECURITY_ECHO.SUCCESS", "security", "{}")); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ParseTransaction of an echo: %v", err)
		}
	})
	t.Run("kinds print as the metrics label them", func(t *testing.T) {
		if NoticeOther.String() != "other" || NoticePayment.String() != "payment" || NoticeRefund.String() != "refund" {
			t.Fatal(NoticeOther, NoticePayment, NoticeRefund)
		}
	})
}

func TestKeySet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := f.keys.AddPublicKey("NOT_A_PUB_KEY_ID", katPublicKey(t)); !errors.Is(err, ErrBadKey) {
		t.Fatalf("bad id accepted: %v", err)
	}
	if k, ok := f.keys.Newest(f.now); !ok || k.Serial != f.pubKeyID {
		t.Fatalf("newest %v", k)
	}
	ks := NewKeySet(nil)
	for i := 0; i < MaxKeys; i++ {
		if err := ks.AddPublicKey(PublicKeyIDPrefix+strconv.Itoa(i), katPublicKey(t)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ks.AddPublicKey(PublicKeyIDPrefix+"overflow", katPublicKey(t)); !errors.Is(err, ErrBadKey) {
		t.Fatalf("key set grew past MaxKeys: %v", err)
	}
	// Replacing an existing id is allowed even when full.
	if err := ks.AddPublicKey(PublicKeyIDPrefix+"0", katPublicKey(t)); err != nil {
		t.Fatal(err)
	}
	exp := NewKeySet(nil)
	_ = exp.AddCertificate(katCertificate(t, "AA01", f.now.Add(-48*time.Hour), f.now.Add(-time.Hour)))
	_ = exp.AddCertificate(katCertificate(t, "AA02", f.now.Add(-24*time.Hour), f.now.Add(time.Hour)))
	if k, ok := exp.Newest(f.now); !ok || k.Serial != "AA02" {
		t.Fatalf("newest valid cert: %v", k)
	}
	if n := exp.Prune(f.now); n != 1 || exp.Len() != 1 {
		t.Fatalf("pruned %d, left %d", n, exp.Len())
	}
}

func TestJSONScanner(t *testing.T) {
	t.Parallel()
	good := []string{
		`{}`, ` {"a":1} `, `{"a":[1,2,{"b":null}],"c":true,"d":false,"e":-0.5e+3}`,
		`{"s":"\u00e9\n\"\\\/\ud83d\ude00"}`,
	}
	for _, s := range good {
		if err := forEachMember(s, func(jsonField) error { return nil }); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []string{
		``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":tru}`,
		`{"a":"x` + "\x01" + `"}`, `{"a":"\x"}`, `{"a":"\u12"}`, `{} {}`, `{"a":1}x`,
		strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40), "{\"a\":\"\xff\"}",
	}
	for _, s := range bad {
		if err := forEachMember(s, func(jsonField) error { return nil }); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: got %v", s, err)
		}
	}
	var got string
	_ = forEachMember(`{"s":"\u00e9\n\ud83d\ude00\ud800"}`, func(f jsonField) error {
		got, _ = jsonString(f)
		return nil
	})
	if got != "é\n😀\uFFFD" {
		t.Fatalf("unescape: %q", got)
	}
}

func TestValidOutTradeNo(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"123456": true, "A_b-c|d*e": true, strings.Repeat("9", 32): true,
		"12345": false, strings.Repeat("9", 33): false, "abc def": false, "订单123456": false, "abc@12345": false,
	} {
		if ValidOutTradeNo(s) != want {
			t.Errorf("%q: want %v", s, want)
		}
	}
	if !ValidOutRefundNo("abc@1") || ValidOutRefundNo("") || ValidOutRefundNo(strings.Repeat("x", 65)) {
		t.Error("out_refund_no rules")
	}
}

func TestReplaceCertificatesDropsWithdrawnOnes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n, err := f.keys.ReplaceCertificates([]*x509.Certificate{
		katCertificate(t, "BB01", f.now.Add(-time.Hour), f.now.Add(time.Hour)),
		katCertificate(t, "BB02", f.now.Add(-2*time.Hour), f.now.Add(-time.Hour)), // expired
	}, f.now)
	if err != nil || n != 1 {
		t.Fatalf("installed %d, %v", n, err)
	}
	if _, ok := f.keys.Lookup(f.certSerial); ok {
		t.Fatal("a certificate no longer listed still verifies")
	}
	if _, ok := f.keys.Lookup("BB02"); ok {
		t.Fatal("an expired certificate was installed")
	}
	if _, ok := f.keys.Lookup(f.pubKeyID); !ok {
		t.Fatal("the public key was dropped")
	}
}

func TestAPIErrorTextIsBounded(t *testing.T) {
	t.Parallel()
	e := &APIError{Status: 400, Code: "X", Message: "line1\nFAKE LOG LINE" + strings.Repeat("a", 1000)}
	if s := e.Error(); strings.Contains(s, "\n") || len(s) > 400 {
		t.Fatalf("unbounded: %q", s)
	}
}

func TestNestedStringsWithEscapes(t *testing.T) {
	t.Parallel()
	// Nested objects are re-read by the trusted scanner: an escaped quote
	// and a run of backslashes before the closing quote must both be right.
	doc := strings.Replace(testTransaction, `"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}`,
		`"payer":{"openid":"o\"p\\\\","x":"\\\""}`, 1)
	tx, err := DecodeTransaction([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if tx.Payer.OpenID != `o"p\\` || tx.Amount.Total != 100 {
		t.Fatalf("openid %q, total %d", tx.Payer.OpenID, tx.Amount.Total)
	}
}
