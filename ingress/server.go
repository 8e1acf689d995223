package ingress

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

// Login exchanges a wx.login code for a session. *client.LoginClient
// implements it.
type Login interface {
	Code2Session(ctx context.Context, code string) (client.Session, error)
}

// Config configures the server. Zero values take the defaults noted.
type Config struct {
	AppID string // required: signs the wx.requestPayment parameters
	MchID string // required: APIv2 notifications must name it

	// MaxPrepayInFlight and MaxNotifyInFlight are the admission limits of
	// the two lanes (defaults 4096 and 2048).
	MaxPrepayInFlight int
	MaxNotifyInFlight int
	// SessionTTL is a buyer session's life (default 2 h).
	SessionTTL time.Duration
	// SessionSecret signs sessions (at least 32 bytes; required).
	SessionSecret []byte
	// AdminToken guards /admin (at least 16 bytes; required).
	AdminToken []byte
	// ShopToken guards the shop's checkout API, POST /api/v1/checkouts
	// (at least 16 bytes, not the AdminToken); empty (the default), the
	// route answers 404. See shop.go.
	ShopToken []byte
	// ShardPrefix starts every out_trade_no this node generates (2
	// characters of [0-9A-Z], default "01").
	ShardPrefix string
	// MaxRequestBody bounds every request body (default 64 KiB).
	MaxRequestBody int
	// CORSOrigins are the browser origins (scheme://host[:port]) allowed to
	// call /api/v1/ across origins, e.g. wxpaysim's Mini Program simulator
	// page; empty (the default) answers no CORS. See cors.go.
	CORSOrigins []string
	// TrustedProxies are the reverse proxies and load balancers in front
	// of the server: from a peer in one of them, the buyer's IP is read
	// from X-Forwarded-For (clientip.go); from any other peer the header
	// is ignored. Empty (the default): the TCP peer is the buyer.
	TrustedProxies []netip.Prefix
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives one line per notable event (default slog.Default).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxPrepayInFlight <= 0 {
		c.MaxPrepayInFlight = 4096
	}
	if c.MaxNotifyInFlight <= 0 {
		c.MaxNotifyInFlight = 2048
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 2 * time.Hour
	}
	if c.ShardPrefix == "" {
		c.ShardPrefix = "01"
	}
	if c.MaxRequestBody <= 0 {
		c.MaxRequestBody = 64 << 10
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first invalid field, by name, never its value.
func (c *Config) Validate() error {
	switch {
	case c.AppID == "":
		return errors.New("ingress: AppID is required")
	case c.MchID == "":
		return errors.New("ingress: MchID is required")
	case len(c.SessionSecret) < 32:
		return errors.New("ingress: SessionSecret must be at least 32 bytes")
	case len(c.AdminToken) < 16:
		return errors.New("ingress: AdminToken must be at least 16 bytes")
	case len(c.ShopToken) > 0 && len(c.ShopToken) < 16:
		return errors.New("ingress: ShopToken must be at least 16 bytes")
	case len(c.ShopToken) > 0 && subtle.ConstantTimeCompare(c.ShopToken, c.AdminToken) == 1:
		return errors.New("ingress: ShopToken must not be the AdminToken")
	case len(c.ShardPrefix) != 2 || !isShard(c.ShardPrefix):
		return errors.New("ingress: ShardPrefix must be 2 characters of [0-9A-Z]")
	case !validOrigins(c.CORSOrigins):
		return errors.New("ingress: CORSOrigins must be http:// or https:// origins without a path")
	}
	return nil
}

func isShard(s string) bool {
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'A' && s[i] <= 'Z') {
			return false
		}
	}
	return true
}

// PaySigner signs wx.requestPayment parameters: *wxpay.Signer (APIv3,
// signType RSA) or *wxpay.V2Merchant (APIv2, MD5 or HMAC-SHA256). It must
// be safe for concurrent use.
type PaySigner interface {
	RequestPayment(appID, prepayID string, timestamp int64, nonce string) (wxpay.PayParams, error)
}

// Deps are the components the server drives.
type Deps struct {
	Actors *actors.System
	// Router carries order and stock messages; nil uses Local{Actors}
	// (single node). Metrics and rejection events stay with Actors.
	Router Router
	Signer PaySigner
	// Notify checks APIv3 notifications; nil (an APIv2 merchant) makes
	// /wxpay/v3/notify answer 404. Notify or V2Key is required.
	Notify   *wxpay.NotifyParser
	V2Key    *wxpay.V2Key // nil: the APIv2 notification routes answer 404
	Login    Login
	Registry prometheus.Registerer // nil: metrics are not registered
	Gatherer prometheus.Gatherer   // for /metrics; nil: prometheus.DefaultGatherer
	// Webhooks is the webhook dead-letter list behind /admin/v1/webhooks/
	// (webhooks.go); nil: those routes answer 404.
	Webhooks Webhooks
	// Reconciler serves /admin/v1/reconciliations (reconcile.go); nil:
	// those routes answer 404.
	Reconciler Reconciliations
}

// Server is the fasthttp front. Build it with New, then Run; Close stops
// it. Safe for concurrent use.
type Server struct {
	cfg    Config
	d      Deps
	sess   *sessions
	prepay *lane
	notify *lane
	// prepayWait bounds a buyer's wait for the order actor: the budget's
	// pacing, WeChat's answer and a margin.
	prepayWait time.Duration
	metrics    *metrics
	srv        *fasthttp.Server
	ready      atomic.Bool
	draining   atomic.Bool
	rejects    rejectLimiter
	// lnMu orders Run's listener against Close: a Close that comes first
	// makes Run return at once instead of serving forever.
	lnMu   sync.Mutex
	ln     net.Listener
	closed bool
}

// New builds a server.
func New(cfg Config, d Deps) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Actors == nil || d.Signer == nil || d.Login == nil || d.Notify == nil && d.V2Key == nil {
		return nil, errors.New("ingress: Actors, Signer, Login, and Notify or V2Key are required")
	}
	if d.Router == nil {
		d.Router = Local{Sys: d.Actors}
	}
	s := &Server{
		cfg: cfg, d: d,
		sess:   &sessions{secret: cfg.SessionSecret, ttl: cfg.SessionTTL, now: cfg.Now},
		prepay: newLane(cfg.MaxPrepayInFlight),
		notify: newLane(cfg.MaxNotifyInFlight),
	}
	ac := d.Actors.Config()
	s.prepayWait = ac.PrepayMaxWait + ac.PrepayTimeout + 5*time.Second
	var err error
	if s.metrics, err = newMetrics(d.Registry, d.Gatherer, s); err != nil {
		return nil, err
	}
	s.srv = &fasthttp.Server{
		Handler:                       s.handle,
		Name:                          "wxpayd",
		MaxRequestBodySize:            cfg.MaxRequestBody,
		ReadTimeout:                   10 * time.Second,
		WriteTimeout:                  10 * time.Second,
		IdleTimeout:                   60 * time.Second,
		Concurrency:                   cfg.MaxPrepayInFlight + cfg.MaxNotifyInFlight + 1024,
		DisableHeaderNamesNormalizing: false,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		ReduceMemoryUsage:             false,
		CloseOnShutdown:               true,
		ErrorHandler:                  s.parseError,
		// fasthttp's own log lines go to the server's logger, scrubbed,
		// and its errors carry no request bytes (a cut-off request's
		// Authorization header would otherwise be quoted).
		Logger:                httpLog{cfg.Logger},
		SecureErrorLogMessage: true,
	}
	return s, nil
}

// parseError answers requests fasthttp could not read (oversize or broken)
// in the protocol's own error form.
func (s *Server) parseError(ctx *fasthttp.RequestCtx, err error) {
	status, msg := fasthttp.StatusBadRequest, "malformed request"
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		status, msg = fasthttp.StatusRequestEntityTooLarge, "body too large"
	}
	if hasPrefix(string(ctx.Path()), "/wxpay/v2/") { // APIv2 notifications: WeChat's XML
		ctx.SetStatusCode(status)
		ctx.SetContentType("text/xml; charset=utf-8")
		ctx.SetBody(wxpay.V2NotifyFailReply(msg))
		return
	}
	if hasPrefix(string(ctx.Path()), "/wxpay/") {
		ctx.SetStatusCode(status)
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"code":"FAIL","message":"` + msg + `"}`)
		return
	}
	code := codeBadRequest
	if status == fasthttp.StatusRequestEntityTooLarge {
		code = codeTooLarge
	}
	s.fail(ctx, answer{status, code, msg, 0})
}

// SetReady marks the server ready (after recovery); /readyz reflects it.
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// Handler returns the request handler (for in-memory tests).
func (s *Server) Handler() fasthttp.RequestHandler { return s.srv.Handler }

// Run serves the connections ln accepts until Close; it returns nil then,
// and at once when Close came first.
func (s *Server) Run(ln net.Listener) error {
	s.lnMu.Lock()
	if s.closed {
		s.lnMu.Unlock()
		return ln.Close()
	}
	s.ln = ln
	s.lnMu.Unlock()
	err := s.srv.Serve(ln)
	if s.draining.Load() {
		return nil // the listener closed under Serve
	}
	return err
}

// Close stops accepting, lets in-flight requests finish (up to ctx's
// deadline) and closes idle connections.
func (s *Server) Close(ctx context.Context) error {
	s.draining.Store(true)
	s.ready.Store(false)
	s.lnMu.Lock()
	s.closed = true
	ln := s.ln
	s.lnMu.Unlock()
	if ln != nil {
		// Between Run's hand-over and fasthttp's taking the listener, its
		// Shutdown would miss it: closing it ends that Serve too.
		_ = ln.Close()
	}
	if err := s.srv.ShutdownWithContext(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// route names label metrics; unknown paths share one label.
const (
	routeLogin              = "login"
	routeOrders             = "orders.create"
	routeOrderGet           = "orders.get"
	routeOrderPay           = "orders.payment"
	routeSKU                = "admin.sku"
	routeAdminOrder         = "admin.order"
	routeAdminRefund        = "admin.refund"
	routeAdminApplyAbnormal = "admin.refund.apply_abnormal"
	routeNotifyV3           = "notify.v3"
	routeNotifyV2           = "notify.v2"
	routeRefundV2           = "notify.v2.refund"
	routeHealth             = "health"
	routeMetrics            = "metrics"
	routeUnknown            = "unknown"
	routeReconciliations    = "admin.reconciliations"
	routeReconcileResolve   = "admin.reconciliations.resolve"
)

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	route := s.cors(ctx, s.dispatch)
	s.metrics.observe(route, ctx.Response.StatusCode(), time.Since(start))
}

func (s *Server) dispatch(ctx *fasthttp.RequestCtx) string {
	path := string(ctx.Path()) // one small copy; routing compares strings
	method := string(ctx.Method())
	switch {
	case path == "/wxpay/v3/notify":
		return s.only(ctx, method, "POST", routeNotifyV3, s.notifyV3)
	case path == "/wxpay/v2/notify":
		return s.only(ctx, method, "POST", routeNotifyV2, s.notifyV2)
	case path == "/wxpay/v2/refund-notify":
		return s.only(ctx, method, "POST", routeRefundV2, s.refundNotifyV2)
	case path == "/api/v1/orders":
		switch method {
		case "POST":
			s.createOrder(ctx)
			return routeOrders
		case "GET":
			s.listOwnOrders(ctx)
			return routeOrdersList
		}
		ctx.Response.Header.Set("Allow", "GET, POST")
		s.fail(ctx, answer{fasthttp.StatusMethodNotAllowed, codeMethod, "use GET or POST", 0})
		return routeOrders
	case path == "/api/v1/checkouts" && len(s.cfg.ShopToken) > 0: // else: no such route
		return s.only(ctx, method, "POST", routeCheckout, func(c *fasthttp.RequestCtx) { s.shop(c, s.checkout) })
	case path == "/admin/v1/orders":
		return s.only(ctx, method, "GET", routeAdminOrders, func(c *fasthttp.RequestCtx) { s.admin(c, s.listOrders) })
	case path == "/api/v1/login":
		return s.only(ctx, method, "POST", routeLogin, s.login)
	case hasPrefix(path, "/api/v1/orders/"):
		rest := path[len("/api/v1/orders/"):]
		if otn, ok := cutSuffix(rest, "/payment"); ok {
			return s.only(ctx, method, "POST", routeOrderPay, func(c *fasthttp.RequestCtx) { s.payment(c, otn) })
		}
		return s.only(ctx, method, "GET", routeOrderGet, func(c *fasthttp.RequestCtx) { s.getOrder(c, rest) })
	case hasPrefix(path, webhooksPath):
		return s.webhooks(ctx, method, path)
	case hasPrefix(path, "/admin/v1/skus/"):
		sku := path[len("/admin/v1/skus/"):]
		switch method {
		case "PUT":
			s.admin(ctx, func(c *fasthttp.RequestCtx) { s.putSKU(c, sku) })
		case "GET":
			s.admin(ctx, func(c *fasthttp.RequestCtx) { s.getSKU(c, sku) })
		default:
			ctx.Response.Header.Set("Allow", "GET, PUT")
			s.fail(ctx, answer{fasthttp.StatusMethodNotAllowed, codeMethod, "use GET or PUT", 0})
		}
		return routeSKU
	case hasPrefix(path, "/admin/v1/orders/"):
		rest := path[len("/admin/v1/orders/"):]
		if r, ok := cutSuffix(rest, "/apply-abnormal"); ok {
			if otn, no, ok := strings.Cut(r, "/refunds/"); ok {
				return s.only(ctx, method, "POST", routeAdminApplyAbnormal, func(c *fasthttp.RequestCtx) {
					s.admin(c, func(c *fasthttp.RequestCtx) { s.applyAbnormal(c, otn, no) })
				})
			}
		}
		if otn, ok := cutSuffix(rest, "/refunds"); ok {
			return s.only(ctx, method, "POST", routeAdminRefund, func(c *fasthttp.RequestCtx) {
				s.admin(c, func(c *fasthttp.RequestCtx) { s.refund(c, otn) })
			})
		}
		return s.only(ctx, method, "GET", routeAdminOrder, func(c *fasthttp.RequestCtx) {
			s.admin(c, func(c *fasthttp.RequestCtx) { s.adminOrder(c, rest) })
		})
	case path == "/admin/v1/reconciliations":
		return s.only(ctx, method, "POST", routeReconciliations, func(c *fasthttp.RequestCtx) {
			s.admin(c, s.withReconciler(s.requestReconciliation))
		})
	case hasPrefix(path, "/admin/v1/reconciliations/"):
		date := path[len("/admin/v1/reconciliations/"):]
		if r, ok := cutSuffix(date, "/resolve"); ok {
			if date, key, ok := strings.Cut(r, "/discrepancies/"); ok {
				return s.only(ctx, method, "POST", routeReconcileResolve, func(c *fasthttp.RequestCtx) {
					s.admin(c, s.withReconciler(func(c *fasthttp.RequestCtx) { s.resolveDiscrepancy(c, date, key) }))
				})
			}
		}
		return s.only(ctx, method, "GET", routeReconciliations, func(c *fasthttp.RequestCtx) {
			s.admin(c, s.withReconciler(func(c *fasthttp.RequestCtx) { s.reconciliation(c, date) }))
		})
	case path == "/healthz":
		return s.operations(ctx, method, routeHealth, func(c *fasthttp.RequestCtx) {
			c.SetStatusCode(fasthttp.StatusOK)
			c.SetBodyString("ok\n")
		})
	case path == "/readyz":
		return s.operations(ctx, method, routeHealth, func(c *fasthttp.RequestCtx) {
			if s.ready.Load() && !s.draining.Load() {
				c.SetStatusCode(fasthttp.StatusOK)
				c.SetBodyString("ready\n")
			} else {
				c.SetStatusCode(fasthttp.StatusServiceUnavailable)
				c.SetBodyString("not ready\n")
			}
		})
	case path == "/metrics":
		return s.operations(ctx, method, routeMetrics, s.metrics.serve)
	case path == "/openapi.json":
		return s.only(ctx, method, "GET", routeOpenAPI, s.serveOpenAPI)
	}
	s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such route", 0})
	return routeUnknown
}

func (s *Server) only(ctx *fasthttp.RequestCtx, method, want, route string, h fasthttp.RequestHandler) string {
	if method != want {
		ctx.Response.Header.Set("Allow", want)
		s.fail(ctx, answer{fasthttp.StatusMethodNotAllowed, codeMethod, "use " + want, 0})
		return route
	}
	h(ctx)
	return route
}

// operations serves a probe or the metrics: GET, or HEAD, which fasthttp
// answers with the same status and headers and no body (wget --spider,
// some load balancers' checks).
func (s *Server) operations(ctx *fasthttp.RequestCtx, method, route string, h fasthttp.RequestHandler) string {
	if method != fasthttp.MethodGet && method != fasthttp.MethodHead {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		s.fail(ctx, answer{fasthttp.StatusMethodNotAllowed, codeMethod, "use GET or HEAD", 0})
		return route
	}
	h(ctx)
	return route
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

func cutSuffix(s, suf string) (string, bool) {
	if len(s) >= len(suf) && s[len(s)-len(suf):] == suf {
		return s[:len(s)-len(suf)], true
	}
	return s, false
}

// fail writes the API's JSON error body.
func (s *Server) fail(ctx *fasthttp.RequestCtx, a answer) {
	ctx.SetStatusCode(a.status)
	ctx.SetContentType("application/json")
	if a.retryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(a.retryAfter))
	}
	b, _ := json.Marshal(struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{Error: struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{a.code, a.message}})
	ctx.SetBody(b)
}

func (s *Server) failErr(ctx *fasthttp.RequestCtx, err error) {
	a := apiAnswer(err)
	if a.status >= 500 {
		s.cfg.Logger.Warn("request failed", "path", string(ctx.Path()), "status", a.status, "err", err)
	}
	s.fail(ctx, a)
}

func (s *Server) json(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.failErr(ctx, fmt.Errorf("ingress: encode: %w", err))
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// decode parses a JSON body strictly into v.
func decode(ctx *fasthttp.RequestCtx, v any) error {
	body := ctx.PostBody()
	if len(body) == 0 {
		return errors.New("empty body")
	}
	dec := json.NewDecoder(bytesReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func (s *Server) badRequest(ctx *fasthttp.RequestCtx, msg string) {
	s.fail(ctx, answer{fasthttp.StatusBadRequest, codeBadRequest, msg, 0})
}

// buyer returns the session's openid or answers 401.
func (s *Server) buyer(ctx *fasthttp.RequestCtx) (string, bool) {
	openid, err := s.sess.check(bearer(ctx))
	if err != nil {
		s.failErr(ctx, err)
		return "", false
	}
	return openid, true
}

func bearer(ctx *fasthttp.RequestCtx) []byte {
	h := ctx.Request.Header.Peek("Authorization")
	const p = "Bearer "
	if len(h) > len(p) && string(h[:len(p)]) == p {
		return h[len(p):]
	}
	return nil
}

func (s *Server) admin(ctx *fasthttp.RequestCtx, h fasthttp.RequestHandler) {
	if subtle.ConstantTimeCompare(bearer(ctx), s.cfg.AdminToken) != 1 {
		s.failErr(ctx, errAdmin)
		return
	}
	h(ctx)
}

// orderView is the buyer's view of an order.
type orderView struct {
	OutTradeNo    string           `json:"out_trade_no"`
	State         store.State      `json:"state"`
	Amount        wxpay.Amount     `json:"amount"`
	SKU           string           `json:"sku"`
	Quantity      int64            `json:"quantity"`
	Description   string           `json:"description"`
	TransactionID string           `json:"transaction_id,omitempty"`
	Refunded      int64            `json:"refunded,omitempty"`
	CreatedAt     string           `json:"created_at"`
	ExpiresAt     string           `json:"expires_at"`
	PaidAt        string           `json:"paid_at,omitempty"`
	Payment       *wxpay.PayParams `json:"payment,omitempty"`
}

func viewOf(o *store.Order) orderView {
	v := orderView{
		OutTradeNo: o.OutTradeNo, State: o.State, Amount: wxpay.Amount{Total: o.Total, Currency: o.Currency},
		SKU: o.SKU, Quantity: o.Quantity, Description: o.Description, TransactionID: o.TransactionID,
		Refunded: o.RefundedFen, CreatedAt: rfc3339(o.CreatedMs), ExpiresAt: rfc3339(o.ExpiresMs),
	}
	if o.PaidMs > 0 {
		v.PaidAt = rfc3339(o.PaidMs)
	}
	return v
}

var cst = time.FixedZone("CST", 8*3600)

func rfc3339(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).In(cst).Format(time.RFC3339)
}
