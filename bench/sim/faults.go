package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
)

// API fault injection: WeChat's endpoints failing the way a remote service
// does. A --faults SPEC is a comma-separated list of endpoint.kind=rate,
// e.g. all.system_error=0.05,refund.lost=0.1,prepay.slow=0.01. A specific
// endpoint's rate overrides all's for that kind. The kinds exclude each
// other: each request draws at most one fault, so an endpoint's effective
// rates must add up to at most 1.
//
// A fault is drawn once the request reached the endpoint: APIv3 after the
// Authorization passed, APIv2 after its sign passed, jscode2session at once.
//
//	system_error  signed 500 SYSTEM_ERROR (login: errcode -1); nothing happened
//	rate_limited  signed 429 FREQUENCY_LIMITED (login: errcode 45011); nothing happened
//	bad_gateway   unsigned 502 with an HTML body, as from a proxy; nothing happened
//	slow          the correct answer, effect applied, after Config.SlowDelay
//	lost          the effect is applied, then the answer is lost: half the
//	              time a signed 500 SYSTEM_ERROR, half a cut connection
//
// The endpoints bill (tradebill and fundflowbill) and bill_download (the
// file) take these kinds too; bill_download also takes corrupt
// (bill_download.corrupt=rate, not for all): the file is served with one
// digit changed, so its SHA1 no longer matches hash_value.

// faultPoint is an endpoint of a fault SPEC.
type faultPoint int

const (
	fpNone faultPoint = iota - 1
	fpPrepay
	fpQuery
	fpClose
	fpRefund
	fpRefundQuery
	fpCertificates
	fpLogin
	fpBill
	fpBillDownload
	numFaultPoints
	fpAll = numFaultPoints // only in a SPEC
)

var faultPointNames = [numFaultPoints + 1]string{
	"prepay", "query", "close", "refund", "refund_query", "certificates", "login", "bill", "bill_download", "all",
}

// faultPoints maps the counted endpoints to the SPEC's: the APIv2 ones
// are their APIv3 counterparts' (unifiedorder is prepay, orderquery query,
// closeorder close, /secapi/pay/refund refund, refundquery refund_query);
// the control API and apply-abnormal-refund take no faults.
var faultPoints = [numEndpoints]faultPoint{
	epPrepay: fpPrepay, epQuery: fpQuery, epClose: fpClose, epRefund: fpRefund,
	epRefundQuery: fpRefundQuery, epCertificates: fpCertificates, epLogin: fpLogin,
	epV2UnifiedOrder: fpPrepay, epAbnormalRefund: fpNone, epSimPay: fpNone, epOther: fpNone,
	epBill: fpBill, epBillDownload: fpBillDownload,
	epV2OrderQuery: fpQuery, epV2CloseOrder: fpClose, epV2Refund: fpRefund, epV2RefundQuery: fpRefundQuery,
}

// apiFault is a fault kind.
type apiFault int

const (
	afNone apiFault = iota - 1
	afSystemError
	afRateLimited
	afBadGateway
	afSlow
	afLost
	numAPIFaults
	// afCorrupt is bill_download's own kind (bill_download.corrupt): the
	// file is served with one byte changed, so its digest does not match.
	// It is not one of the kinds every endpoint takes.
	afCorrupt = numAPIFaults
)

// corruptKey is the SPEC item of afCorrupt.
const corruptKey = "bill_download.corrupt"

var apiFaultNames = [numAPIFaults]string{"system_error", "rate_limited", "bad_gateway", "slow", "lost"}

// FaultSpec is a parsed --faults SPEC. It is immutable, so safe for
// concurrent use.
type FaultSpec struct {
	set  [numFaultPoints + 1][numAPIFaults]bool
	rate [numFaultPoints + 1][numAPIFaults]float64
	eff  [numFaultPoints][numAPIFaults]float64 // after applying all
	any  [numFaultPoints]bool
	// corrupt is bill_download.corrupt's rate (corruptSet: given).
	corrupt    float64
	corruptSet bool
}

// ParseFaults parses a --faults SPEC ("" means no faults). The error,
// wrapping ErrSpec, names the offending item and lists the valid names.
func ParseFaults(spec string) (*FaultSpec, error) {
	f := &FaultSpec{}
	err := parseItems(spec, func(key string, rate float64) error {
		if key == corruptKey {
			if f.corruptSet {
				return fmt.Errorf("%q given twice", key)
			}
			f.corrupt, f.corruptSet = rate, true
			return nil
		}
		ep, kind, ok := strings.Cut(key, ".")
		p, k := lookupName[faultPoint](faultPointNames[:], ep), lookupName[apiFault](apiFaultNames[:], kind)
		switch {
		case !ok:
			return fmt.Errorf("%q: want endpoint.kind=rate", key)
		case p < 0:
			return fmt.Errorf("%q: unknown endpoint %q, want one of %s", key, ep, strings.Join(faultPointNames[:], ", "))
		case k < 0:
			return fmt.Errorf("%q: unknown kind %q, want one of %s", key, kind, strings.Join(apiFaultNames[:], ", "))
		case f.set[p][k]:
			return fmt.Errorf("%q given twice", key)
		}
		f.set[p][k], f.rate[p][k] = true, rate
		return nil
	})
	if err != nil {
		return nil, err
	}
	for p := range numFaultPoints {
		sum := 0.0
		for k := range numAPIFaults {
			r := f.rate[fpAll][k]
			if f.set[p][k] {
				r = f.rate[p][k]
			}
			f.eff[p][k] = r
			sum += r
		}
		if p == fpBillDownload {
			sum += f.corrupt
		}
		if sum > 1+1e-9 {
			return nil, fmt.Errorf("%w: %s: the rates for %s add up to %g, want at most 1 (one fault per request)",
				ErrSpec, spec, faultPointNames[p], sum)
		}
		f.any[p] = sum > 0
	}
	return f, nil
}

// String returns the SPEC in canonical form (endpoints and kinds in a fixed
// order, explicit zero overrides kept); ParseFaults(f.String()) equals f.
func (f *FaultSpec) String() string {
	if f == nil {
		return ""
	}
	var b strings.Builder
	for _, p := range append([]faultPoint{fpAll}, allFaultPoints()...) {
		for k := range numAPIFaults {
			if !f.set[p][k] {
				continue
			}
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(faultPointNames[p] + "." + apiFaultNames[k] + "=")
			b.WriteString(strconv.FormatFloat(f.rate[p][k], 'g', -1, 64))
		}
	}
	if f.corruptSet {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(corruptKey + "=" + strconv.FormatFloat(f.corrupt, 'g', -1, 64))
	}
	return b.String()
}

// Rate returns the effective rate of kind at endpoint (not "all"); 0 for
// unknown names.
func (f *FaultSpec) Rate(endpoint, kind string) float64 {
	if f != nil && endpoint+"."+kind == corruptKey {
		return f.corrupt
	}
	p, k := lookupName[faultPoint](faultPointNames[:numFaultPoints], endpoint), lookupName[apiFault](apiFaultNames[:], kind)
	if f == nil || p < 0 || k < 0 {
		return 0
	}
	return f.eff[p][k]
}

func allFaultPoints() []faultPoint {
	out := make([]faultPoint, 0, numFaultPoints)
	for p := range numFaultPoints {
		out = append(out, p)
	}
	return out
}

func lookupName[T ~int](names []string, s string) T {
	for i, n := range names {
		if n == s {
			return T(i)
		}
	}
	return -1
}

// maxSpecItems bounds the items of a SPEC (40 endpoint.kind pairs exist).
const maxSpecItems = 64

// parseItems splits a key=rate list and checks each rate is in [0, 1].
func parseItems(spec string, item func(key string, rate float64) error) error {
	if strings.TrimSpace(spec) == "" {
		return nil
	}
	items := strings.Split(spec, ",")
	if len(items) > maxSpecItems {
		return fmt.Errorf("%w: %d items, want at most %d", ErrSpec, len(items), maxSpecItems)
	}
	for _, it := range items {
		key, val, ok := strings.Cut(strings.TrimSpace(it), "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return fmt.Errorf("%w: %q: want key=rate", ErrSpec, it)
		}
		r, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || math.IsNaN(r) || r < 0 || r > 1 {
			return fmt.Errorf("%w: %q: the rate must be a number in [0, 1]", ErrSpec, it)
		}
		if err := item(key, r); err != nil {
			return fmt.Errorf("%w: %w", ErrSpec, err)
		}
	}
	return nil
}

// drawFault draws the fault, if any, for a request to p. With no fault
// configured for p it takes no random number, so seeded runs without faults
// draw as before.
func (s *Server) drawFault(p faultPoint) apiFault {
	if p == fpNone {
		return afNone
	}
	f := s.faults.Load()
	if !f.any[p] {
		return afNone
	}
	u := s.randFloat()
	acc := 0.0
	for k, r := range f.eff[p] {
		acc += r
		if u < acc {
			s.stats.apiFaults[p][k].Add(1)
			return apiFault(k)
		}
	}
	if p == fpBillDownload && u < acc+f.corrupt {
		s.stats.billCorrupted.Add(1)
		return afCorrupt
	}
	return afNone
}

// noEffect reports whether the fault answers before the request is
// processed.
func (f apiFault) noEffect() bool {
	return f == afSystemError || f == afRateLimited || f == afBadGateway
}

var (
	errInjectedSystem = newErr(500, wxpay.CodeSystemError, "系统错误")
	errInjectedRate   = newErr(429, wxpay.CodeFrequencyLimited, "频率超限")
)

// badGatewayBody is what a proxy in front of WeChat answers.
const badGatewayBody = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" +
	"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"

// writeBadGateway writes an unsigned 502 with an HTML body.
func writeBadGateway(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusBadGateway)
	ctx.SetContentType("text/html")
	ctx.SetBodyString(badGatewayBody)
}

// v3Fault answers an APIv3 request with a fault that has no effect.
func (s *Server) v3Fault(ctx *fasthttp.RequestCtx, f apiFault, hint string) {
	s.latency()
	switch f {
	case afSystemError:
		s.writeSigned(ctx, errInjectedSystem.status, errInjectedSystem.body(), hint)
	case afRateLimited:
		s.writeSigned(ctx, errInjectedRate.status, errInjectedRate.body(), hint)
	default:
		writeBadGateway(ctx)
	}
}

// v3Faulted writes a processed APIv3 request's answer under a slow or lost
// fault.
func (s *Server) v3Faulted(ctx *fasthttp.RequestCtx, f apiFault, status int, body []byte, e *apiError, hint string) {
	s.latency()
	if f == afSlow {
		s.slowWait()
		if e != nil {
			status, body = e.status, e.body()
			s.stats.reject(e.code)
		}
		s.writeSigned(ctx, status, body, hint)
		return
	}
	if s.chance(0.5) {
		s.writeSigned(ctx, errInjectedSystem.status, errInjectedSystem.body(), hint)
		return
	}
	cut(ctx)
}

// slowWait waits Config.SlowDelay, or less when the server is closing.
func (s *Server) slowWait() {
	t := time.NewTimer(s.cfg.slowDelay())
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.quit:
	}
}

// FaultSettings is the JSON of GET and PUT /sim/v1/faults: the current
// --faults SPEC and --refund-outcomes SPEC2, both in canonical form.
type FaultSettings struct {
	Faults         string `json:"faults"`
	RefundOutcomes string `json:"refund_outcomes"`
}

// FaultSettings returns the current settings.
func (s *Server) FaultSettings() FaultSettings {
	return FaultSettings{Faults: s.faults.Load().String(), RefundOutcomes: s.outcomes.Load().String()}
}

// SetFaults replaces the fault SPEC at run time (the --faults of a running
// server). On error (wrapping ErrSpec) nothing changes.
func (s *Server) SetFaults(spec string) error {
	f, err := ParseFaults(spec)
	if err != nil {
		return err
	}
	s.faults.Store(f)
	return nil
}

// SetRefundOutcomes replaces the refund outcome SPEC2 at run time; refunds
// already requested keep the outcome they drew. On error (wrapping ErrSpec)
// nothing changes.
func (s *Server) SetRefundOutcomes(spec string) error {
	o, err := ParseRefundOutcomes(spec)
	if err != nil {
		return err
	}
	s.outcomes.Store(o)
	return nil
}

// faultsBody is the JSON of PUT /sim/v1/faults; an absent field keeps its
// setting.
type faultsBody struct {
	Faults         *string `json:"faults"`
	RefundOutcomes *string `json:"refund_outcomes"`
}

// simFaults serves GET and PUT /sim/v1/faults. A PUT is all or nothing:
// both specs are parsed before either replaces its setting.
func (s *Server) simFaults(ctx *fasthttp.RequestCtx) {
	if string(ctx.Method()) == fasthttp.MethodGet {
		writeJSON(ctx, 200, s.FaultSettings())
		return
	}
	var b faultsBody
	if err := decodeStrict(ctx.PostBody(), &b); err != nil {
		writeJSON(ctx, 400, simError{"PARAM_ERROR", `want {"faults":"SPEC","refund_outcomes":"SPEC2"}: ` + err.Error()})
		return
	}
	var f *FaultSpec
	var o *RefundOutcomes
	var err error
	if b.Faults != nil {
		if f, err = ParseFaults(*b.Faults); err != nil {
			writeJSON(ctx, 400, simError{"PARAM_ERROR", "faults: " + err.Error()})
			return
		}
	}
	if b.RefundOutcomes != nil {
		if o, err = ParseRefundOutcomes(*b.RefundOutcomes); err != nil {
			writeJSON(ctx, 400, simError{"PARAM_ERROR", "refund_outcomes: " + err.Error()})
			return
		}
	}
	if f != nil {
		s.faults.Store(f)
	}
	if o != nil {
		s.outcomes.Store(o)
	}
	writeJSON(ctx, 200, s.FaultSettings())
}

// decodeStrict decodes one JSON object, refusing unknown fields and
// trailing data (control API bodies, where a typo must not pass silently).
func decodeStrict(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the object")
	}
	return nil
}
