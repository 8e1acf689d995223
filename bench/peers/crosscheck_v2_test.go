package peers

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand"
	"strconv"
	"testing"

	gpaes "github.com/go-pay/crypto/aes"
	"github.com/go-pay/gopay"
	"github.com/go-pay/gopay/wechat"

	"github.com/wxpayd/wxpayd/wxpay"
)

// unifiedOrder12 is the 12-field APIv2 unifiedorder map the V2 benchmarks
// sign with both algorithms.
func unifiedOrder12() map[string]string {
	return map[string]string{
		"appid":            "wxd930ea5d5a258f4f",
		"mch_id":           "10000100",
		"device_info":      "013467007045764",
		"nonce_str":        "ibuaiVcKdpRxkhJA",
		"body":             "腾讯充值中心-QQ会员充值",
		"attach":           "深圳分店",
		"out_trade_no":     "20150806125346",
		"total_fee":        "88",
		"spbill_create_ip": "123.12.12.123",
		"notify_url":       "https://www.weixin.qq.com/wxpay/pay.php",
		"trade_type":       "JSAPI",
		"openid":           "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
	}
}

func bodyMap(m map[string]string) gopay.BodyMap {
	bm := make(gopay.BodyMap, len(m))
	for k, v := range m {
		bm[k] = v
	}
	return bm
}

var v2Types = []wxpay.V2SignType{wxpay.V2SignMD5, wxpay.V2SignHMACSHA256}

type v2Case struct {
	name string
	m    map[string]string
	want map[wxpay.V2SignType]string // known answers, if any
}

func v2Cases() []v2Case {
	r := rand.New(rand.NewSource(7))
	cases := []v2Case{
		{"the official K6 example gives the published MD5 and HMAC signatures", map[string]string{
			"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000", "body": "test",
			"nonce_str": "ibuaiVcKdpRxkhJA"}, map[wxpay.V2SignType]string{
			wxpay.V2SignMD5:        "9A0A8659F005D6984697E2CA0A9CF3B7",
			wxpay.V2SignHMACSHA256: "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"}},
		{"a 12-field unifiedorder request signs the same", unifiedOrder12(), nil},
		{"values with spaces, '&', '=', quotes and UTF-8 are signed raw", map[string]string{
			"body": "a&b=c d \"q\" 中文 😀", "attach": "x=1&y=2", "nonce_str": "n"}, nil},
		{"empty values are left out", map[string]string{"appid": "wx1", "device_info": "", "attach": "", "nonce_str": "n"}, nil},
		{"sign_type is signed like any field", map[string]string{"appid": "wx1", "sign_type": "HMAC-SHA256", "nonce_str": "n"}, nil},
		{"upper-case names sort before lower-case ones (byte order)", map[string]string{
			"Zeta": "1", "alpha": "2", "Alpha": "3", "_x": "4", "a_b": "5", "ab": "6"}, nil},
		{"an unknown new field is signed", map[string]string{"appid": "wx1", "nonce_str": "n", "new_field_2030": "v"}, nil},
	}
	for i := range 20 {
		m := map[string]string{}
		for j := range 1 + r.Intn(30) {
			v := make([]byte, r.Intn(40))
			for k := range v {
				v[k] = byte(0x20 + r.Intn(0x5f))
			}
			m[fmt.Sprintf("f%c%d", 'a'+r.Intn(26), j)] = string(v)
		}
		cases = append(cases, v2Case{fmt.Sprintf("random printable map %d signs the same", i), m, nil})
	}
	return cases
}

func newV2Key(t testing.TB, key string) *wxpay.V2Key {
	t.Helper()
	k, err := wxpay.NewV2Key([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestV2SignMatchesGopay(t *testing.T) {
	t.Parallel()
	k := newV2Key(t, apiV2Key)
	for _, c := range v2Cases() {
		for _, st := range v2Types {
			t.Run(string(st)+"/"+c.name, func(t *testing.T) {
				ours, err := k.Sign(c.m, st)
				if err != nil {
					t.Fatal(err)
				}
				theirs := wechat.GetReleaseSign(apiV2Key, string(st), bodyMap(c.m))
				if ours != theirs {
					t.Errorf("ours %s, gopay %s", ours, theirs)
				}
				if want := c.want[st]; want != "" && ours != want {
					t.Errorf("ours %s, known answer %s", ours, want)
				}
			})
		}
	}
}

func TestV2SignaturesVerifyBothWays(t *testing.T) {
	t.Parallel()
	k := newV2Key(t, apiV2Key)
	for _, c := range v2Cases() {
		for _, st := range v2Types {
			t.Run(string(st)+"/"+c.name, func(t *testing.T) {
				// gopay signs, we verify.
				signed := maps.Clone(c.m)
				signed["sign"] = wechat.GetReleaseSign(apiV2Key, string(st), bodyMap(c.m))
				if err := k.Verify(signed, st); err != nil {
					t.Errorf("our Verify of gopay's sign: %v", err)
				}
				if _, typed := c.m["sign_type"]; !typed {
					if err := k.VerifyAuto(signed); err != nil {
						t.Errorf("our VerifyAuto of gopay's sign: %v", err)
					}
				}
				signed["sign"] = signed["sign"][:4] + "0000" + signed["sign"][8:]
				if err := k.Verify(signed, st); !errors.Is(err, wxpay.ErrV2BadSign) && signed["sign"] != wechat.GetReleaseSign(apiV2Key, string(st), bodyMap(c.m)) {
					t.Errorf("a changed sign: %v, want ErrV2BadSign", err)
				}
				// We sign, gopay verifies (VerifySign drops sign itself).
				ours, err := k.Sign(c.m, st)
				if err != nil {
					t.Fatal(err)
				}
				bm := bodyMap(c.m)
				bm["sign"] = ours
				if ok, err := wechat.VerifySign(apiV2Key, string(st), bm); !ok || err != nil {
					t.Errorf("gopay VerifySign of ours: %v %v", ok, err)
				}
			})
		}
	}
}

func TestV2PaySignMatchesGopay(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, key, appID, prepayID string
		ts                         int64
		nonce                      string
		st                         wxpay.V2SignType
		want                       string
	}{
		{"the official K7 sample gives the published MD5 paySign", "qazwsxedcrfvtgbyhnujmikolp111111",
			"wxd678efh567hg6787", "wx2017033010242291fcfe0db70013231072", 1490840662, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
			wxpay.V2SignMD5, "22D9B4E54AB1950F51E0649E8810ACD6"},
		{"the same sample with HMAC-SHA256 equals gopay's", "qazwsxedcrfvtgbyhnujmikolp111111",
			"wxd678efh567hg6787", "wx2017033010242291fcfe0db70013231072", 1490840662, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
			wxpay.V2SignHMACSHA256, ""},
		{"a fresh nonce with MD5 equals gopay's", apiV2Key, appID, prepayID, 1717261439, wxpay.NewNonce(), wxpay.V2SignMD5, ""},
		{"a fresh nonce with HMAC-SHA256 equals gopay's", apiV2Key, appID, prepayID, 1717261439, wxpay.NewNonce(), wxpay.V2SignHMACSHA256, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := newV2Key(t, c.key).RequestPayment(c.appID, c.prepayID, c.ts, c.nonce, c.st)
			if err != nil {
				t.Fatal(err)
			}
			theirs := wechat.GetMiniPaySign(c.appID, c.nonce, "prepay_id="+c.prepayID, string(c.st), strconv.FormatInt(c.ts, 10), c.key)
			if p.PaySign != theirs {
				t.Errorf("ours %s, gopay %s", p.PaySign, theirs)
			}
			if c.want != "" && p.PaySign != c.want {
				t.Errorf("ours %s, known answer %s", p.PaySign, c.want)
			}
			if p.SignType != string(c.st) || p.Package != "prepay_id="+c.prepayID || p.TimeStamp != strconv.FormatInt(c.ts, 10) || p.NonceStr != c.nonce {
				t.Errorf("params %+v", p)
			}
		})
	}
}

// refundXML is a req_info plaintext in WeChat's layout.
func refundXML(outRefundNo, recv string) []byte {
	return []byte("<root>\n<out_refund_no><![CDATA[" + outRefundNo + "]]></out_refund_no>\n" +
		"<out_trade_no><![CDATA[4893e76d8c8b434cb64e9cd536338e33]]></out_trade_no>\n" +
		"<refund_account><![CDATA[REFUND_SOURCE_RECHARGE_FUNDS]]></refund_account>\n" +
		"<refund_fee><![CDATA[6]]></refund_fee>\n" +
		"<refund_id><![CDATA[50000404922017112502468056157]]></refund_id>\n" +
		"<refund_recv_accout><![CDATA[" + recv + "]]></refund_recv_accout>\n" +
		"<refund_request_source><![CDATA[API]]></refund_request_source>\n" +
		"<refund_status><![CDATA[SUCCESS]]></refund_status>\n" +
		"<settlement_refund_fee><![CDATA[6]]></settlement_refund_fee>\n" +
		"<settlement_total_fee><![CDATA[6]]></settlement_total_fee>\n" +
		"<success_time><![CDATA[2017-11-25 15:36:17]]></success_time>\n" +
		"<total_fee><![CDATA[6]]></total_fee>\n" +
		"<transaction_id><![CDATA[4200000015201711256947025404]]></transaction_id>\n</root>")
}

func sameRefundInfo(t *testing.T, ours wxpay.V2RefundInfo, g *wechat.RefundNotify) {
	t.Helper()
	if ours.OutRefundNo != g.OutRefundNo || ours.OutTradeNo != g.OutTradeNo || ours.RefundID != g.RefundId ||
		ours.TransactionID != g.TransactionId || ours.RefundStatus != g.RefundStatus || ours.SuccessTime != g.SuccessTime ||
		ours.RefundRecvAccount != g.RefundRecvAccout || ours.RefundAccount != g.RefundAccount ||
		ours.RefundRequestSource != g.RefundRequestSource || strconv.FormatInt(ours.RefundFee, 10) != g.RefundFee ||
		strconv.FormatInt(ours.TotalFee, 10) != g.TotalFee || strconv.FormatInt(ours.SettlementRefundFee, 10) != g.SettlementRefundFee ||
		strconv.FormatInt(ours.SettlementTotalFee, 10) != g.SettlementTotalFee {
		t.Errorf("ours %+v\ngopay %+v", ours, *g)
	}
}

func TestV2ReqInfoAgreesWithGopay(t *testing.T) {
	t.Parallel()
	const k8Key = "ziR0QKsTUfMOuochC9RfCdmfHECorQAP"
	k8 := newV2Key(t, k8Key)
	t.Run("the K8 req_info from gopay's tests decrypts to what gopay decrypts", func(t *testing.T) {
		reqInfo := readTestdataString(t, "k8_req_info.txt")
		ours, err := k8.DecryptReqInfo(reqInfo)
		if err != nil {
			t.Fatal(err)
		}
		g, err := wechat.DecryptRefundNotifyReqInfo(reqInfo, k8Key)
		if err != nil {
			t.Fatal(err)
		}
		sameRefundInfo(t, ours, g)
		if ours.RefundID != "50000404922017112502468056157" || ours.RefundStatus != "SUCCESS" {
			t.Errorf("known answer: %+v", ours)
		}
	})
	for i, plain := range [][]byte{
		refundXML("50fd012ed1b311e7af7800163e32c503", "支付用户零钱"),
		refundXML("R1", "招商银行信用卡0403"),
		refundXML("0123456789abcdef0123456789abcdef", "x"), // plaintext length a multiple of 16 or not
	} {
		t.Run(fmt.Sprintf("our EncryptReqInfo output %d decrypts with gopay", i), func(t *testing.T) {
			reqInfo, err := k8.EncryptReqInfo(plain)
			if err != nil {
				t.Fatal(err)
			}
			g, err := wechat.DecryptRefundNotifyReqInfo(reqInfo, k8Key)
			if err != nil {
				t.Fatalf("gopay: %v", err)
			}
			ours, err := k8.DecryptReqInfo(reqInfo)
			if err != nil {
				t.Fatal(err)
			}
			sameRefundInfo(t, ours, g)
		})
		t.Run(fmt.Sprintf("gopay's AES-ECB ciphertext %d decrypts with ours", i), func(t *testing.T) {
			sum := md5.Sum([]byte(k8Key))
			ct, err := gpaes.ECBEncrypt(plain, []byte(hex.EncodeToString(sum[:])))
			if err != nil {
				t.Fatal(err)
			}
			reqInfo := base64.StdEncoding.EncodeToString(ct)
			ours, err := k8.DecryptReqInfo(reqInfo)
			if err != nil {
				t.Fatalf("ours: %v", err)
			}
			g, err := wechat.DecryptRefundNotifyReqInfo(reqInfo, k8Key)
			if err != nil {
				t.Fatal(err)
			}
			sameRefundInfo(t, ours, g)
			if _, err := newV2Key(t, apiV2Key).DecryptReqInfo(reqInfo); !errors.Is(err, wxpay.ErrV2ReqInfo) {
				t.Errorf("another key: %v, want ErrV2ReqInfo", err)
			}
		})
	}
}
