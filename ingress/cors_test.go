package ingress

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestCORS(t *testing.T) {
	const page = "http://127.0.0.1:9090"
	type want struct {
		nextRuns     bool
		status       int // when next does not run
		allowOrigin  string
		allowHeaders string
		expose       string
		vary         string
	}
	cases := []struct {
		name    string
		origins []string
		method  string
		path    string
		origin  string
		preMeth string // Access-Control-Request-Method
		want    want
	}{
		{"with no origins configured nothing is added and a preflight reaches the router", nil,
			"OPTIONS", "/api/v1/orders", page, "POST", want{nextRuns: true}},
		{"an allowed origin's preflight is answered 204 with the headers the API reads", []string{page},
			"OPTIONS", "/api/v1/orders", page, "POST",
			want{status: 204, allowOrigin: page, allowHeaders: corsAllowHeaders, vary: "Origin"}},
		{"an allowed origin's request runs and may read Retry-After", []string{"https://a.example", page},
			"POST", "/api/v1/orders", page, "",
			want{nextRuns: true, allowOrigin: page, expose: "Retry-After", vary: "Origin"}},
		{"another origin gets no CORS headers, only Vary", []string{page},
			"OPTIONS", "/api/v1/orders", "http://evil.example", "POST", want{nextRuns: true, vary: "Origin"}},
		{"an origin differing only by port is another origin", []string{page},
			"GET", "/api/v1/orders/X", "http://127.0.0.1:9091", "", want{nextRuns: true, vary: "Origin"}},
		{"a request without Origin is untouched but for Vary", []string{page},
			"POST", "/api/v1/login", "", "", want{nextRuns: true, vary: "Origin"}},
		{"an OPTIONS that is not a preflight reaches the router", []string{page},
			"OPTIONS", "/api/v1/orders", page, "", want{nextRuns: true, allowOrigin: page, expose: "Retry-After", vary: "Origin"}},
		{"admin routes never answer CORS", []string{page},
			"OPTIONS", "/admin/v1/skus/tea", page, "PUT", want{nextRuns: true}},
		{"notification routes never answer CORS", []string{page},
			"POST", "/wxpay/v3/notify", page, "", want{nextRuns: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &Server{cfg: Config{CORSOrigins: c.origins}}
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod(c.method)
			ctx.Request.SetRequestURI(c.path)
			if c.origin != "" {
				ctx.Request.Header.Set("Origin", c.origin)
			}
			if c.preMeth != "" {
				ctx.Request.Header.Set("Access-Control-Request-Method", c.preMeth)
			}
			ran := false
			route := s.cors(&ctx, func(ctx *fasthttp.RequestCtx) string {
				ran = true
				ctx.SetStatusCode(299)
				return "next"
			})
			if ran != c.want.nextRuns {
				t.Fatalf("next ran = %v, want %v", ran, c.want.nextRuns)
			}
			h := &ctx.Response.Header
			if !ran {
				if route != routeCORS || ctx.Response.StatusCode() != c.want.status {
					t.Fatalf("route %q status %d, want %q %d", route, ctx.Response.StatusCode(), routeCORS, c.want.status)
				}
				if got := string(h.Peek("Access-Control-Allow-Methods")); got != "GET, POST" {
					t.Errorf("Allow-Methods %q", got)
				}
			}
			for _, hv := range []struct{ name, want string }{
				{"Access-Control-Allow-Origin", c.want.allowOrigin},
				{"Access-Control-Allow-Headers", c.want.allowHeaders},
				{"Access-Control-Expose-Headers", c.want.expose},
				{"Vary", c.want.vary},
			} {
				if got := string(h.Peek(hv.name)); got != hv.want {
					t.Errorf("%s = %q, want %q", hv.name, got, hv.want)
				}
			}
		})
	}
}

func TestCORSOriginsAreValidated(t *testing.T) {
	for _, o := range []string{"http://127.0.0.1:9090", "https://shop.example.com", "http://[::1]:9090"} {
		if !validOrigins([]string{o}) {
			t.Errorf("%q refused", o)
		}
	}
	for _, o := range []string{"*", "127.0.0.1:9090", "http://", "http://a.example/", "https://a.example/page",
		"ftp://a.example", "http://*.example", "http://user@a.example"} {
		if validOrigins([]string{o}) {
			t.Errorf("%q accepted", o)
		}
	}
	c := Config{AppID: "wx1", MchID: "1", SessionSecret: make([]byte, 32), AdminToken: make([]byte, 16),
		ShardPrefix: "01", CORSOrigins: []string{"http://ok.example", "bad"}}
	if err := c.Validate(); err == nil {
		t.Fatal("Validate accepted a bad origin")
	}
}
