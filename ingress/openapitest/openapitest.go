// Package openapitest holds wxpayd's HTTP exchanges to its OpenAPI
// description (ingress/openapi.json) in tests: a Spec checks one request
// and its answer, Transport checks every exchange of an http.Client, and
// Proxy checks what another program (the WeChat simulator) sends to
// wxpayd. Only tests import it, so kin-openapi stays out of the binaries.
//
// The rules, per exchange:
//
//   - A path the description does not list must be answered 404 NOT_FOUND;
//     a method it does not list for the path, 405 METHOD_NOT_ALLOWED with
//     an Allow header naming exactly the methods it lists (OPTIONS, the
//     CORS preflight, aside).
//   - A request the description calls invalid (a missing field, a value
//     out of range) must be refused with a 4xx: tests send such requests
//     on purpose, and a 2xx or 5xx means the description and the code
//     disagree about what is valid.
//   - Every answer must be one the operation documents: its status, its
//     headers (Retry-After where required) and its body (content type and
//     schema: every required field, no undocumented field, enums).
//
// Bodies that are not JSON (APIv2's XML, /metrics' text) are checked by
// content type only. Authentication is the server's business: the
// validator accepts any credentials and checks only shapes.
package openapitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Spec is a loaded, valid OpenAPI description. Safe for concurrent use.
type Spec struct {
	Doc    *openapi3.T
	router routers.Router
}

// Load parses data, validates it as an OpenAPI 3 document and builds its
// router.
func Load(data []byte) (*Spec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("openapitest: load: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapitest: invalid document: %w", err)
	}
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapitest: router: %w", err)
	}
	return &Spec{Doc: doc, router: r}, nil
}

// Reporter receives mismatches; *testing.T and *testing.B are ones.
type Reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// Check returns what req (whose body is reqBody) and its answer resp (body
// respBody) disagree with the description on, or nil. It reads neither
// body: the caller passes them.
func (s *Spec) Check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	if req.Method == http.MethodHead {
		return nil // no body to check; the operations routes answer HEAD as GET
	}
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	vreq.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(reqBody)), nil }
	vreq.ContentLength = int64(len(reqBody))
	if len(reqBody) > 0 && vreq.Header.Get("Content-Type") == "" {
		// wxpayd reads a JSON body whatever its Content-Type; the
		// description names application/json, which clients should send.
		vreq.Header.Set("Content-Type", "application/json")
	}
	route, params, err := s.router.FindRoute(vreq)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return s.checkUnrouted(resp, respBody, http.StatusNotFound, "NOT_FOUND", "the path is not in the description")
	case errors.Is(err, routers.ErrMethodNotAllowed):
		if err := s.checkUnrouted(resp, respBody, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "the method is not in the description"); err != nil {
			return err
		}
		return s.checkAllow(vreq, resp.Header.Get("Allow"))
	case err != nil:
		return fmt.Errorf("routing: %w", err)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		SkipSettingDefaults:   true, // never change what was sent
		IncludeResponseStatus: true, // an undocumented status is a mismatch
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if reqErr != nil && (resp.StatusCode < 400 || resp.StatusCode >= 500) {
		return fmt.Errorf("the request does not match the description, yet was answered %d: %w", resp.StatusCode, reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts,
		Body: io.NopCloser(bytes.NewReader(respBody)),
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("the answer does not match the description: %w", err)
	}
	return nil
}

// checkUnrouted holds the answer to a request the description has no
// operation for to the refusal it must be: status, and the API's error
// body with code.
func (s *Spec) checkUnrouted(resp *http.Response, body []byte, status int, code, why string) error {
	if resp.StatusCode != status {
		return fmt.Errorf("%s, yet was answered %d", why, resp.StatusCode)
	}
	schema := s.Doc.Components.Schemas["Error"]
	if schema == nil {
		return errors.New("the description has no Error schema")
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("%s: answered %d with Content-Type %q, not the error body", why, status, ct)
	}
	v, err := openapi3filter.JSONBodyDecoder(bytes.NewReader(body), resp.Header, schema, nil)
	if err != nil {
		return fmt.Errorf("%s: the %d body is not JSON: %w", why, status, err)
	}
	if err := schema.Value.VisitJSON(v); err != nil {
		return fmt.Errorf("%s: the %d body is not an Error: %w", why, status, err)
	}
	if got := v.(map[string]any)["error"].(map[string]any)["code"]; got != code {
		return fmt.Errorf("%s: answered %d with code %v, not %s", why, status, got, code)
	}
	return nil
}

// checkAllow holds a 405's Allow header to the methods the description
// lists for the request's path.
func (s *Spec) checkAllow(req *http.Request, allow string) error {
	var got []string
	for m := range strings.SplitSeq(allow, ",") {
		if m = strings.TrimSpace(m); m != "" {
			got = append(got, m)
		}
	}
	if len(got) == 0 {
		return errors.New("405 without an Allow header")
	}
	probe := req.Clone(context.Background())
	probe.Method = got[0]
	route, _, err := s.router.FindRoute(probe)
	if err != nil {
		return fmt.Errorf("405 with Allow %q, but the description has no %s for the path: %w", allow, got[0], err)
	}
	var want []string
	for m := range route.PathItem.Operations() {
		if m != http.MethodOptions {
			want = append(want, m)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("405 with Allow %q; the description lists %s for %s", allow, strings.Join(want, ", "), route.Path)
	}
	return nil
}

// Transport returns an http.RoundTripper that sends each request with next
// (http.DefaultTransport if nil) and, for requests to base's host, reports
// to r every mismatch between the exchange and the description, with the
// method, path and status. Requests to other hosts pass unchecked.
func (s *Spec) Transport(r Reporter, base string, next http.RoundTripper) http.RoundTripper {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		r.Errorf("openapitest: base %q is not a URL with a host", base)
	}
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{spec: s, r: r, host: u.Host, next: next}
}

type transport struct {
	spec *Spec
	r    Reporter
	host string
	next http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host {
		return t.next.RoundTrip(req)
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("openapitest: read the request body: %w", err)
		}
		body = b
	}
	out := req.Clone(req.Context())
	out.Body, out.ContentLength = http.NoBody, int64(len(body))
	if len(body) > 0 {
		out.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := t.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	got, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("openapitest: read the answer: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(got))
	if err := t.spec.Check(req, body, resp, got); err != nil {
		t.r.Helper()
		t.r.Errorf("OpenAPI: %s %s: %d: %v", req.Method, req.URL.RequestURI(), resp.StatusCode, err)
	}
	return resp, nil
}

// Proxy starts a reverse proxy to target (a URL) whose exchanges are
// checked as Transport checks them, for a program whose HTTP client cannot
// take a RoundTripper. Close it before the test ends.
func (s *Spec) Proxy(r Reporter, target string) (*httptest.Server, error) {
	to, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("openapitest: proxy target: %w", err)
	}
	p := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(to) },
		Transport: s.Transport(r, target, nil),
		// The target going away (its test stopping) is not a mismatch:
		// the caller sees 502 and retries, as it would without a proxy.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	return httptest.NewServer(p), nil
}
