package ingress

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzHandlers sends arbitrary methods, paths, headers and bodies through
// the real handler (with real actors and store): it must never panic and
// must answer with a valid status and, for errors, a JSON body.
func FuzzHandlers(f *testing.F) {
	s := newStack(f, stackOpts{})
	tok, _ := s.srv.sess.issue("fuzz-buyer")
	f.Add("POST", "/api/v1/orders", "Bearer "+tok, []byte(`{"sku":"x","quantity":1}`))
	f.Add("POST", "/api/v1/login", "", []byte(`{"code":"code-1"}`))
	f.Add("PUT", "/admin/v1/skus/a", "Bearer "+s.admin, []byte(`{"description":"d","price":1,"stock":1}`))
	f.Add("POST", "/wxpay/v3/notify", "", []byte(`{"id":"1"}`))
	f.Add("GET", "/api/v1/orders/%00", "Bearer x.y", []byte{})
	f.Add("POST", "/admin/v1/orders/0123456/refunds", "Bearer "+s.admin, []byte(`{"amount":-1}`))
	h := s.srv.Handler()
	f.Fuzz(func(t *testing.T, method, path, auth string, body []byte) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(path)
		if auth != "" {
			ctx.Request.Header.Set("Authorization", auth)
		}
		ctx.Request.SetBody(body)
		h(&ctx)
		st := ctx.Response.StatusCode()
		if st < 200 || st > 599 {
			t.Fatalf("status %d", st)
		}
		if st >= 400 && st != 404 && len(ctx.Response.Body()) == 0 {
			t.Fatalf("%d without a body", st)
		}
	})
}
