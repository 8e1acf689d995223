package load

import (
	"fmt"
	"strings"

	"github.com/wxpayd/wxpayd/bench/sim"
)

// The merchant APIs wxpayd can run (Config.API, wxpaybench --api).
const (
	APIv3 = "v3" // JSON, RSA signatures, signType RSA
	APIv2 = "v2" // XML, MD5 or HMAC-SHA256 signs with the APIv2 key
)

// apiEndpoints are wxpaysim's request counters (Stats.Requests) of each
// API's order calls: prepay, query, close, refund, refund query.
var apiEndpoints = map[string][]string{
	APIv3: {"prepay", "query", "close", "refund", "refund_query"},
	APIv2: {"v2_unifiedorder", "v2_orderquery", "v2_closeorder", "v2_refund", "v2_refundquery"},
}

// apiSignTypes are the wx.requestPayment signTypes of each API.
var apiSignTypes = map[string][]string{
	APIv3: {"RSA"},
	APIv2: {"MD5", "HMAC-SHA256"},
}

// apiCheck checks that the run went through the merchant API wxpayd is
// meant to run: every order WeChat created came through that API's prepay,
// no order call used the other API, and every buyer's wx.requestPayment
// parameters carry that API's signType.
func (r *runner) apiCheck(before, after sim.Stats, n map[string]int64) Check {
	api := r.cfg.API
	other := APIv2
	if api == APIv2 {
		other = APIv3
	}
	delta := func(ep string) int64 { return int64(after.Requests[ep] - before.Requests[ep]) }
	var orders, wrongSign int64
	var example string
	for _, b := range r.buyers {
		if b.otn == "" {
			continue
		}
		orders++
		ok := false
		for _, st := range apiSignTypes[api] {
			ok = ok || b.signType == st
		}
		if !ok {
			wrongSign++
			example = fmt.Sprintf("%s signType %q", b.otn, b.signType)
		}
	}
	var calls, stray int64
	var strayAt []string
	for _, ep := range apiEndpoints[api] {
		calls += delta(ep)
	}
	for _, ep := range apiEndpoints[other] {
		if d := delta(ep); d > 0 {
			stray += d
			strayAt = append(strayAt, fmt.Sprintf("%s %d", ep, d))
		}
	}
	prepays := delta(apiEndpoints[api][0])
	n["wxpaysim_"+api+"_calls"] = calls
	n["wxpaysim_"+other+"_calls"] = stray
	c := Check{Name: "orders and payment signatures through API" + api,
		Passed: wrongSign == 0 && stray == 0 && prepays >= orders,
		Detail: fmt.Sprintf("%d orders; %d prepay calls through API%s (%s), %d order calls in all; %d through API%s; %d payment parameters without signType %s",
			orders, prepays, api, apiEndpoints[api][0], calls, stray, other, wrongSign, strings.Join(apiSignTypes[api], " or ")),
		Why: "A merchant on API" + api + " has only that API's credentials: an order made, or a wx.requestPayment signed, any other way fails at WeChat."}
	if len(strayAt) > 0 {
		c.Detail += "; API" + other + " calls: " + strings.Join(strayAt, ", ")
	}
	if example != "" {
		c.Detail += "; e.g. " + example
	}
	return c
}
