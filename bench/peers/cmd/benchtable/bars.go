package main

import (
	"fmt"
	"math"
	"strings"
)

// The bars of the benchmark issue. A ratio bar divides two medians of the
// same run; an allocation bar bounds a median allocs/op.
type bar struct {
	id        string // (a), (b), ...
	family    string
	num, den  string // ratio = median(num) / median(den); den == "" for an allocation bar
	atLeast   bool   // ratio >= limit (speed-ups); otherwise ratio/allocs <= limit
	limit     float64
	statement string
}

var bars = []bar{
	{"a", "Authorization", "wechatpay-go", "wxpayd-openssl", true, 3.5, "wxpayd (OpenSSL) at least 3.5× faster than wechatpay-go's WechatPayCredentials.GenerateAuthorizationHeader"},
	{"a", "Authorization", "wxpayd-openssl", "floor-openssl", false, 1.1, "wxpayd (OpenSSL) within 1.1× of the bare OpenSSL sign"},
	{"a", "Authorization", "wxpayd-go", "floor-crypto-rsa", false, 1.05, "wxpayd (Go) within 1.05× of bare crypto/rsa SignPKCS1v15"},
	{"b", "Notify", "wechatpay-go", "wxpayd-openssl", true, 2, "wxpayd (OpenSSL) at least 2× faster than wechatpay-go's ParseNotifyRequest"},
	{"b", "Notify", "wxpayd-openssl", "floor-verify+gcm-openssl", false, 1.2, "wxpayd (OpenSSL) within 1.2× of bare verify + AES-GCM open (OpenSSL verify)"},
	{"b", "Notify", "wxpayd-go", "floor-verify+gcm-go", false, 1.2, "wxpayd (Go) within 1.2× of bare verify + AES-GCM open (crypto/rsa verify)"},
	{"b", "Notify", "wxpayd-openssl", "", false, 10, "wxpayd (OpenSSL) at most 10 allocations per notification"},
	{"c", "PaySign", "wechatpay-go", "wxpayd-openssl", true, 3.5, "wxpayd (OpenSSL) at least 3.5× faster than wechatpay-go's PrepayWithRequestPayment signing"},
	{"c", "PaySign", "wxpayd-openssl", "floor-openssl", false, 1.1, "wxpayd (OpenSSL) within 1.1× of the bare OpenSSL sign"},
	{"c", "PaySign", "wxpayd-go", "floor-crypto-rsa", false, 1.05, "wxpayd (Go) within 1.05× of bare crypto/rsa SignPKCS1v15"},
	{"d", "V2Sign", "md5-gopay", "md5-wxpayd", true, 4, "APIv2 MD5: wxpayd at least 4× faster than gopay's GetReleaseSign"},
	{"d", "V2Sign", "hmac-gopay", "hmac-wxpayd", true, 4, "APIv2 HMAC-SHA256: wxpayd at least 4× faster than gopay's GetReleaseSign"},
	{"d", "V2Sign", "md5-wxpayd", "", false, 2, "APIv2 MD5: wxpayd at most 2 allocations"},
	{"d", "V2Sign", "hmac-wxpayd", "", false, 2, "APIv2 HMAC-SHA256: wxpayd at most 2 allocations"},
}

// infos are figures the issue asks to report without a bar.
var infos = []bar{
	{"b", "Notify", "wechatpay-go", "wxpayd-go", true, 0, "wxpayd (Go backend) against wechatpay-go"},
	{"b", "Notify", "gopay", "wxpayd-openssl", true, 0, "wxpayd (OpenSSL) against gopay's V3ParseNotify + VerifySignByPK + DecryptPayCipherText"},
	{"b", "Notify", "wxpayd-go", "", false, 0, "wxpayd (Go backend) allocations per notification"},
	{"c", "PaySign", "gopay", "wxpayd-openssl", true, 0, "wxpayd (OpenSSL) against gopay's PaySignOfApplet"},
	{"d", "V2Sign", "md5-wxpayd", "md5-floor", true, 0, "APIv2 MD5: wxpayd against hashing the finished string alone"},
	{"d", "V2Sign", "md5-gopay", "md5-floor", true, 0, "APIv2 MD5: gopay against hashing the finished string alone (the most any implementation could gain over gopay)"},
	{"d", "V2Sign", "hmac-wxpayd", "hmac-floor", true, 0, "APIv2 HMAC-SHA256: wxpayd against hashing the finished string alone"},
	{"d", "V2Sign", "hmac-gopay", "hmac-floor", true, 0, "APIv2 HMAC-SHA256: gopay against hashing the finished string alone (the most any implementation could gain over gopay)"},
}

type barResult struct {
	bar
	value   float64 // ratio of wall-time medians, or allocs
	cpu     float64 // ratio of CPU-time medians; NaN when not measured
	missing []string
	pass    bool
}

func (res barResult) holds(v float64) bool {
	if res.atLeast {
		return v >= res.limit
	}
	return v <= res.limit
}

func evalBar(r *report, b bar) barResult {
	res := barResult{bar: b, cpu: math.NaN()}
	num := r.lookup(b.family, b.num)
	if num == nil {
		res.missing = append(res.missing, "Benchmark"+b.family+"/"+b.num)
	}
	if b.den == "" {
		if num != nil {
			res.value = num.medianAllocs()
			if math.IsNaN(res.value) {
				res.missing = append(res.missing, "allocs/op of Benchmark"+b.family+"/"+b.num)
			}
		}
	} else {
		den := r.lookup(b.family, b.den)
		if den == nil {
			res.missing = append(res.missing, "Benchmark"+b.family+"/"+b.den)
		}
		if num != nil && den != nil {
			res.value = num.medianNs() / den.medianNs()
			res.cpu = num.medianCPU() / den.medianCPU()
		}
	}
	if len(res.missing) > 0 {
		return res
	}
	res.pass = res.holds(res.value)
	return res
}

// line renders a bar result as one Markdown list item.
func (res barResult) line(withVerdict bool) string {
	var sb strings.Builder
	sb.WriteString("- ")
	if withVerdict {
		switch {
		case len(res.missing) > 0:
			sb.WriteString("**NOT RUN** ")
		case res.pass:
			sb.WriteString("**PASS** ")
		default:
			sb.WriteString("**FAIL** ")
		}
	}
	fmt.Fprintf(&sb, "(%s) %s: ", res.id, res.statement)
	if len(res.missing) > 0 {
		fmt.Fprintf(&sb, "missing %s", strings.Join(res.missing, ", "))
		return sb.String()
	}
	if res.den == "" {
		fmt.Fprintf(&sb, "`%s` %s allocs/op", res.num, fmtCount(res.value))
		if withVerdict {
			fmt.Fprintf(&sb, " (bar ≤ %s)", fmtCount(res.limit))
		}
		return sb.String()
	}
	fmt.Fprintf(&sb, "`%s` ÷ `%s` = %.2f×", res.num, res.den, res.value)
	if withVerdict {
		op := "≤"
		if res.atLeast {
			op = "≥"
		}
		fmt.Fprintf(&sb, " (bar %s %s×", op, trimFloat(res.limit))
		if !res.pass {
			if res.atLeast {
				fmt.Fprintf(&sb, "; short by %.1f%%", 100*(1-res.value/res.limit))
			} else {
				fmt.Fprintf(&sb, "; over by %.1f%%", 100*(res.value/res.limit-1))
			}
		}
		sb.WriteString(")")
	}
	if !math.IsNaN(res.cpu) {
		fmt.Fprintf(&sb, "; on CPU time %.2f×", res.cpu)
		if withVerdict {
			if res.holds(res.cpu) {
				sb.WriteString(" (would pass)")
			} else {
				sb.WriteString(" (would fail)")
			}
		}
	}
	return sb.String()
}

func trimFloat(x float64) string { return strings.TrimSuffix(fmt.Sprintf("%g", x), ".0") }

func fmtCount(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	if x == math.Trunc(x) {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.1f", x)
}
