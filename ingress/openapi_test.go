package ingress

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/ingress/openapitest"
)

// The OpenAPI description (openapi.json) is held to the code three ways:
// the end-to-end stack validates every exchange against it (newStack
// installs openapitest's Transport and Proxy), the tests below compare its
// routes and error codes with the dispatcher's and errors.go's, and
// TestOpenAPIValidatorCatchesDrift shows the validator refusing answers
// that drifted.

var loadSpec = sync.OnceValues(func() (*openapitest.Spec, error) { return openapitest.Load(openAPI) })

// openAPISpec returns the served description, loaded and validated once.
func openAPISpec(t testing.TB) *openapitest.Spec {
	t.Helper()
	spec, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel()
	spec := openAPISpec(t) // kin-openapi's LoadFromData and Validate
	if v := spec.Doc.OpenAPI; v != "3.0.3" {
		t.Fatalf("openapi %q, want 3.0.3", v)
	}
}

func TestOpenAPIDocsCopyIsTheSame(t *testing.T) {
	t.Parallel()
	docs, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatalf("%v: run make openapi to copy ingress/openapi.json there", err)
	}
	if !bytes.Equal(docs, openAPI) {
		t.Fatal("docs/openapi.json differs from ingress/openapi.json, the one source: edit ingress/openapi.json and run make openapi")
	}
}

// TestOpenAPIErrorCodes: every code constant of errors.go is in the
// ErrorCode enum and the enum has no other; every code a response lists is
// in the enum; every code but FORBIDDEN (answered by no route) is listed
// by some response.
func TestOpenAPIErrorCodes(t *testing.T) {
	t.Parallel()
	spec := openAPISpec(t)
	consts := errorCodeConsts(t)
	var enum []string
	for _, v := range spec.Doc.Components.Schemas["ErrorCode"].Value.Enum {
		enum = append(enum, v.(string))
	}
	slices.Sort(enum)
	if !slices.Equal(enum, consts) {
		t.Fatalf("ErrorCode enum %v\nerrors.go codes %v", enum, consts)
	}
	listed := map[string]bool{}
	for path, item := range spec.Doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, r := range op.Responses.Map() {
				for _, code := range responseCodes(r.Value) {
					if !slices.Contains(consts, code) {
						t.Errorf("%s %s %s lists %s, which is no code of errors.go", method, path, status, code)
					}
					listed[code] = true
				}
			}
		}
	}
	for _, c := range consts {
		if !listed[c] && c != codeForbidden {
			t.Errorf("no response lists %s", c)
		}
	}
}

// errorCodeConsts reads the string values of errors.go's code* constants.
func errorCodeConsts(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if !strings.HasPrefix(name.Name, "code") || i >= len(vs.Values) {
				continue
			}
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				v, _ := strconv.Unquote(lit.Value)
				codes = append(codes, v)
			}
		}
		return true
	})
	if len(codes) < 20 {
		t.Fatalf("found %d code constants in errors.go: %v", len(codes), codes)
	}
	slices.Sort(codes)
	return codes
}

// responseCodes returns the error codes a response's JSON schema lists
// (allOf's code enum), if any.
func responseCodes(r *openapi3.Response) []string {
	mt := r.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	var out []string
	for _, sub := range mt.Schema.Value.AllOf {
		e := sub.Value.Properties["error"]
		if e == nil || e.Value.Properties["code"] == nil {
			continue
		}
		for _, v := range e.Value.Properties["code"].Value.Enum {
			out = append(out, v.(string))
		}
	}
	return out
}

// routes are the paths the dispatcher (server.go, webhooks.go) serves, with
// sample parameters, and the methods each takes.
var routes = []struct {
	path    string
	methods []string
}{
	{path: "/api/v1/login", methods: []string{"POST"}},
	{path: "/api/v1/orders", methods: []string{"GET", "POST"}},
	{path: "/api/v1/orders/01ABCDEFGH", methods: []string{"GET"}},
	{path: "/api/v1/orders/01ABCDEFGH/payment", methods: []string{"POST"}},
	{path: "/api/v1/checkouts", methods: []string{"POST"}},
	{path: "/admin/v1/skus/tea.green", methods: []string{"GET", "PUT"}},
	{path: "/admin/v1/orders", methods: []string{"GET"}},
	{path: "/admin/v1/orders/01ABCDEFGH", methods: []string{"GET"}},
	{path: "/admin/v1/orders/01ABCDEFGH/refunds", methods: []string{"POST"}},
	{path: "/admin/v1/orders/01ABCDEFGH/refunds/01ABCDEFGH-K0a1b2c3d4e5f6a7b/apply-abnormal", methods: []string{"POST"}},
	{path: "/admin/v1/reconciliations", methods: []string{"POST"}},
	{path: "/admin/v1/reconciliations/2026-01-02", methods: []string{"GET"}},
	{path: "/admin/v1/reconciliations/2026-01-02/discrepancies/unknown_order:01ABCDEFGH/resolve", methods: []string{"POST"}},
	{path: "/admin/v1/webhooks/dead", methods: []string{"GET"}},
	{path: "/admin/v1/webhooks/dead/7/redeliver", methods: []string{"POST"}},
	{path: "/wxpay/v3/notify", methods: []string{"POST"}},
	{path: "/wxpay/v2/notify", methods: []string{"POST"}},
	{path: "/wxpay/v2/refund-notify", methods: []string{"POST"}},
	{path: "/openapi.json", methods: []string{"GET"}},
	{path: "/healthz", methods: []string{"GET", "HEAD"}},
	{path: "/readyz", methods: []string{"GET", "HEAD"}},
	{path: "/metrics", methods: []string{"GET", "HEAD"}},
}

// TestOpenAPIListsEveryRoute: each path the dispatcher serves answers a
// method it does not take with 405 and an Allow header naming exactly the
// methods the description lists for it; every path the description lists
// is one of them; a path neither has answers 404.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	s := newStack(t, stackOpts{})
	spec := openAPISpec(t)
	plain := &http.Client{} // the stack's client would report the 405s it is shown here
	described := map[string]bool{}
	for _, rt := range routes {
		t.Run(rt.path, func(t *testing.T) {
			templ := templateOf(spec.Doc, rt.path)
			if templ == "" {
				t.Fatalf("the description has no path for %s", rt.path)
			}
			described[templ] = true
			var ops []string
			for m := range spec.Doc.Paths.Value(templ).Operations() {
				if m != http.MethodOptions {
					ops = append(ops, m)
				}
			}
			slices.Sort(ops)
			if !slices.Equal(ops, rt.methods) {
				t.Errorf("the description lists %v for %s; the dispatcher takes %v", ops, templ, rt.methods)
			}
			req, _ := http.NewRequest("DELETE", s.url+rt.path, nil)
			resp, err := plain.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 405 || !strings.Contains(string(body), `"METHOD_NOT_ALLOWED"`) ||
				resp.Header.Get("Allow") != strings.Join(rt.methods, ", ") {
				t.Errorf("DELETE: %d Allow %q %s, want 405 Allow %q", resp.StatusCode, resp.Header.Get("Allow"), body, strings.Join(rt.methods, ", "))
			}
		})
	}
	for path := range spec.Doc.Paths.Map() {
		if !described[path] {
			t.Errorf("the description lists %s, which the dispatcher does not serve", path)
		}
	}
	if st, body, _ := s.do("GET", "/api/v2/nowhere", "", nil); st != 404 || !strings.Contains(string(body), `"NOT_FOUND"`) {
		t.Errorf("an unknown path: %d %s", st, body)
	}
	st, body, h := s.do("GET", "/openapi.json", "", nil)
	if st != 200 || h.Get("Content-Type") != "application/json" || !bytes.Equal(body, openAPI) {
		t.Errorf("GET /openapi.json: %d %q, %d bytes", st, h.Get("Content-Type"), len(body))
	}
	// The operations routes through the checking client too.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if st, body, _ := s.do("GET", path, "", nil); st != 200 {
			t.Errorf("GET %s: %d %s", path, st, body)
		}
		if st, body, _ := s.do("HEAD", path, "", nil); st != 200 || len(body) != 0 {
			t.Errorf("HEAD %s: %d %q", path, st, body)
		}
	}
	s.srv.SetReady(false)
	if st, body, _ := s.do("GET", "/readyz", "", nil); st != 503 {
		t.Errorf("GET /readyz, not ready: %d %s", st, body)
	}
	s.srv.SetReady(true)
}

// templateOf returns the description's path template that path matches.
func templateOf(doc *openapi3.T, path string) string {
	for templ := range doc.Paths.Map() {
		if matchTemplate(templ, path) {
			return templ
		}
	}
	return ""
}

// matchTemplate reports whether path fills templ's {parameters}, one
// segment each.
func matchTemplate(templ, path string) bool {
	ts, ps := strings.Split(templ, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if ts[i] != ps[i] && !(strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}") && ps[i] != "") {
			return false
		}
	}
	return true
}

// checkExchange holds an exchange a test ran through the handler in memory
// (a RequestCtx, no HTTP client between) to the description, as the
// stack's Transport does over the wire.
func checkExchange(t testing.TB, ctx *fasthttp.RequestCtx) {
	t.Helper()
	method, uri := string(ctx.Method()), string(ctx.RequestURI())
	req, err := http.NewRequest(method, "http://wxpayd.test"+uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ctx.Request.Header.All() {
		req.Header.Add(string(k), string(v))
	}
	resp := &http.Response{StatusCode: ctx.Response.StatusCode(), Header: http.Header{}}
	for k, v := range ctx.Response.Header.All() {
		resp.Header.Add(string(k), string(v))
	}
	if err := openAPISpec(t).Check(req, ctx.Request.Body(), resp, ctx.Response.Body()); err != nil {
		t.Errorf("OpenAPI: %s %s: %d: %v", method, uri, resp.StatusCode, err)
	}
}
