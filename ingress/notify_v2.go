package ingress

import (
	"github.com/valyala/fasthttp"
)

// notifyV2 and refundNotifyV2 take the APIv2 XML notifications. Until the
// APIv2 key is configured they answer 404, as for a route that is off.
func (s *Server) notifyV2(ctx *fasthttp.RequestCtx) {
	s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "APIv2 is not configured", 0})
}

func (s *Server) refundNotifyV2(ctx *fasthttp.RequestCtx) {
	s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "APIv2 is not configured", 0})
}
