package ingress

import (
	"bytes"
	_ "embed" // openapi.json

	"github.com/valyala/fasthttp"
)

// openAPI is the OpenAPI 3.0 description of every route this server
// answers, served at GET /openapi.json. It is the one source:
// docs/openapi.json is a byte-identical copy (make openapi), and the
// end-to-end tests validate their requests and the server's answers
// against it (openapi_test.go).
//
//go:embed openapi.json
var openAPI []byte

// routeOpenAPI labels GET /openapi.json in the metrics.
const routeOpenAPI = "openapi"

// OpenAPI returns a copy of the OpenAPI description the server serves at
// /openapi.json.
func OpenAPI() []byte { return bytes.Clone(openAPI) }

// serveOpenAPI answers GET /openapi.json. It needs no token: the document
// holds no secret.
func (s *Server) serveOpenAPI(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(openAPI)
}
