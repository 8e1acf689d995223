package wxpay

import (
	"testing"
)

// v2BenchParams is a realistic 12-field unifiedorder request, the map the
// signing benchmarks (and the gopay comparison) use.
func v2BenchParams(st V2SignType) map[string]string {
	return map[string]string{
		"appid":            "wxd930ea5d5a258f4f",
		"mch_id":           "10000100",
		"nonce_str":        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
		"sign_type":        string(st),
		"body":             "腾讯充值中心-QQ会员充值",
		"out_trade_no":     "20150806125346",
		"total_fee":        "88",
		"spbill_create_ip": "123.12.12.123",
		"notify_url":       "https://pay.example.com/wxpay/v2/notify",
		"trade_type":       "JSAPI",
		"openid":           "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
		"time_expire":      "20260101120000",
	}
}

var v2BenchTypes = []struct {
	name string
	st   V2SignType
}{{"md5", V2SignMD5}, {"hmac-sha256", V2SignHMACSHA256}}

var v2SinkString string

func BenchmarkV2Sign(b *testing.B) {
	k := v2MustKey(b, v2K6Key)
	for _, c := range v2BenchTypes {
		p := v2BenchParams(c.st)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := k.Sign(p, c.st)
				if err != nil {
					b.Fatal(err)
				}
				v2SinkString = s
			}
		})
	}
}

func BenchmarkV2Verify(b *testing.B) {
	k := v2MustKey(b, v2K6Key)
	for _, c := range v2BenchTypes {
		p := v2Signed(b, k, v2BenchParams(c.st), c.st)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := k.VerifyAuto(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkV2RequestPayment(b *testing.B) {
	k := v2MustKey(b, v2K6Key)
	for _, c := range v2BenchTypes {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				pp, err := k.RequestPayment("wxd678efh567hg6787", "wx2017033010242291fcfe0db70013231072", 1490840662, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", c.st)
				if err != nil {
					b.Fatal(err)
				}
				v2SinkString = pp.PaySign
			}
		})
	}
}

// BenchmarkParseV2XML compares ParseV2XML with the encoding/xml token loop
// FuzzV2XML uses as its oracle, on a 21-field payment notification.
func BenchmarkParseV2XML(b *testing.B) {
	body := v2ReadFile(b, "notify_pay_md5.xml")
	for _, c := range []struct {
		name  string
		parse func([]byte) (map[string]string, error)
	}{{"impl=wxpay", ParseV2XML}, {"impl=encoding-xml", stdFlatXML}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.parse(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendV2XML(b *testing.B) {
	p := v2BenchParams(V2SignMD5)
	buf := AppendV2XML(nil, p)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendV2XML(buf[:0], p)
	}
}

// BenchmarkV2Notification is the whole APIv2 payment notification path
// the server runs, (*V2Key).ParseNotice: parse, verify by sign_type,
// decode, translate.
func BenchmarkV2Notification(b *testing.B) {
	k := v2MustKey(b, v2K6Key)
	body := v2ReadFile(b, "notify_pay_hmac.xml")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if n, err := k.ParseNotice(NoticePayment, body); err != nil || n.Kind != NoticePayment {
			b.Fatal(n.Kind, err)
		}
	}
}

func BenchmarkV2DecryptReqInfo(b *testing.B) {
	k := v2MustKey(b, v2K8Key)
	ri := v2K8ReqInfo(b)
	b.SetBytes(int64(len(ri)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.DecryptReqInfo(ri); err != nil {
			b.Fatal(err)
		}
	}
}
