package webhook

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// errAborted: Close cut the attempt off.
var errAborted = errors.New("webhook: attempt aborted")

// poster sends the POSTs to the one endpoint over a fasthttp HostClient:
// one goroutine per attempt, pooled buffers (net/http's client cost about
// twice the CPU per delivery, in its per-connection read and write
// goroutines). It tracks its connections so that abort can cut off the
// attempts in flight, which fasthttp's Do cannot be asked to do.
type poster struct {
	hc      *fasthttp.HostClient
	url     string
	auth    string // Authorization for credentials in the URL, or ""
	timeout time.Duration

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	aborted atomic.Bool
}

func newPoster(rawURL string, timeout time.Duration, conns int) (*poster, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	p := &poster{timeout: timeout, conns: map[net.Conn]struct{}{}}
	if u.User != nil {
		pw, _ := u.User.Password()
		p.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw))
		u.User = nil
	}
	p.url = u.String()
	p.hc = &fasthttp.HostClient{
		Addr:                     addr,
		IsTLS:                    u.Scheme == "https",
		TLSConfig:                &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12},
		Dial:                     p.dial,
		MaxConns:                 conns,
		MaxConnWaitTimeout:       timeout,
		MaxIdleConnDuration:      90 * time.Second,
		ReadTimeout:              timeout,
		WriteTimeout:             timeout,
		MaxResponseBodySize:      64 << 10,
		NoDefaultUserAgentHeader: true,
		RetryIfErr:               p.retryOnce,
	}
	return p, nil
}

// retryOnce sends a request again at once, a single time, when its
// connection turned out closed or reset before any answer: most often a
// kept-alive connection the endpoint had just closed, which net/http
// also retries. (The endpoint may have taken the first one: webhooks are
// at least once.) Every other failure waits for the back-off.
func (p *poster) retryOnce(_ *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	closed := errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	return false, attempts == 1 && closed && !p.aborted.Load()
}

// dial connects and tracks the connection until it is closed.
func (p *poster) dial(addr string) (net.Conn, error) {
	if p.aborted.Load() {
		return nil, errAborted
	}
	c, err := fasthttp.DialTimeout(addr, p.timeout)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, p: p}
	p.mu.Lock()
	p.conns[tc] = struct{}{}
	p.mu.Unlock()
	if p.aborted.Load() { // abort ran meanwhile
		_ = tc.Close()
		return nil, errAborted
	}
	return tc, nil
}

type trackedConn struct {
	net.Conn
	p    *poster
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	})
	return c.Conn.Close()
}

// abort closes every connection, cutting off the attempts in flight, and
// refuses new ones.
func (p *poster) abort() {
	p.aborted.Store(true)
	p.mu.Lock()
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// post sends body with the given headers (name, value pairs) and returns
// the answer's status, or an error if there was none within the timeout.
func (p *poster) post(body []byte, headers ...string) (int, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(p.url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if p.auth != "" {
		req.Header.Set("Authorization", p.auth)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	req.SetBodyRaw(body)
	err := p.hc.DoTimeout(req, resp, p.timeout)
	if p.aborted.Load() && err != nil {
		return 0, errAborted
	}
	if errors.Is(err, fasthttp.ErrBodyTooLarge) && resp.StatusCode() != 0 {
		err = nil // the status is what counts
	}
	if err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

// failure classifies an attempt's error for the metrics and the dead
// letter.
func (p *poster) failure(err error) (reason, why string) {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, fasthttp.ErrNoFreeConns), errors.As(err, &ne) && ne.Timeout():
		return "timeout", "no answer within " + p.timeout.String()
	}
	return "connection", truncate(err.Error(), 200)
}

func statusText(code int) string { return "HTTP " + strconv.Itoa(code) }
