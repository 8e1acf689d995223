package wxpay

import (
	"bytes"
	"crypto/aes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// K6: the official APIv2 signature example.
const (
	v2K6Key  = "192006250b4c09247ec02edce69f6a2d"
	v2K6MD5  = "9A0A8659F005D6984697E2CA0A9CF3B7"
	v2K6HMAC = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
	// K8: the APIv2 key of gopay's req_info test and its plaintext digest.
	v2K8Key       = "ziR0QKsTUfMOuochC9RfCdmfHECorQAP"
	v2K8AESKey    = "a1fdc4d1da9fb443b1091d34bcee9493"
	v2K8PlainHash = "fe9673e322c7ed0db1fa2871c6fce06da29e8063215a8418c54db8f192a7f451"
)

func v2K6Params() map[string]string {
	return map[string]string{
		"appid":       "wxd930ea5d5a258f4f",
		"mch_id":      "10000100",
		"device_info": "1000",
		"body":        "test",
		"nonce_str":   "ibuaiVcKdpRxkhJA",
	}
}

func v2MustKey(t testing.TB, key string) *V2Key {
	t.Helper()
	k, err := NewV2Key([]byte(key))
	if err != nil {
		t.Fatalf("NewV2Key: %v", err)
	}
	return k
}

func v2ReadFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "v2", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func v2K8ReqInfo(t testing.TB) string {
	return strings.TrimSpace(string(v2ReadFile(t, "req_info_k8.b64")))
}

func v2Signed(t testing.TB, k *V2Key, p map[string]string, st V2SignType) map[string]string {
	t.Helper()
	sig, err := k.Sign(p, st)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	p = maps.Clone(p)
	p["sign"] = sig
	return p
}

func TestV2KAT(t *testing.T) {
	t.Parallel()
	k := v2MustKey(t, v2K6Key)

	t.Run("K6 MD5 signs the official example", func(t *testing.T) {
		got, err := k.Sign(v2K6Params(), V2SignMD5)
		if err != nil || got != v2K6MD5 {
			t.Fatalf("Sign = %q, %v; want %s", got, err, v2K6MD5)
		}
	})
	t.Run("K6 HMAC-SHA256 signs the official example", func(t *testing.T) {
		got, err := k.Sign(v2K6Params(), V2SignHMACSHA256)
		if err != nil || got != v2K6HMAC {
			t.Fatalf("Sign = %q, %v; want %s", got, err, v2K6HMAC)
		}
	})
	t.Run("K6 signs ignore sign and empty values", func(t *testing.T) {
		p := v2K6Params()
		p["sign"] = "whatever"
		p["attach"] = ""
		if got, _ := k.Sign(p, V2SignMD5); got != v2K6MD5 {
			t.Fatalf("Sign = %q, want %s", got, v2K6MD5)
		}
	})
	t.Run("K6 signatures verify", func(t *testing.T) {
		p := v2K6Params()
		p["sign"] = v2K6MD5
		if err := k.Verify(p, V2SignMD5); err != nil {
			t.Fatalf("Verify MD5: %v", err)
		}
		p["sign"] = v2K6HMAC
		if err := k.Verify(p, V2SignHMACSHA256); err != nil {
			t.Fatalf("Verify HMAC: %v", err)
		}
	})
	t.Run("K7 paySign matches the official sample", func(t *testing.T) {
		pk := v2MustKey(t, "qazwsxedcrfvtgbyhnujmikolp111111")
		got, err := pk.RequestPayment("wxd678efh567hg6787", "wx2017033010242291fcfe0db70013231072",
			1490840662, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", V2SignMD5)
		if err != nil {
			t.Fatal(err)
		}
		want := PayParams{
			AppID: "wxd678efh567hg6787", TimeStamp: "1490840662",
			NonceStr: "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
			Package:  "prepay_id=wx2017033010242291fcfe0db70013231072",
			SignType: "MD5", PaySign: "22D9B4E54AB1950F51E0649E8810ACD6",
		}
		if got != want {
			t.Fatalf("RequestPayment =\n%+v\nwant\n%+v", got, want)
		}
	})
	t.Run("K7 paySign equals Sign over the same five fields", func(t *testing.T) {
		for _, st := range []V2SignType{V2SignMD5, V2SignHMACSHA256} {
			pp, err := k.RequestPayment("wxd678efh567hg6787", "wx201410272009395522657a690389285100", 1414561699, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", st)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := k.Sign(map[string]string{
				"appId": pp.AppID, "nonceStr": pp.NonceStr, "package": pp.Package,
				"signType": pp.SignType, "timeStamp": pp.TimeStamp,
			}, st)
			if pp.PaySign != want || pp.SignType != string(st) {
				t.Fatalf("%s: paySign %s signType %s, want %s", st, pp.PaySign, pp.SignType, want)
			}
		}
	})
	t.Run("K8 req_info decrypts to the exact published plaintext", func(t *testing.T) {
		plain, err := v2MustKey(t, v2K8Key).decryptReqInfo(v2K8ReqInfo(t))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(plain)
		if hex.EncodeToString(sum[:]) != v2K8PlainHash {
			t.Fatalf("plaintext SHA-256 %x, want %s", sum, v2K8PlainHash)
		}
		if want := v2ReadFile(t, "req_info_k8.xml"); !bytes.Equal(plain, want) {
			t.Fatalf("plaintext differs from testdata/v2/req_info_k8.xml")
		}
	})
	t.Run("K8 req_info key is the lower-case hex MD5 of the APIv2 key", func(t *testing.T) {
		k8 := v2MustKey(t, v2K8Key)
		// An AES-256 block built from the published key must agree.
		block, err := aes.NewCipher([]byte(v2K8AESKey))
		if err != nil {
			t.Fatal(err)
		}
		var a, b [16]byte
		k8.ecb.Encrypt(a[:], []byte("0123456789abcdef"))
		block.Encrypt(b[:], []byte("0123456789abcdef"))
		if a != b {
			t.Fatal("req_info key is not hex(MD5(APIv2 key))")
		}
	})
	t.Run("K8 req_info decodes into V2RefundInfo", func(t *testing.T) {
		got, err := v2MustKey(t, v2K8Key).DecryptReqInfo(v2K8ReqInfo(t))
		if err != nil {
			t.Fatal(err)
		}
		want := V2RefundInfo{
			OutRefundNo:         "50fd012ed1b311e7af7800163e32c503",
			OutTradeNo:          "4893e76d8c8b434cb64e9cd536338e33",
			RefundAccount:       "REFUND_SOURCE_RECHARGE_FUNDS",
			RefundFee:           6,
			RefundID:            "50000404922017112502468056157",
			RefundRecvAccount:   "支付用户零钱",
			RefundRequestSource: "API",
			RefundStatus:        "SUCCESS",
			SettlementRefundFee: 6,
			SettlementTotalFee:  6,
			SuccessTime:         "2017-11-25 15:36:17",
			TotalFee:            6,
			TransactionID:       "4200000015201711256947025404",
		}
		if got != want {
			t.Fatalf("DecryptReqInfo =\n%+v\nwant\n%+v", got, want)
		}
	})
}

func TestV2Fixtures(t *testing.T) {
	t.Parallel()
	k := v2MustKey(t, v2K6Key)

	for _, c := range []struct {
		file string
		st   V2SignType
	}{{"notify_pay_md5.xml", V2SignMD5}, {"notify_pay_hmac.xml", V2SignHMACSHA256}} {
		t.Run("the "+string(c.st)+" payment notification verifies and decodes", func(t *testing.T) {
			p, err := ParseV2XML(v2ReadFile(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			if err := k.Verify(p, c.st); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if err := k.VerifyAuto(p); err != nil {
				t.Fatalf("VerifyAuto: %v", err)
			}
			n, err := DecodeV2PayNotification(p)
			if err != nil {
				t.Fatal(err)
			}
			if !n.Paid() || n.TotalFee != 101 || n.CashFee != 1 || n.CouponFee != 100 ||
				n.OutTradeNo != "1409811653" || n.TransactionID != "1004400740201409030005092168" ||
				n.Attach != "支付测试" || n.TimeEnd != "20140903131540" || n.OpenID != "oUpF8uMEb4qRXf22hE3X68TekukE" ||
				len(n.Coupons) != 1 || n.Coupons[0] != (V2Coupon{Type: "CASH", ID: "10000", Fee: 100}) {
				t.Fatalf("decoded %+v", n)
			}
		})
	}

	t.Run("the refund notification decodes and its req_info decrypts", func(t *testing.T) {
		p, err := ParseV2XML(v2ReadFile(t, "notify_refund.xml"))
		if err != nil {
			t.Fatal(err)
		}
		n, err := DecodeV2RefundNotification(p)
		if err != nil {
			t.Fatal(err)
		}
		if n.ReturnCode != "SUCCESS" || n.MchID != "10000100" || n.ReqInfo != v2K8ReqInfo(t) {
			t.Fatalf("decoded %+v", n)
		}
		info, err := v2MustKey(t, v2K8Key).DecryptReqInfo(n.ReqInfo)
		if err != nil || info.RefundID != "50000404922017112502468056157" {
			t.Fatalf("DecryptReqInfo = %+v, %v", info, err)
		}
	})
}

func TestV2VerifyAuto(t *testing.T) {
	t.Parallel()
	k := v2MustKey(t, v2K6Key)
	cases := []struct {
		name     string
		signType string // "" leaves sign_type out
		signWith V2SignType
		want     error
	}{
		{"a document without sign_type is verified as MD5", "", V2SignMD5, nil},
		{"a document with sign_type HMAC-SHA256 is verified as HMAC", "HMAC-SHA256", V2SignHMACSHA256, nil},
		{"an MD5 sign under sign_type HMAC-SHA256 is recognised by its length", "HMAC-SHA256", V2SignMD5, nil},
		{"an HMAC sign under sign_type MD5 is recognised by its length", "MD5", V2SignHMACSHA256, nil},
		{"an HMAC sign without sign_type is recognised by its length", "", V2SignHMACSHA256, nil},
		{"an unknown sign_type is unsupported", "SHA1", V2SignMD5, ErrV2UnsupportedSignType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := v2K6Params()
			if c.signType != "" {
				p["sign_type"] = c.signType
			}
			p = v2Signed(t, k, p, c.signWith)
			if err := k.VerifyAuto(p); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("VerifyAuto = %v, want %v", err, c.want)
			}
		})
	}
	t.Run("a sign of another length is still a mismatch", func(t *testing.T) {
		p := v2Signed(t, k, v2K6Params(), V2SignMD5)
		p["sign"] = p["sign"][:31]
		if err := k.VerifyAuto(p); !errors.Is(err, ErrV2BadSign) {
			t.Fatalf("VerifyAuto = %v", err)
		}
	})
}

// TestV2Rejects is the negative table: each case must fail with its sentinel
// and with none of the others.
func TestV2Rejects(t *testing.T) {
	t.Parallel()
	sentinels := []error{ErrV2MissingSign, ErrV2BadSign, ErrV2UnsupportedSignType, ErrV2ReqInfo, ErrMalformed, ErrMissingField}
	k := v2MustKey(t, v2K6Key)
	k8 := v2MustKey(t, v2K8Key)
	signed := func() map[string]string { return v2Signed(t, k, v2K6Params(), V2SignMD5) }
	encrypt := func(plain []byte) string {
		s, err := k8.EncryptReqInfo(plain)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// rawECB returns Base64 of AES-256-ECB(data) under the K8 key, no padding added.
	rawECB := func(data []byte) string {
		buf := slices.Clone(data)
		for i := 0; i+16 <= len(buf); i += 16 {
			k8.ecb.Encrypt(buf[i:i+16], buf[i:i+16])
		}
		return base64.StdEncoding.EncodeToString(buf)
	}
	parse := func(s string) func() error {
		return func() error { _, err := ParseV2XML([]byte(s)); return err }
	}
	decrypt := func(key *V2Key, s string) func() error {
		return func() error { _, err := key.DecryptReqInfo(s); return err }
	}
	cases := []struct {
		name string
		run  func() error
		want error
	}{
		{"a document without sign is ErrV2MissingSign", func() error {
			p := signed()
			delete(p, "sign")
			return k.Verify(p, V2SignMD5)
		}, ErrV2MissingSign},
		{"an empty sign is ErrV2MissingSign", func() error {
			p := signed()
			p["sign"] = ""
			return k.VerifyAuto(p)
		}, ErrV2MissingSign},
		{"a wrong sign is ErrV2BadSign", func() error {
			p := signed()
			p["sign"] = "0123456789ABCDEF0123456789ABCDEF"
			return k.Verify(p, V2SignMD5)
		}, ErrV2BadSign},
		{"a lower-case hex sign is ErrV2BadSign", func() error {
			p := signed()
			p["sign"] = strings.ToLower(p["sign"])
			return k.Verify(p, V2SignMD5)
		}, ErrV2BadSign},
		{"a tampered value is ErrV2BadSign", func() error {
			p := signed()
			p["body"] = "tesT"
			return k.Verify(p, V2SignMD5)
		}, ErrV2BadSign},
		{"a field added after signing is ErrV2BadSign", func() error {
			p := signed()
			p["total_fee"] = "1"
			return k.Verify(p, V2SignMD5)
		}, ErrV2BadSign},
		{"a sign made with another key is ErrV2BadSign", func() error {
			p := v2Signed(t, k8, v2K6Params(), V2SignMD5)
			return k.Verify(p, V2SignMD5)
		}, ErrV2BadSign},
		{"an MD5 sign verified as HMAC-SHA256 is ErrV2BadSign", func() error {
			return k.Verify(signed(), V2SignHMACSHA256)
		}, ErrV2BadSign},
		{"an unknown sign type is ErrV2UnsupportedSignType", func() error {
			return k.Verify(signed(), "SHA1")
		}, ErrV2UnsupportedSignType},
		{"signing with an unknown sign type is ErrV2UnsupportedSignType", func() error {
			_, err := k.Sign(v2K6Params(), "md5")
			return err
		}, ErrV2UnsupportedSignType},
		{"an empty APIv2 key is ErrMissingField", func() error {
			_, err := NewV2Key(nil)
			return err
		}, ErrMissingField},
		{"req_info that is not Base64 is ErrV2ReqInfo", decrypt(k8, "not*base64!"), ErrV2ReqInfo},
		{"req_info of 20 bytes (not whole blocks) is ErrV2ReqInfo", decrypt(k8, base64.StdEncoding.EncodeToString(make([]byte, 20))), ErrV2ReqInfo},
		{"empty req_info is ErrV2ReqInfo", decrypt(k8, ""), ErrV2ReqInfo},
		{"req_info with a zero pad byte is ErrV2ReqInfo", decrypt(k8, rawECB([]byte("<root></root>\x00\x00\x00"))), ErrV2ReqInfo},
		{"req_info with inconsistent pad bytes is ErrV2ReqInfo", decrypt(k8, rawECB([]byte("<root></root>\x01\x03\x03"))), ErrV2ReqInfo},
		{"req_info with a pad byte over 16 is ErrV2ReqInfo", decrypt(k8, rawECB([]byte("<root></root>\x11\x11\x11"))), ErrV2ReqInfo},
		{"req_info under the wrong key is ErrV2ReqInfo", decrypt(k, v2K8ReqInfo(t)), ErrV2ReqInfo},
		{"req_info whose plaintext is not XML is ErrV2ReqInfo", decrypt(k8, encrypt([]byte("refund_status=SUCCESS"))), ErrV2ReqInfo},
		{"req_info without refund_id is ErrV2ReqInfo", decrypt(k8, encrypt([]byte("<root><out_refund_no>1</out_refund_no></root>"))), ErrV2ReqInfo},
		{"XML with a DOCTYPE is ErrMalformed", parse(`<!DOCTYPE xml [<!ENTITY x "y">]><xml><a>&x;</a></xml>`), ErrMalformed},
		{"XML with a DOCTYPE inside the root is ErrMalformed", parse(`<xml><!DOCTYPE x><a>1</a></xml>`), ErrMalformed},
		{"XML with an undeclared entity is ErrMalformed", parse(`<xml><a>&x;</a></xml>`), ErrMalformed},
		{"XML with a nested element is ErrMalformed", parse(`<xml><a><b>1</b></a></xml>`), ErrMalformed},
		{"XML over 64 KiB is ErrMalformed", parse("<xml><a>" + strings.Repeat("x", V2MaxXMLSize) + "</a></xml>"), ErrMalformed},
		{"XML with a duplicate key is ErrMalformed", parse(`<xml><sign>A</sign><sign>B</sign></xml>`), ErrMalformed},
		{"a body that is not XML is ErrMalformed", parse(`{"return_code":"SUCCESS"}`), ErrMalformed},
		{"XML that is not UTF-8 is ErrMalformed", parse("<xml><a>\xff</a></xml>"), ErrMalformed},
		{"XML in another encoding is ErrMalformed", parse(`<?xml version="1.0" encoding="GBK"?><xml><a>1</a></xml>`), ErrMalformed},
		{"XML with attributes is ErrMalformed", parse(`<xml><a x="1">1</a></xml>`), ErrMalformed},
		{"XML with a comment is ErrMalformed", parse(`<xml><!-- c --><a>1</a></xml>`), ErrMalformed},
		{"XML with a mismatched close tag is ErrMalformed", parse(`<xml><a>1</b></xml>`), ErrMalformed},
		{"XML with trailing content is ErrMalformed", parse(`<xml><a>1</a></xml><xml/>`), ErrMalformed},
		{"XML with text outside fields is ErrMalformed", parse(`<xml>oops<a>1</a></xml>`), ErrMalformed},
		{"XML with a control character is ErrMalformed", parse("<xml><a>\x01</a></xml>"), ErrMalformed},
		{"XML with an unterminated CDATA is ErrMalformed", parse(`<xml><a><![CDATA[1</a></xml>`), ErrMalformed},
		{"XML with a reference to NUL is ErrMalformed", parse(`<xml><a>&#0;</a></xml>`), ErrMalformed},
		{"XML with another root element is ErrMalformed", parse(`<root><a>1</a></root>`), ErrMalformed},
		{"a truncated document is ErrMalformed", parse(`<xml><a>1</a>`), ErrMalformed},
		{"a notification without return_code is ErrMissingField", func() error {
			_, err := DecodeV2PayNotification(map[string]string{"result_code": "SUCCESS"})
			return err
		}, ErrMissingField},
		{"a notification with total_fee 0 is ErrMalformed", func() error {
			p := v2PaidParams()
			p["total_fee"] = "0"
			_, err := DecodeV2PayNotification(p)
			return err
		}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := c.run()
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			for _, s := range sentinels {
				if s != c.want && errors.Is(err, s) && !(c.want == ErrV2ReqInfo && (s == ErrMalformed || s == ErrMissingField)) {
					t.Fatalf("err = %v also matches %v", err, s)
				}
			}
		})
	}
}

func v2PaidParams() map[string]string {
	return map[string]string{
		"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": "wxd930ea5d5a258f4f",
		"mch_id": "10000100", "nonce_str": "n", "out_trade_no": "o1", "transaction_id": "t1",
		"openid": "oid", "trade_type": "JSAPI", "bank_type": "CFT", "time_end": "20240101120000",
		"total_fee": "100", "cash_fee": "100",
	}
}

func TestV2DecodePayNotification(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		edit   func(p map[string]string)
		want   error
		wantIn string
	}{
		{"a complete paid notification decodes", func(map[string]string) {}, nil, ""},
		{"a FAIL return_code needs nothing else", func(p map[string]string) {
			clear(p)
			p["return_code"], p["return_msg"] = "FAIL", "签名失败"
		}, nil, ""},
		{"a business failure needs no amounts", func(p map[string]string) {
			p["result_code"] = "FAIL"
			delete(p, "total_fee")
			delete(p, "transaction_id")
		}, nil, ""},
		{"a bad return_code is malformed", func(p map[string]string) { p["return_code"] = "OK" }, ErrMalformed, "return_code"},
		{"a missing result_code is a missing field", func(p map[string]string) { delete(p, "result_code") }, ErrMissingField, "result_code"},
		{"a missing transaction_id is a missing field", func(p map[string]string) { delete(p, "transaction_id") }, ErrMissingField, "transaction_id"},
		{"a missing total_fee is a missing field", func(p map[string]string) { delete(p, "total_fee") }, ErrMissingField, "total_fee"},
		{"a negative total_fee is malformed", func(p map[string]string) { p["total_fee"] = "-1" }, ErrMalformed, "total_fee"},
		{"a fractional total_fee is malformed", func(p map[string]string) { p["total_fee"] = "1.00" }, ErrMalformed, "total_fee"},
		{"a total_fee with a leading zero is malformed", func(p map[string]string) { p["total_fee"] = "0100" }, ErrMalformed, "total_fee"},
		{"a huge total_fee is malformed", func(p map[string]string) { p["total_fee"] = "99999999999999999999" }, ErrMalformed, "total_fee"},
		{"a bad cash_fee is malformed", func(p map[string]string) { p["cash_fee"] = "1e2" }, ErrMalformed, "cash_fee"},
		{"a bad time_end is malformed", func(p map[string]string) { p["time_end"] = "2024-01-01 12:00:00" }, ErrMalformed, "time_end"},
		{"an impossible time_end is malformed", func(p map[string]string) { p["time_end"] = "20241301120000" }, ErrMalformed, "time_end"},
		{"a coupon without its fee is a missing field", func(p map[string]string) { p["coupon_count"] = "1" }, ErrMissingField, "coupon_fee_0"},
		{"too many coupons are malformed", func(p map[string]string) { p["coupon_count"] = "100000" }, ErrMalformed, "coupon_count"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := v2PaidParams()
			c.edit(p)
			n, err := DecodeV2PayNotification(p)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if n.Paid() != (p["return_code"] == "SUCCESS" && p["result_code"] == "SUCCESS") {
					t.Fatalf("Paid() = %v for %+v", n.Paid(), n)
				}
				return
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.wantIn) {
				t.Fatalf("err = %v, want %v naming %s", err, c.want, c.wantIn)
			}
		})
	}
}

func TestV2UnifiedOrder(t *testing.T) {
	t.Parallel()
	order := V2UnifiedOrder{
		AppID: "wxd930ea5d5a258f4f", MchID: "10000100", NonceStr: "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
		SignType: V2SignHMACSHA256, Body: "腾讯充值中心-QQ会员充值", OutTradeNo: "20150806125346",
		TotalFee: 88, SpbillCreateIP: "123.12.12.123", NotifyURL: "https://pay.example.com/wxpay/v2/notify",
		TradeType: "JSAPI", OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", Attach: "a&b", TimeExpire: "20260101120000",
	}
	t.Run("a complete JSAPI order is valid and maps to wire names", func(t *testing.T) {
		if err := order.Validate(); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
			"sign_type": "HMAC-SHA256", "body": "腾讯充值中心-QQ会员充值", "out_trade_no": "20150806125346",
			"total_fee": "88", "spbill_create_ip": "123.12.12.123", "notify_url": "https://pay.example.com/wxpay/v2/notify",
			"trade_type": "JSAPI", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "attach": "a&b", "time_expire": "20260101120000",
		}
		if got := order.Params(); !maps.Equal(got, want) {
			t.Fatalf("Params =\n%v\nwant\n%v", got, want)
		}
	})
	t.Run("a signed order survives XML and verifies", func(t *testing.T) {
		k := v2MustKey(t, v2K6Key)
		p := v2Signed(t, k, order.Params(), order.SignType)
		back, err := ParseV2XML(AppendV2XML(nil, p))
		if err != nil {
			t.Fatal(err)
		}
		if err := k.VerifyAuto(back); err != nil {
			t.Fatal(err)
		}
	})
	bad := []struct {
		name string
		edit func(o *V2UnifiedOrder)
		want error
	}{
		{"an order without openid for JSAPI is a missing field", func(o *V2UnifiedOrder) { o.OpenID = "" }, ErrMissingField},
		{"an order without notify_url is a missing field", func(o *V2UnifiedOrder) { o.NotifyURL = "" }, ErrMissingField},
		{"an order for 0 fen is malformed", func(o *V2UnifiedOrder) { o.TotalFee = 0 }, ErrMalformed},
		{"an order with a 33-character out_trade_no is malformed", func(o *V2UnifiedOrder) { o.OutTradeNo = strings.Repeat("1", 33) }, ErrMalformed},
		{"an order with a slash in out_trade_no is malformed", func(o *V2UnifiedOrder) { o.OutTradeNo = "a/b" }, ErrMalformed},
		{"an order with a bad time_expire is malformed", func(o *V2UnifiedOrder) { o.TimeExpire = "2026-01-01" }, ErrMalformed},
		{"an order with sign_type SHA1 is unsupported", func(o *V2UnifiedOrder) { o.SignType = "SHA1" }, ErrV2UnsupportedSignType},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			o := order
			c.edit(&o)
			if err := o.Validate(); !errors.Is(err, c.want) {
				t.Fatalf("Validate = %v, want %v", err, c.want)
			}
		})
	}
}

func TestV2ParseUnifiedOrderReply(t *testing.T) {
	t.Parallel()
	t.Run("a successful reply carries prepay_id", func(t *testing.T) {
		p, err := ParseV2XML([]byte(`<xml><return_code><![CDATA[SUCCESS]]></return_code>
<return_msg><![CDATA[OK]]></return_msg>
<appid><![CDATA[wx2421b1c4370ec43b]]></appid>
<mch_id><![CDATA[10000100]]></mch_id>
<nonce_str><![CDATA[IITRi8Iabbblz1Jc]]></nonce_str>
<sign><![CDATA[7921E432F65EB8ED0CE9755F0E86D72F]]></sign>
<result_code><![CDATA[SUCCESS]]></result_code>
<prepay_id><![CDATA[wx201411101639507cbf6ffd8b0779950874]]></prepay_id>
<trade_type><![CDATA[JSAPI]]></trade_type>
</xml>`))
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseV2UnifiedOrderReply(p)
		if err != nil || !r.OK() || r.PrepayID != "wx201411101639507cbf6ffd8b0779950874" || r.TradeType != "JSAPI" {
			t.Fatalf("reply %+v, %v", r, err)
		}
	})
	t.Run("a communication failure is not an error", func(t *testing.T) {
		r, err := ParseV2UnifiedOrderReply(map[string]string{"return_code": "FAIL", "return_msg": "签名错误"})
		if err != nil || r.OK() || r.ReturnMsg != "签名错误" {
			t.Fatalf("reply %+v, %v", r, err)
		}
	})
	t.Run("a business failure carries err_code", func(t *testing.T) {
		r, err := ParseV2UnifiedOrderReply(map[string]string{"return_code": "SUCCESS", "result_code": "FAIL", "err_code": "ORDERPAID"})
		if err != nil || r.OK() || r.ErrCode != "ORDERPAID" {
			t.Fatalf("reply %+v, %v", r, err)
		}
	})
	t.Run("a success without prepay_id is a missing field", func(t *testing.T) {
		_, err := ParseV2UnifiedOrderReply(map[string]string{"return_code": "SUCCESS", "result_code": "SUCCESS", "trade_type": "JSAPI"})
		if !errors.Is(err, ErrMissingField) || !strings.Contains(err.Error(), "prepay_id") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a reply without return_code is a missing field", func(t *testing.T) {
		if _, err := ParseV2UnifiedOrderReply(map[string]string{}); !errors.Is(err, ErrMissingField) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestV2XML(t *testing.T) {
	t.Parallel()
	ok := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"text and CDATA values parse", `<xml><a>1</a><b><![CDATA[x<y>]]></b></xml>`, map[string]string{"a": "1", "b": "x<y>"}},
		{"white space between fields is ignored", "\ufeff \n<xml>\n  <a>1</a>\n</xml>\n", map[string]string{"a": "1"}},
		{"an XML declaration in UTF-8 is accepted", `<?xml version="1.0" encoding="utf-8" standalone='yes'?><xml><a>1</a></xml>`, map[string]string{"a": "1"}},
		{"predefined entities and character references decode", `<xml><a>&lt;&gt;&amp;&apos;&quot;&#20320;&#x597D;</a></xml>`, map[string]string{"a": `<>&'"你好`}},
		{"empty elements are empty values", `<xml><a/><b></b><c ></c></xml>`, map[string]string{"a": "", "b": "", "c": ""}},
		{"split CDATA sections join", `<xml><a><![CDATA[]]]]><![CDATA[>]]></a></xml>`, map[string]string{"a": "]]>"}},
		{"mixed text and CDATA join", `<xml><a>x<![CDATA[y]]>z</a></xml>`, map[string]string{"a": "xyz"}},
		{"white space inside values is kept", "<xml><a> 1\r\n</a></xml>", map[string]string{"a": " 1\r\n"}},
		{"an empty root is an empty map", `<xml/>`, map[string]string{}},
		{"tags may end with white space", "<xml ><a >1</a\n></xml >", map[string]string{"a": "1"}},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseV2XML([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, c.want) {
				t.Fatalf("ParseV2XML = %q, want %q", got, c.want)
			}
		})
	}

	t.Run("AppendV2XML writes sorted CDATA and splits ]]>", func(t *testing.T) {
		got := string(AppendV2XML([]byte("prefix:"), map[string]string{"b": "x]]>y", "a": "", "bad name": "dropped"}))
		want := "prefix:<xml><a><![CDATA[]]></a><b><![CDATA[x]]]]><![CDATA[>y]]></b></xml>"
		if got != want {
			t.Fatalf("AppendV2XML = %s\nwant %s", got, want)
		}
	})
	t.Run("AppendV2XML output parses back to the same map", func(t *testing.T) {
		in := map[string]string{
			"return_code": "SUCCESS", "attach": "<a>&amp;]]>]]]>", "body": "腾讯充值中心-QQ会员充值",
			"empty": "", "ws": " \t\n", "x.y-z_1": "]",
		}
		got, err := ParseV2XML(AppendV2XML(nil, in))
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, in) {
			t.Fatalf("round trip = %q, want %q", got, in)
		}
	})
	t.Run("the success reply is WeChat's exact text and parses", func(t *testing.T) {
		p, err := ParseV2XML([]byte(V2NotifySuccessReply))
		if err != nil || !maps.Equal(p, map[string]string{"return_code": "SUCCESS", "return_msg": "OK"}) {
			t.Fatalf("%v %v", p, err)
		}
		if got := string(AppendV2XML(nil, map[string]string{"return_msg": "OK", "return_code": "SUCCESS"})); got != V2NotifySuccessReply {
			t.Fatalf("AppendV2XML = %s", got)
		}
	})
	t.Run("the fail reply carries a sanitised message", func(t *testing.T) {
		b := V2NotifyFailReply("签名失败]]>\x00\xff")
		p, err := ParseV2XML(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		want := map[string]string{"return_code": "FAIL", "return_msg": "签名失败]]>\uFFFD\uFFFD"}
		if !maps.Equal(p, want) {
			t.Fatalf("fail reply parses to %q", p)
		}
	})
	t.Run("a document of exactly 64 KiB is accepted", func(t *testing.T) {
		doc := "<xml><a>" + strings.Repeat("x", V2MaxXMLSize-len("<xml><a></a></xml>")) + "</a></xml>"
		if _, err := ParseV2XML([]byte(doc)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestV2RoundTrips(t *testing.T) {
	t.Parallel()
	t.Run("EncryptReqInfo and DecryptReqInfo invert each other", func(t *testing.T) {
		k := v2MustKey(t, v2K8Key)
		for n := range 50 {
			plain := bytes.Repeat([]byte{'a'}, n)
			ct, err := k.EncryptReqInfo(plain)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.decryptReqInfo(ct)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("len %d: got %q, %v", n, got, err)
			}
		}
		plain := v2ReadFile(t, "req_info_k8.xml")
		ct, err := k.EncryptReqInfo(plain)
		if err != nil {
			t.Fatal(err)
		}
		if ct != v2K8ReqInfo(t) {
			t.Fatal("EncryptReqInfo does not reproduce the K8 ciphertext")
		}
	})
	t.Run("Sign and Verify agree on arbitrary fields", func(t *testing.T) {
		k := v2MustKey(t, "k")
		p := map[string]string{"Z": "1", "a": "2", "_": "3", "中": "4", "a_b": "&=", "empty": ""}
		for _, st := range []V2SignType{V2SignMD5, V2SignHMACSHA256} {
			if err := k.Verify(v2Signed(t, k, p, st), st); err != nil {
				t.Fatalf("%s: %v", st, err)
			}
		}
	})
	t.Run("an empty map signs just the key", func(t *testing.T) {
		k := v2MustKey(t, v2K6Key)
		got, _ := k.Sign(nil, V2SignMD5)
		d := md5.Sum([]byte("key=" + v2K6Key))
		if sum := strings.ToUpper(hex.EncodeToString(d[:])); got != sum {
			t.Fatalf("Sign(nil) = %s, want %s", got, sum)
		}
	})
}

func TestV2HMACKeyLengths(t *testing.T) {
	t.Parallel()
	p := v2K6Params()
	for _, n := range []int{1, 32, 63, 64, 65, 200} {
		t.Run(fmt.Sprintf("a %d-byte key signs as crypto/hmac does", n), func(t *testing.T) {
			key := strings.Repeat("k", n)
			m := hmac.New(sha256.New, []byte(key))
			m.Write([]byte(v2RefSignString(p, key)))
			want := strings.ToUpper(hex.EncodeToString(m.Sum(nil)))
			if got, err := v2MustKey(t, key).Sign(p, V2SignHMACSHA256); err != nil || got != want {
				t.Fatalf("Sign = %s, %v; want %s", got, err, want)
			}
		})
	}
}

func TestV2UpperHex(t *testing.T) {
	t.Parallel()
	src := make([]byte, 256)
	for i := range src {
		src[i] = byte(i)
	}
	dst := make([]byte, 2*len(src))
	if n := upperHex(dst, src); n != len(dst) || string(dst) != strings.ToUpper(hex.EncodeToString(src)) {
		t.Fatalf("upperHex = %d, %s", n, dst)
	}
}

func TestV2KeyDoesNotPrint(t *testing.T) {
	t.Parallel()
	k := v2MustKey(t, v2K6Key)
	for _, s := range []string{k.String(), k.GoString()} {
		if strings.Contains(s, v2K6Key) {
			t.Fatalf("key leaked: %s", s)
		}
	}
}

// v2RefSignString is the signing string built the obvious way, the reference
// the optimised sorter is checked against.
func v2RefSignString(p map[string]string, key string) string {
	var names []string
	for k, v := range p {
		if v != "" && k != "sign" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var sb strings.Builder
	for _, k := range names {
		sb.WriteString(k + "=" + p[k] + "&")
	}
	return sb.String() + "key=" + key
}

func TestV2SignOrder(t *testing.T) {
	t.Parallel()
	k := v2MustKey(t, v2K6Key)
	check := func(t *testing.T, p map[string]string) {
		t.Helper()
		d := md5.Sum([]byte(v2RefSignString(p, v2K6Key)))
		want := strings.ToUpper(hex.EncodeToString(d[:]))
		if got, err := k.Sign(p, V2SignMD5); err != nil || got != want {
			t.Fatalf("Sign = %s, %v; want %s over %q", got, err, want, v2RefSignString(p, v2K6Key))
		}
	}
	t.Run("names sharing a six-byte prefix sort by the whole name", func(t *testing.T) {
		p := map[string]string{}
		for i := range 12 {
			p[fmt.Sprintf("coupon_fee_%d", i)] = "1"
			p[fmt.Sprintf("coupon_id_%d", i)] = "x"
			p[fmt.Sprintf("coupon_type_%d", i)] = "CASH"
		}
		p["coupon"], p["coupo"], p["c"], p["coupon_"], p["a\x00"], p["a"] = "1", "2", "3", "4", "5", "6"
		check(t, p)
	})
	t.Run("random names sort in byte order", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		const alphabet = "ab_\x00\xff"
		for range 2000 {
			p := map[string]string{}
			for range rng.IntN(40) {
				b := make([]byte, rng.IntN(10))
				for i := range b {
					b[i] = alphabet[rng.IntN(len(alphabet))]
				}
				p[string(b)] = "v"
			}
			check(t, p)
		}
	})
	t.Run("strings to sign longer than the pooled buffer are signed whole", func(t *testing.T) {
		for _, n := range []int{1000, 5000, 70 << 10, 100} {
			p := v2K6Params()
			p["detail"] = strings.Repeat("d", n)
			check(t, p)
		}
	})
	t.Run("thousands of names sharing a prefix sort by the whole name", func(t *testing.T) {
		p := make(map[string]string, 5000)
		for i := range 5000 {
			p[fmt.Sprintf("coupon_id_%d", i)] = "v"
		}
		check(t, p)
	})
	t.Run("more than 65536 fields still sort", func(t *testing.T) {
		p := make(map[string]string, 70000)
		for i := range 70000 {
			p[fmt.Sprintf("f%06d", 69999-i)] = "v"
		}
		check(t, p)
	})
}
