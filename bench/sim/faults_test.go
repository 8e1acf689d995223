package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

func TestParseFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, spec, canonical string
		rates                 map[string]float64 // effective "endpoint.kind" rates to check
	}{
		{"an empty spec injects nothing", "", "",
			map[string]float64{"prepay.system_error": 0, "login.lost": 0}},
		{"all applies to every endpoint", "all.system_error=0.05", "all.system_error=0.05",
			map[string]float64{"prepay.system_error": 0.05, "login.system_error": 0.05, "refund_query.system_error": 0.05, "refund.lost": 0}},
		{"a specific endpoint overrides all for that kind only", "all.system_error=0.05,refund.lost=0.1,refund.system_error=0.5",
			"all.system_error=0.05,refund.system_error=0.5,refund.lost=0.1",
			map[string]float64{"refund.system_error": 0.5, "refund.lost": 0.1, "query.system_error": 0.05, "query.lost": 0}},
		{"an explicit zero switches all off for one endpoint", "all.lost=0.2,login.lost=0", "all.lost=0.2,login.lost=0",
			map[string]float64{"login.lost": 0, "close.lost": 0.2}},
		{"spaces are allowed and the canonical order is fixed", " prepay.slow = 0.01 , all.bad_gateway=0.05 ",
			"all.bad_gateway=0.05,prepay.slow=0.01",
			map[string]float64{"prepay.slow": 0.01, "prepay.bad_gateway": 0.05, "certificates.bad_gateway": 0.05}},
		{"one endpoint's rates may add up to exactly 1", "query.system_error=0.5,query.rate_limited=0.25,query.lost=0.25",
			"query.system_error=0.5,query.rate_limited=0.25,query.lost=0.25",
			map[string]float64{"query.rate_limited": 0.25}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFaults(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.String(); got != tc.canonical {
				t.Fatalf("canonical %q, want %q", got, tc.canonical)
			}
			again, err := ParseFaults(f.String())
			if err != nil || *again != *f {
				t.Fatalf("the canonical form does not parse back to the same spec: %v", err)
			}
			for k, want := range tc.rates {
				ep, kind, _ := strings.Cut(k, ".")
				if got := f.Rate(ep, kind); got != want {
					t.Fatalf("%s: %g, want %g", k, got, want)
				}
			}
		})
	}
	for _, tc := range []struct{ name, spec, msg string }{
		{"an unknown endpoint", "refunds.lost=0.1", "unknown endpoint"},
		{"an unknown kind", "refund.timeout=0.1", "unknown kind"},
		{"an item without a kind", "refund=0.1", "endpoint.kind"},
		{"an item without a rate", "refund.lost", "key=rate"},
		{"an empty item", "refund.lost=0.1,,all.slow=0", "key=rate"},
		{"a rate above 1", "refund.lost=1.5", "[0, 1]"},
		{"a negative rate", "refund.lost=-0.1", "[0, 1]"},
		{"a rate that is not a number", "refund.lost=NaN", "[0, 1]"},
		{"an item given twice", "refund.lost=0.1,refund.lost=0.2", "twice"},
		{"rates adding up to more than 1 for an endpoint", "all.system_error=0.6,refund.lost=0.6", "add up"},
	} {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			_, err := ParseFaults(tc.spec)
			if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want ErrSpec mentioning %q", err, tc.msg)
			}
		})
	}
}

func TestParseRefundOutcomes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ spec, canonical string }{
		{"", "success=1"},
		{"success=1", "success=1"},
		{"success=0.9,closed=0.05,abnormal=0.05", "success=0.9,closed=0.05,abnormal=0.05"},
		{"closed=0.5", "success=0.5,closed=0.5"},
		{"abnormal=1", "success=0,abnormal=1"},
	} {
		t.Run(fmt.Sprintf("%q is %s", tc.spec, tc.canonical), func(t *testing.T) {
			o, err := ParseRefundOutcomes(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if o.String() != tc.canonical {
				t.Fatalf("canonical %q", o.String())
			}
		})
	}
	for _, spec := range []string{"success=0.5", "failed=0.1", "closed=0.7,abnormal=0.7", "success=0.9,closed=0.2",
		"closed=2", "success=1,success=1", "closed"} {
		t.Run(fmt.Sprintf("rejects %q", spec), func(t *testing.T) {
			if _, err := ParseRefundOutcomes(spec); !errors.Is(err, ErrSpec) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// faultCall is one endpoint under fault injection: prepare makes the state
// the call needs and returns its out_trade_no; do makes the call.
type faultCall struct {
	what     string // the call, for the subtest's name
	endpoint string
	ok       int                              // status of the correct answer
	prepare  func(t *testing.T, n int) string // returns the out_trade_no
	do       func(otn string) (*http.Response, []byte, error)
	effect   func(t *testing.T, otn string) bool // nil: the call changes nothing
	calls    func(LedgerCalls) uint32            // nil: the call names no order
}

// TestAPIFaults tries every fault kind on every APIv3 endpoint: the answer
// has the kind's shape, the call takes effect only for slow and lost, the
// fault is counted in the stats and the call on the order's ledger.
func TestAPIFaults(t *testing.T) {
	t.Parallel()
	const slow = 150 * time.Millisecond
	ts := startSim(t, func(c *Config) {
		c.SigningMode = ModeCertificate // so /v3/certificates answers 200
		c.SlowDelay = slow
		c.RefundDelay = time.Hour
	})
	c := ts.c
	c.noKeepAlive()
	id := ts.Identity()
	m := newMerchant(t, ts.Server, nil)
	txns := map[string]string{}
	seq := 0 // the subtests run one at a time
	fresh := func() string { seq++; return fmt.Sprintf("FAULT%05d", seq) }
	paid := func(t *testing.T, _ int) string {
		otn := fresh()
		txns[otn] = ts.paidOrder(t, m, otn, 100)
		return otn
	}
	state := func(t *testing.T, otn string) string { return c.ledgerOrder(otn).TradeState }
	calls := []faultCall{
		{"prepay", "prepay", 200,
			func(*testing.T, int) string { return fresh() },
			func(otn string) (*http.Response, []byte, error) {
				return c.send("POST", "/v3/pay/transactions/jsapi", prepayReq(id, otn, "oBuyer", m.url), nil)
			},
			func(t *testing.T, otn string) bool { return state(t, otn) == wxpay.TradeStateNotPay },
			func(l LedgerCalls) uint32 { return l.Prepay }},
		{"query by out_trade_no", "query", 200, paid,
			func(otn string) (*http.Response, []byte, error) {
				return c.send("GET", pathQueryPrefix+otn+"?mchid="+id.MchID, nil, nil)
			},
			nil, func(l LedgerCalls) uint32 { return l.Query }},
		{"query by transaction_id", "query", 200, paid,
			func(otn string) (*http.Response, []byte, error) {
				return c.send("GET", pathQueryByIDPrefix+txns[otn]+"?mchid="+id.MchID, nil, nil)
			},
			nil, func(l LedgerCalls) uint32 { return l.Query }},
		{"close", "close", 204,
			func(*testing.T, int) string {
				otn := fresh()
				c.prepay(otn, "oBuyer", m.url)
				return otn
			},
			func(otn string) (*http.Response, []byte, error) {
				return c.send("POST", pathQueryPrefix+otn+"/close", map[string]string{"mchid": id.MchID}, nil)
			},
			func(t *testing.T, otn string) bool { return state(t, otn) == wxpay.TradeStateClosed },
			func(l LedgerCalls) uint32 { return l.Close }},
		{"refund", "refund", 200, paid,
			func(otn string) (*http.Response, []byte, error) {
				return c.send("POST", "/v3/refund/domestic/refunds", refundReq(otn, "R"+otn, 10, 100), nil)
			},
			func(t *testing.T, otn string) bool { return len(c.ledgerOrder(otn).Refunds) == 1 },
			func(l LedgerCalls) uint32 { return l.Refund }},
		{"refund query", "refund_query", 200,
			func(t *testing.T, n int) string {
				otn := paid(t, n)
				decodeRefund(t, c.do("POST", "/v3/refund/domestic/refunds", refundReq(otn, "R"+otn, 10, 100)))
				return otn
			},
			func(otn string) (*http.Response, []byte, error) {
				return c.send("GET", pathRefundPrefix+"R"+otn, nil, nil)
			},
			nil, func(l LedgerCalls) uint32 { return l.RefundQuery }},
		{"certificates", "certificates", 200, func(*testing.T, int) string { return "" },
			func(string) (*http.Response, []byte, error) { return c.send("GET", "/v3/certificates", nil, nil) },
			nil, nil},
	}
	for i, fc := range calls {
		for _, kind := range apiFaultNames {
			t.Run(fmt.Sprintf("%s under %s.%s answers as the kind says and is counted", fc.what, fc.endpoint, kind), func(t *testing.T) {
				otn := fc.prepare(t, i)
				before := ts.Stats().APIFaults[fc.endpoint+"."+kind]
				var callsBefore uint32
				if fc.calls != nil {
					callsBefore = fc.calls(c.ledgerOrder(otn).Calls)
				}
				if err := ts.SetFaults(fc.endpoint + "." + kind + "=1"); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				resp, body, err := fc.do(otn)
				elapsed := time.Since(start)
				if err := ts.SetFaults(""); err != nil {
					t.Fatal(err)
				}
				checkFaultAnswer(t, c, kind, fc.ok, resp, body, err)
				if kind == "slow" && elapsed < slow {
					t.Fatalf("a slow answer after %v, want >= %v", elapsed, slow)
				}
				if fc.effect != nil {
					want := kind == "slow" || kind == "lost"
					if got := fc.effect(t, otn); got != want {
						t.Fatalf("took effect: %v, want %v", got, want)
					}
				}
				if got := ts.Stats().APIFaults[fc.endpoint+"."+kind]; got != before+1 {
					t.Fatalf("stats faults[%s.%s] %d, want %d", fc.endpoint, kind, got, before+1)
				}
				if fc.calls != nil {
					if got := fc.calls(c.ledgerOrder(otn).Calls); got != callsBefore+1 {
						t.Fatalf("ledger calls %d, want %d: every call counts, faulted or not", got, callsBefore+1)
					}
				}
			})
		}
	}
}

// checkFaultAnswer checks an answer's shape for a fault kind.
func checkFaultAnswer(t *testing.T, c *client, kind string, ok int, resp *http.Response, body []byte, err error) {
	t.Helper()
	if err != nil {
		if kind == "lost" {
			return // the connection was cut
		}
		t.Fatalf("%s: %v", kind, err)
	}
	if kind == "bad_gateway" {
		if resp.StatusCode != 502 || resp.Header.Get(wxpay.HeaderSignature) != "" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Contains(body, []byte("502 Bad Gateway")) {
			t.Fatalf("bad_gateway: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		return
	}
	a, err := c.check(resp.Request.Method, resp.Request.URL.Path, resp, body)
	if err != nil {
		t.Fatal(err)
	}
	switch kind {
	case "system_error", "lost":
		a.wantErr(t, 500, wxpay.CodeSystemError)
	case "rate_limited":
		a.wantErr(t, 429, wxpay.CodeFrequencyLimited)
	case "slow":
		a.wantOK(t, ok)
	}
}

func TestLostFault(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.Faults = "query.lost=1" })
	ts.c.noKeepAlive()
	cut, errs := 0, 0
	for i := range 40 {
		resp, body, err := ts.c.send("GET", pathQueryPrefix+fmt.Sprintf("LOST%06d", i)+"?mchid="+testID.MchID, nil, nil)
		if err != nil {
			cut++
			continue
		}
		a, err := ts.c.check("GET", "query", resp, body)
		if err != nil {
			t.Fatal(err)
		}
		a.wantErr(t, 500, wxpay.CodeSystemError)
		errs++
	}
	if cut < 5 || errs < 5 {
		t.Fatalf("lost answers: %d cut connections, %d signed 500s; want about half each", cut, errs)
	}
	if st := ts.Stats(); st.APIFaults["query.lost"] != 40 || st.Dropped != 0 || st.Rejected[wxpay.CodeSystemError] != 0 {
		t.Fatalf("stats: faults %d, dropped %d, rejected %v", st.APIFaults["query.lost"], st.Dropped, st.Rejected)
	}
}

func TestFaultOverridesAndRates(t *testing.T) {
	t.Parallel()
	t.Run("a specific endpoint's zero overrides all", func(t *testing.T) {
		ts := startSim(t, func(c *Config) { c.Faults = "all.system_error=1,query.system_error=0" })
		ts.c.do("POST", "/v3/pay/transactions/jsapi", prepayReq(testID, "OVERRIDE01", "o", "https://m.example/n")).
			wantErr(t, 500, wxpay.CodeSystemError)
		ts.c.do("GET", pathQueryPrefix+"OVERRIDE01?mchid="+testID.MchID, nil).wantErr(t, 404, wxpay.CodeOrderNotExist)
	})
	t.Run("a seed makes the faults reproducible", func(t *testing.T) {
		run := func() string {
			ts := startSim(t, func(c *Config) { c.Faults = "all.system_error=0.5"; c.Seed = 42 })
			var b strings.Builder
			for i := range 40 {
				a := ts.c.do("GET", pathQueryPrefix+fmt.Sprintf("SEED%06d", i)+"?mchid="+testID.MchID, nil)
				b.WriteString(fmt.Sprint(a.status, " "))
			}
			return b.String()
		}
		first, second := run(), run()
		if first != second || !strings.Contains(first, "500") || !strings.Contains(first, "404") {
			t.Fatalf("two runs with seed 42:\n%s\n%s", first, second)
		}
	})
	t.Run("rates are honoured", func(t *testing.T) {
		ts := startSim(t, func(c *Config) { c.Faults = "query.rate_limited=0.3" })
		n := 0
		for i := range 400 {
			if ts.c.do("GET", pathQueryPrefix+fmt.Sprintf("RATE%06d", i)+"?mchid="+testID.MchID, nil).status == 429 {
				n++
			}
		}
		if n < 80 || n > 160 {
			t.Fatalf("%d of 400 rate limited at 0.3", n)
		}
	})
}

// v2Post posts a signed unifiedorder on a fresh connection.
func v2Post(t *testing.T, ts *testSim, otn string) (*http.Response, []byte, error) {
	t.Helper()
	params := v2Req(ts.Identity(), otn, "oV2", "https://m.example/v2", wxpay.V2SignMD5).Params()
	k, _ := wxpay.NewV2Key(ts.Identity().APIv2Key)
	sign, err := k.Sign(params, wxpay.V2SignMD5)
	if err != nil {
		t.Fatal(err)
	}
	params["sign"] = sign
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Post(ts.URL()+"/pay/unifiedorder", "text/xml", bytes.NewReader(wxpay.AppendV2XML(nil, params)))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestAPIv2Faults(t *testing.T) {
	t.Parallel()
	const slow = 100 * time.Millisecond
	ts := startSim(t, func(c *Config) { c.SlowDelay = slow })
	k, _ := wxpay.NewV2Key(ts.Identity().APIv2Key)
	for i, kind := range apiFaultNames {
		t.Run("unifiedorder under "+kind, func(t *testing.T) {
			otn := fmt.Sprintf("V2FAULT%03d", i)
			if err := ts.SetFaults("prepay." + kind + "=1"); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			resp, body, err := v2Post(t, ts, otn)
			elapsed := time.Since(start)
			ts.SetFaults("")
			created := ts.c.ledgerOrder(otn).TradeState == wxpay.TradeStateNotPay
			if want := kind == "slow" || kind == "lost"; created != want {
				t.Fatalf("order created: %v, want %v", created, want)
			}
			if ts.c.ledgerOrder(otn).Calls.Prepay != 1 {
				t.Fatalf("ledger %+v", ts.c.ledgerOrder(otn))
			}
			if err != nil {
				if kind != "lost" {
					t.Fatal(err)
				}
				return
			}
			if kind == "bad_gateway" {
				if resp.StatusCode != 502 || !bytes.Contains(body, []byte("<html>")) {
					t.Fatalf("%d %s", resp.StatusCode, body)
				}
				return
			}
			p, err := wxpay.ParseV2XML(body)
			if err != nil || resp.StatusCode != 200 || p["return_code"] != "SUCCESS" {
				t.Fatalf("%d %s %v", resp.StatusCode, body, err)
			}
			if err := k.Verify(p, wxpay.V2SignMD5); err != nil {
				t.Fatalf("reply sign: %v", err)
			}
			want := map[string]string{"system_error": "SYSTEMERROR", "rate_limited": "FREQUENCY_LIMITED", "lost": "SYSTEMERROR", "slow": ""}[kind]
			if p["err_code"] != want || (want == "" && p["prepay_id"] == "") {
				t.Fatalf("reply %v, want err_code %q", p, want)
			}
			if kind == "slow" && elapsed < slow {
				t.Fatalf("after %v", elapsed)
			}
		})
	}
}

func TestLoginFaults(t *testing.T) {
	t.Parallel()
	const slow = 100 * time.Millisecond
	ts := startSim(t, func(c *Config) { c.SlowDelay = slow })
	id := ts.Identity()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(code string) (int, session, error) {
		q := url.Values{"appid": {id.AppID}, "secret": {id.AppSecret}, "js_code": {code}, "grant_type": {"authorization_code"}}
		resp, err := hc.Get(ts.URL() + "/sns/jscode2session?" + q.Encode())
		if err != nil {
			return 0, session{}, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var s session
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(b, &s); err != nil {
				return 0, s, fmt.Errorf("%s: %w", b, err)
			}
		}
		return resp.StatusCode, s, nil
	}
	for _, tc := range []struct {
		kind     string
		status   int
		errcode  int  // of the faulted answer, when it arrives
		consumed bool // the code was used: a retry is 40163
	}{
		{"system_error", 200, ErrcodeBusy, false},
		{"rate_limited", 200, ErrcodeRateLimited, false},
		{"bad_gateway", 502, 0, false},
		{"slow", 200, 0, true},
		{"lost", 200, ErrcodeBusy, true},
	} {
		t.Run("jscode2session under "+tc.kind, func(t *testing.T) {
			code := "code-" + tc.kind + ".1"
			ts.SetFaults("login." + tc.kind + "=1")
			start := time.Now()
			status, s, err := get(code)
			elapsed := time.Since(start)
			ts.SetFaults("")
			switch {
			case err != nil && tc.kind == "lost":
			case err != nil:
				t.Fatal(err)
			case status != tc.status || s.ErrCode != tc.errcode:
				t.Fatalf("got %d errcode %d, want %d errcode %d", status, s.ErrCode, tc.status, tc.errcode)
			case tc.kind == "slow" && (elapsed < slow || s.OpenID == ""):
				t.Fatalf("slow: %v %+v", elapsed, s)
			}
			_, retry, err := get(code)
			if err != nil {
				t.Fatal(err)
			}
			if used := retry.ErrCode == ErrcodeCodeUsed; used != tc.consumed {
				t.Fatalf("retry %+v: code used %v, want %v", retry, used, tc.consumed)
			}
			if got := ts.Stats().APIFaults["login."+tc.kind]; got != 1 {
				t.Fatalf("stats %d", got)
			}
		})
	}
}

func TestFaultControlAPI(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	c := ts.c
	put := func(body string) (int, FaultSettings) {
		t.Helper()
		req, _ := http.NewRequest("PUT", ts.URL()+"/sim/v1/faults", strings.NewReader(body))
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var fs FaultSettings
		json.NewDecoder(resp.Body).Decode(&fs)
		return resp.StatusCode, fs
	}
	get := func() FaultSettings {
		t.Helper()
		var fs FaultSettings
		if st := c.simGet("/sim/v1/faults", &fs); st != 200 {
			t.Fatalf("GET %d", st)
		}
		return fs
	}
	if fs := get(); fs != (FaultSettings{Faults: "", RefundOutcomes: "success=1"}) {
		t.Fatalf("initial %+v", fs)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		want       FaultSettings
	}{
		{"faults alone replaces faults", `{"faults":"query.system_error=1"}`, 200,
			FaultSettings{"query.system_error=1", "success=1"}},
		{"refund_outcomes alone keeps the faults", `{"refund_outcomes":"closed=0.5"}`, 200,
			FaultSettings{"query.system_error=1", "success=0.5,closed=0.5"}},
		{"a bad faults spec is 400 and changes nothing", `{"faults":"query.nap=1","refund_outcomes":"success=1"}`, 400,
			FaultSettings{"query.system_error=1", "success=0.5,closed=0.5"}},
		{"a bad refund_outcomes spec is 400 and changes nothing", `{"faults":"","refund_outcomes":"success=2"}`, 400,
			FaultSettings{"query.system_error=1", "success=0.5,closed=0.5"}},
		{"an unknown field is 400", `{"fault":""}`, 400, FaultSettings{"query.system_error=1", "success=0.5,closed=0.5"}},
		{"not JSON is 400", `faults=`, 400, FaultSettings{"query.system_error=1", "success=0.5,closed=0.5"}},
		{"both at once", `{"faults":"all.lost=0.1","refund_outcomes":"success=1"}`, 200, FaultSettings{"all.lost=0.1", "success=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, _ := put(tc.body); st != tc.status {
				t.Fatalf("PUT %s: %d, want %d", tc.body, st, tc.status)
			}
			if fs := get(); fs != tc.want {
				t.Fatalf("now %+v, want %+v", fs, tc.want)
			}
		})
	}
	t.Run("a PUT takes effect at once", func(t *testing.T) {
		put(`{"faults":"query.system_error=1"}`)
		c.do("GET", pathQueryPrefix+"CONTROL001?mchid="+testID.MchID, nil).wantErr(t, 500, wxpay.CodeSystemError)
		put(`{"faults":""}`)
		c.do("GET", pathQueryPrefix+"CONTROL001?mchid="+testID.MchID, nil).wantErr(t, 404, wxpay.CodeOrderNotExist)
	})
	t.Run("stats list every endpoint.kind under faults", func(t *testing.T) {
		var raw struct {
			Faults map[string]uint64 `json:"faults"`
		}
		c.simGet("/sim/v1/stats", &raw)
		if len(raw.Faults) != int(numFaultPoints)*int(numAPIFaults) || raw.Faults["query.system_error"] != 1 {
			t.Fatalf("faults %v", raw.Faults)
		}
	})
}
