package load

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// endpoint is one HTTP server (a wxpayd node or wxpaysim) behind a
// fasthttp.HostClient holding at most conns keep-alive connections.
// Requests wait for a free connection up to their deadline. Safe for
// concurrent use.
type endpoint struct {
	base string // http://host:port
	host string
	hc   *fasthttp.HostClient
}

func newEndpoint(raw string, conns int, timeout time.Duration) (*endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	return &endpoint{
		base: "http://" + u.Host,
		host: u.Host,
		hc: &fasthttp.HostClient{
			Addr:                          u.Host,
			Name:                          "wxpaybench",
			MaxConns:                      conns,
			MaxConnWaitTimeout:            timeout,
			ReadTimeout:                   timeout,
			WriteTimeout:                  timeout,
			MaxIdleConnDuration:           30 * time.Second,
			MaxIdemponentCallAttempts:     1, // the generator counts failures; it never retries behind the buyer's back
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			ReadBufferSize:                8 << 10,
		},
	}, nil
}

// reply is an answer, its body copied out of fasthttp's buffer.
type reply struct {
	status     int
	body       []byte
	retryAfter time.Duration
}

// do sends one request and waits for the answer until deadline. A nil
// body sends none; auth, when set, goes in a Bearer Authorization header.
func (e *endpoint) do(method, path, auth string, body []byte, deadline time.Time) (reply, error) {
	return e.doKey(method, path, auth, "", body, deadline)
}

// doKey is do with an Idempotency-Key header (none when key is empty).
func (e *endpoint) doKey(method, path, auth, key string, body []byte, deadline time.Time) (reply, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(e.base + path)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if err := e.hc.DoDeadline(req, resp, deadline); err != nil {
		return reply{}, err
	}
	r := reply{status: resp.StatusCode(), body: append([]byte(nil), resp.Body()...)}
	if ra := resp.Header.Peek("Retry-After"); len(ra) > 0 {
		if n, err := strconv.Atoi(string(ra)); err == nil && n >= 0 {
			r.retryAfter = time.Duration(n) * time.Second
		}
	}
	return r, nil
}

// errorCode extracts the error code from wxpayd's {"error":{"code"}} or
// wxpaysim's {"code"} error bodies. Both servers write the code as the first
// "code" member, so a scan finds it without decoding (tens of thousands of
// SOLD_OUT answers arrive in a burst); anything else is decoded.
func errorCode(body []byte) string {
	const key = `"code":"`
	if i := bytes.Index(body, []byte(key)); i >= 0 {
		rest := body[i+len(key):]
		if j := bytes.IndexByte(rest, '"'); j > 0 && bytes.IndexByte(rest[:j], '\\') < 0 {
			return string(rest[:j])
		}
	}
	var v struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	if v.Error.Code != "" {
		return v.Error.Code
	}
	return v.Code
}

// answerCode names an answer for the error tables: "409 SOLD_OUT".
func answerCode(r reply) string {
	c := errorCode(r.body)
	if c == "" {
		return strconv.Itoa(r.status)
	}
	return strconv.Itoa(r.status) + " " + c
}

// transportCode names a failed request for the error tables.
func transportCode(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return "transport: timeout"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "transport: no free connection"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "transport: connection closed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "transport: connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "transport: connection reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "transport: timeout"
	}
	s := err.Error()
	if i := strings.IndexByte(s, ':'); i > 0 && i < 40 {
		s = s[:i]
	}
	return "transport: " + s
}
