package ingress

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeWxpayd answers every request with one canned answer.
type fakeWxpayd struct {
	status int
	header http.Header
	body   string
}

func (f fakeWxpayd) RoundTrip(req *http.Request) (*http.Response, error) {
	h := f.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if h.Get("Content-Type") == "" && f.body != "" {
		h.Set("Content-Type", "application/json")
	}
	return &http.Response{StatusCode: f.status, Header: h, Body: io.NopCloser(strings.NewReader(f.body)), Request: req}, nil
}

// reports records what the validator reports.
type reports struct {
	mu  sync.Mutex
	got []string
}

func (r *reports) Helper() {}
func (r *reports) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, fmt.Sprintf(format, args...))
}

// TestOpenAPIValidatorCatchesDrift: answers that drifted from the
// description (a required field gone, a field added, an undocumented
// status or code, a missing Retry-After, a route or method it does not
// list, an invalid request taken) are reported, with method, path and
// status; answers that agree are not.
func TestOpenAPIValidatorCatchesDrift(t *testing.T) {
	t.Parallel()
	spec := openAPISpec(t)
	const sku = `{"sku":"tea","description":"d","price":1,"stock":2,"per_buyer_limit":0,"updated_ms":1,"left":2,"reserved":0,"sold":0}`
	errBody := func(code string) string { return `{"error":{"code":"` + code + `","message":"m"}}` }
	retry := http.Header{"Retry-After": {"1"}}
	for _, tc := range []struct {
		name, method, path, body string
		answer                   fakeWxpayd
		want                     string // a part of the report; "" none
	}{
		{"a SKU as described", "GET", "/admin/v1/skus/tea", "", fakeWxpayd{status: 200, body: sku}, ""},
		{"a required field gone", "GET", "/admin/v1/skus/tea", "",
			fakeWxpayd{status: 200, body: strings.Replace(sku, `,"sold":0`, "", 1)}, `property "sold" is missing`},
		{"a field not described", "GET", "/admin/v1/skus/tea", "",
			fakeWxpayd{status: 200, body: strings.Replace(sku, `"sold":0`, `"sold":0,"hot":true`, 1)}, `"hot"`},
		{"a state not in the enum", "GET", "/api/v1/orders/01ABCDEFGH", "",
			fakeWxpayd{status: 200, body: `{"out_trade_no":"01ABCDEFGH","state":"SHIPPED","amount":{"total":1},"sku":"a","quantity":1,"description":"d","created_at":"2026-01-02T03:04:05+08:00","expires_at":"2026-01-02T03:19:05+08:00"}`},
			"SHIPPED"},
		{"an undocumented status", "GET", "/healthz", "", fakeWxpayd{status: 418, body: "teapot"}, "status is not supported"},
		{"a code the response does not list", "POST", "/api/v1/orders", `{"sku":"tea"}`,
			fakeWxpayd{status: 409, body: errBody("UNKNOWN_SKU")}, "UNKNOWN_SKU"},
		{"a 429 without Retry-After", "POST", "/api/v1/orders", `{"sku":"tea"}`,
			fakeWxpayd{status: 429, body: errBody("PREPAY_BUDGET_EXHAUSTED")}, `"Retry-After" missing`},
		{"a 429 with Retry-After", "POST", "/api/v1/orders", `{"sku":"tea"}`,
			fakeWxpayd{status: 429, header: retry, body: errBody("PREPAY_BUDGET_EXHAUSTED")}, ""},
		{"an invalid request refused", "POST", "/api/v1/orders", `{"sku":"a b"}`,
			fakeWxpayd{status: 400, body: errBody("BAD_REQUEST")}, ""},
		{"an invalid request taken", "POST", "/api/v1/orders", `{"sku":"tea","quantity":100}`,
			fakeWxpayd{status: 201, body: "{}"}, "yet was answered 201"},
		{"a path not described, answered", "GET", "/api/v1/carts", "", fakeWxpayd{status: 200, body: "{}"}, "not in the description"},
		{"a path not described, refused", "GET", "/api/v1/carts", "", fakeWxpayd{status: 404, body: errBody("NOT_FOUND")}, ""},
		{"a method not described, answered", "PUT", "/api/v1/orders", "", fakeWxpayd{status: 200, body: "{}"}, "yet was answered 200"},
		{"a 405 whose Allow disagrees", "PUT", "/api/v1/orders", "",
			fakeWxpayd{status: 405, header: http.Header{"Allow": {"GET"}}, body: errBody("METHOD_NOT_ALLOWED")}, "lists GET, POST"},
		{"a 405 as described", "PUT", "/api/v1/orders", "",
			fakeWxpayd{status: 405, header: http.Header{"Allow": {"GET, POST"}}, body: errBody("METHOD_NOT_ALLOWED")}, ""},
		{"XML where WeChat's APIv2 reply is XML", "POST", "/wxpay/v2/notify", "<xml></xml>",
			fakeWxpayd{status: 200, header: http.Header{"Content-Type": {"text/xml; charset=utf-8"}}, body: "<xml/>"}, ""},
		{"JSON where WeChat's APIv2 reply is XML", "POST", "/wxpay/v2/notify", "<xml></xml>",
			fakeWxpayd{status: 200, body: `{"code":"SUCCESS"}`}, "Content-Type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r reports
			c := &http.Client{Transport: spec.Transport(&r, "http://wxpayd.test", tc.answer)}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, "http://wxpayd.test"+tc.path, body)
			req.Header.Set("Authorization", "Bearer t")
			if strings.HasPrefix(tc.body, "<") {
				req.Header.Set("Content-Type", "text/xml")
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != tc.answer.body {
				t.Errorf("the client read %q, not the answer %q", got, tc.answer.body)
			}
			switch {
			case tc.want == "" && len(r.got) > 0:
				t.Errorf("reported %q", r.got)
			case tc.want != "" && (len(r.got) != 1 || !strings.Contains(r.got[0], tc.want)):
				t.Errorf("reported %q, want one report with %q", r.got, tc.want)
			case tc.want != "" && !strings.Contains(r.got[0], tc.method+" "+tc.path+": "+strconv.Itoa(tc.answer.status)):
				t.Errorf("the report %q does not name the exchange", r.got[0])
			}
		})
	}
}
