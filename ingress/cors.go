package ingress

import (
	"bytes"
	"strings"

	"github.com/valyala/fasthttp"
)

// CORS for the buyer API.
//
// A Mini Program does not need it: wx.request is not a browser request and
// WeChat checks the server's domain against the list in the Mini Program's
// admin console instead. A page in a browser does: wxpaysim's Mini Program
// simulator (GET /sim/miniprogram/ on the simulator's own address) calls
// /api/v1/ across origins, with Authorization and Idempotency-Key headers,
// so the browser asks first (OPTIONS preflight) and then reads the answer,
// Retry-After included, only when this server names the page's origin.
//
// Config.CORSOrigins lists the origins allowed, each compared exactly
// (scheme://host[:port], as the browser sends Origin). Empty, the default,
// turns all of this off: no header is added and OPTIONS gets the router's
// 405 as before. Only /api/v1/ answers CORS; /admin, /wxpay and /metrics
// never do.

// corsPrefix is the only path CORS applies to.
const corsPrefix = "/api/v1/"

// routeCORS labels answered preflights in the metrics.
const routeCORS = "cors.preflight"

// corsAllowHeaders are the request headers the buyer API reads.
const corsAllowHeaders = "Authorization, Content-Type, Idempotency-Key"

// cors runs next for the request, first adding the CORS answer headers when
// the request comes from an allowed origin; a preflight from one is answered
// here (204) without reaching next. With no CORSOrigins it is just next.
func (s *Server) cors(ctx *fasthttp.RequestCtx, next func(*fasthttp.RequestCtx) string) string {
	if len(s.cfg.CORSOrigins) == 0 || !bytes.HasPrefix(ctx.Path(), []byte(corsPrefix)) {
		return next(ctx)
	}
	h := &ctx.Response.Header
	// The answer depends on Origin whether or not it is allowed: caches
	// must not hand one origin's answer to another.
	h.Add("Vary", "Origin")
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 || !s.corsAllowed(origin) {
		return next(ctx)
	}
	h.SetBytesV("Access-Control-Allow-Origin", origin)
	if string(ctx.Method()) == fasthttp.MethodOptions && len(ctx.Request.Header.Peek("Access-Control-Request-Method")) > 0 {
		h.Set("Access-Control-Allow-Methods", "GET, POST")
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", "600")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return routeCORS
	}
	// A buyer waiting out a 429 or 503 needs Retry-After; a browser hides
	// every header not listed here.
	h.Set("Access-Control-Expose-Headers", "Retry-After")
	return next(ctx)
}

// corsAllowed reports whether origin is one of Config.CORSOrigins. The list
// is a few entries: a scan is cheaper than a map.
func (s *Server) corsAllowed(origin []byte) bool {
	for _, o := range s.cfg.CORSOrigins {
		if o == string(origin) {
			return true
		}
	}
	return false
}

// validOrigins reports whether every entry is a browser origin:
// http:// or https://, a host, an optional port, no path, no wildcard.
func validOrigins(origins []string) bool {
	for _, o := range origins {
		rest, ok := strings.CutPrefix(o, "https://")
		if !ok {
			if rest, ok = strings.CutPrefix(o, "http://"); !ok {
				return false
			}
		}
		if rest == "" || strings.ContainsAny(rest, "/?#*@ \t") {
			return false
		}
	}
	return true
}
