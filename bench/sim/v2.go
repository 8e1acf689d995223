package sim

import (
	"time"

	"github.com/valyala/fasthttp"
)

// APIv2 (/pay/unifiedorder) waits for the wxpay APIv2 package; until it
// lands the endpoint answers return_code FAIL.

type v2State struct{}

func newV2State(*Identity) (*v2State, error) { return &v2State{}, nil }

type v2Order struct{}

func (s *Server) v2UnifiedOrder(ctx *fasthttp.RequestCtx) {
	s.stats.requests[epV2UnifiedOrder].Add(1)
	ctx.SetStatusCode(200)
	ctx.SetContentType("text/xml; charset=utf-8")
	ctx.SetBodyString("<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[APIv2 not available yet]]></return_msg></xml>")
}

func (s *Server) v2PayNotification(o *order, now time.Time) *delivery {
	panic("sim: APIv2 orders cannot exist yet")
}

func v2Tamper(body []byte) []byte { return body }

func v2Acked(body []byte) bool { return false }
