package sim

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/wxpay"
)

// maxBody bounds request bodies (WeChat's JSON requests are under 8 KiB).
const maxBody = 64 << 10

// Server is a running simulator: WeChat Pay APIv3 and APIv2, the
// jscode2session login endpoint, and the /sim/ control API, over fasthttp.
// Build it with New, start it with Start (or Run), stop it with Close. All
// methods are safe for concurrent use.
type Server struct {
	cfg   Config
	id    *Identity
	clock Clock
	log   *slog.Logger

	merchantPub wxpay.PublicKey  // verifies merchant requests
	wechatKey   wxpay.PrivateKey // public-key mode signer
	platformKey wxpay.PrivateKey // certificate mode signer
	aead        *wxpay.AEAD      // APIv3 key: notifications and certificates
	certsBody   []byte           // the /v3/certificates answer (certificate and mixed modes)

	store    *store
	logins   *loginStore
	notifier *notifier
	limiter  *limiter
	v2       *v2State
	bills    *billStore
	stats    stats

	rngMu sync.Mutex
	rng   *rand.Rand

	faults   atomic.Pointer[FaultSpec]      // --faults, replaced by PUT /sim/v1/faults
	outcomes atomic.Pointer[RefundOutcomes] // --refund-outcomes, likewise
	quit     chan struct{}                  // closed when Close starts: cuts slow waits short

	reqSeq  atomic.Uint64
	reqBase string

	srv       *fasthttp.Server
	ln        net.Listener
	started   atomic.Bool
	closeOnce sync.Once
	closeErr  error
	serveDone chan struct{} // closed when the fasthttp Serve loop returns
	serveErr  error         // its error; read after serveDone
	tlsLn     net.Listener  // the APIv2 TLS listener (v2tls.go); nil when off
	tlsDone   chan struct{} // closed when its Serve loop returns
}

// New validates cfg, loads (or takes) the identity and prepares the keys.
// It does not listen yet: call Start or Run.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	id := cfg.Identity
	if id == nil {
		var err error
		if id, err = LoadIdentity(cfg.KeysDir); err != nil {
			return nil, err
		}
	} else if err := id.check(); err != nil {
		return nil, err
	}
	b := cfg.backend()
	s := &Server{cfg: cfg, id: id, clock: cfg.clock(), log: cfg.logger(), serveDone: make(chan struct{}),
		quit: make(chan struct{})}
	// Validate parsed both specs already; these cannot fail.
	if err := s.SetFaults(cfg.Faults); err != nil {
		return nil, fmt.Errorf("%w: --faults: %w", ErrConfig, err)
	}
	if err := s.SetRefundOutcomes(cfg.RefundOutcomes); err != nil {
		return nil, fmt.Errorf("%w: --refund-outcomes: %w", ErrConfig, err)
	}
	var err error
	mpub, _ := id.MerchantCert.PublicKey.(*rsa.PublicKey) // ParseCertificatePEM checked it is RSA
	if s.merchantPub, err = b.NewPublicKey(mpub); err != nil {
		return nil, fmt.Errorf("%w: merchant key: %w", ErrKeys, err)
	}
	if s.wechatKey, err = b.NewPrivateKey(id.WechatPayKey); err != nil {
		return nil, fmt.Errorf("%w: WeChat Pay key: %w", ErrKeys, err)
	}
	if s.platformKey, err = b.NewPrivateKey(id.PlatformKey); err != nil {
		return nil, fmt.Errorf("%w: platform key: %w", ErrKeys, err)
	}
	if s.aead, err = wxpay.NewAEAD(id.APIv3Key); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeys, err)
	}
	if s.certsBody, err = s.certificatesBody(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s.reqBase = fmt.Sprintf("%08X", uint32(seed))
	s.store = newStore(cfg.maxOrders())
	s.logins = newLoginStore(cfg.maxLoginCodes())
	s.limiter = newLimiter(cfg.rateLimit())
	s.bills = newBillStore()
	if s.v2, err = newV2State(id); err != nil {
		return nil, err
	}
	s.notifier = newNotifier(s)
	s.srv = &fasthttp.Server{
		Handler:                       s.handle,
		Name:                          "wxpaysim",
		MaxRequestBodySize:            maxBody,
		ReadTimeout:                   30 * time.Second,
		WriteTimeout:                  30 * time.Second,
		IdleTimeout:                   90 * time.Second,
		DisableHeaderNamesNormalizing: false,
		NoDefaultDate:                 false,
		CloseOnShutdown:               true,
	}
	return s, nil
}

// Identity returns the identity the simulator serves (read-only).
func (s *Server) Identity() *Identity { return s.id }

// Handler returns the HTTP handler, for in-memory listeners and benchmarks.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Start listens on Config.Listen and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.listen())
	if err != nil {
		return fmt.Errorf("sim: listen: %w", err)
	}
	return s.Serve(ln)
}

// Serve serves on ln in the background; the server owns ln from now on.
func (s *Server) Serve(ln net.Listener) error {
	if !s.started.CompareAndSwap(false, true) {
		ln.Close()
		return fmt.Errorf("%w: already started", ErrClosed)
	}
	s.ln = ln
	if err := s.startTLS(); err != nil {
		ln.Close()
		close(s.serveDone)
		return err
	}
	s.notifier.start()
	go func() { // tracked by serveDone; Close waits for it
		s.serveErr = s.srv.Serve(ln)
		close(s.serveDone)
	}()
	s.log.Info("wxpaysim serving", "addr", ln.Addr().String(), "mchid", s.id.MchID, "appid", s.id.AppID,
		"signing_mode", s.cfg.signingMode(), "backend", s.cfg.backend().Name())
	return nil
}

// Addr returns the listening address (after Start), else "".
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL returns "http://" + Addr().
func (s *Server) URL() string { return "http://" + s.Addr() }

// Run starts the server and blocks until ctx is done, then shuts down
// gracefully, allowing shutdownTimeout for it.
func (s *Server) Run(ctx context.Context, shutdownTimeout time.Duration) error {
	if err := s.Start(); err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case <-s.serveDone: // the listener failed
		if s.serveErr != nil {
			serveErr = fmt.Errorf("sim: serve: %w", s.serveErr)
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return errors.Join(serveErr, s.Close(cctx))
}

// Close shuts down gracefully: it cuts slow-fault waits short, stops the
// listener and waits for open requests (fasthttp ShutdownWithContext), then
// stops the delivery scheduler and waits for in-flight deliveries, all
// within ctx's deadline. Scheduled retries are abandoned (the state is in
// memory). Close is idempotent.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		var errs []error
		// 1. Wake the requests waiting out a slow fault: they answer now.
		close(s.quit)
		// 2. Stop accepting and finish open requests.
		if s.started.Load() {
			if err := s.srv.ShutdownWithContext(ctx); err != nil {
				errs = append(errs, fmt.Errorf("sim: http shutdown: %w", err))
			}
			// Shutdown closes only listeners Serve has registered: close ours
			// too, in case Close raced with the Serve goroutine's start.
			s.ln.Close()
			select {
			case <-s.serveDone:
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("sim: serve loop still running: %w", ctx.Err()))
			}
			if err := s.closeTLS(ctx.Done()); err != nil {
				errs = append(errs, err)
			}
		}
		// 3. Stop the scheduler and wait for deliveries in flight.
		if err := s.notifier.close(ctx); err != nil {
			errs = append(errs, err)
		}
		s.closeErr = errors.Join(errs...)
		s.log.Info("wxpaysim stopped", "err", s.closeErr)
	})
	return s.closeErr
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := s.stats.snapshot()
	st.Live = LiveStats{Orders: s.store.len(), Scheduled: s.notifier.len(), LoginCodes: s.logins.len(),
		UnknownOrders: int(s.store.ghostCount.Load())}
	return st
}

// randFloat draws from the seeded generator.
func (s *Server) randFloat() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64()
}

// chance reports true with probability p.
func (s *Server) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	return s.randFloat() < p
}

// answerKey picks the key for an API answer. hint is the request's
// Wechatpay-Serial: in mixed mode, as during WeChat's migration, an answer is
// signed with the WeChat Pay public key only when the request names its id,
// and with the platform certificate otherwise.
func (s *Server) answerKey(hint string) (wxpay.PrivateKey, string) {
	switch s.cfg.signingMode() {
	case ModeCertificate:
		return s.platformKey, s.id.PlatformSerial
	case ModeMixed:
		if hint == s.id.PublicKeyID {
			return s.wechatKey, s.id.PublicKeyID
		}
		return s.platformKey, s.id.PlatformSerial
	default:
		return s.wechatKey, s.id.PublicKeyID
	}
}

// notifyKey picks the key for a notification: in mixed mode the public key
// for a share MixedPublicKeyShare of them (WeChat's gradual switch-over),
// the platform certificate for the rest.
func (s *Server) notifyKey() (wxpay.PrivateKey, string) {
	if s.cfg.signingMode() != ModeMixed {
		return s.answerKey("")
	}
	if s.chance(s.cfg.mixedShare()) {
		return s.wechatKey, s.id.PublicKeyID
	}
	return s.platformKey, s.id.PlatformSerial
}

func (s *Server) requestID() string {
	n := s.reqSeq.Add(1)
	var b [40]byte
	out := append(b[:0], s.reqBase...)
	out = append(out, "0A"...)
	out = strconv.AppendUint(out, n, 16)
	return string(bytes.ToUpper(out))
}

// handle routes a request.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch {
	case bytes.HasPrefix(path, []byte("/sim/")):
		s.handleSim(ctx, path)
	case string(path) == "/v3/pay/transactions/jsapi":
		s.v3(ctx, epPrepay, fasthttp.MethodPost, s.prepay)
	case bytes.HasPrefix(path, []byte(pathQueryPrefix)):
		if bytes.HasSuffix(path, []byte("/close")) {
			s.v3(ctx, epClose, fasthttp.MethodPost, s.closeOrder)
		} else {
			s.v3(ctx, epQuery, fasthttp.MethodGet, s.query)
		}
	case bytes.HasPrefix(path, []byte(pathQueryByIDPrefix)):
		s.v3(ctx, epQuery, fasthttp.MethodGet, s.queryByID)
	case string(path) == "/v3/refund/domestic/refunds":
		s.v3(ctx, epRefund, fasthttp.MethodPost, s.refund)
	case bytes.HasPrefix(path, []byte(pathRefundPrefix)) && bytes.HasSuffix(path, []byte(pathAbnormalSuffix)):
		s.v3(ctx, epAbnormalRefund, fasthttp.MethodPost, s.applyAbnormal)
	case bytes.HasPrefix(path, []byte(pathRefundPrefix)):
		s.v3(ctx, epRefundQuery, fasthttp.MethodGet, s.refundQuery)
	case string(path) == "/v3/certificates":
		s.v3(ctx, epCertificates, fasthttp.MethodGet, s.certificates)
	case string(path) == pathTradeBill:
		s.v3(ctx, epBill, fasthttp.MethodGet, s.tradeBill)
	case string(path) == pathFundFlowBill:
		s.v3(ctx, epBill, fasthttp.MethodGet, s.fundFlowBill)
	case string(path) == pathBillDownload:
		s.billDownload(ctx)
	case string(path) == "/sns/jscode2session":
		s.jscode2session(ctx)
	case bytes.HasPrefix(path, []byte("/v3/")) || bytes.HasPrefix(path, []byte("/sns/")):
		s.stats.requests[epOther].Add(1)
		s.answerError(ctx, errNoRoute, "")
	default: // APIv2's surface answers in its own XML (v2orders.go)
		s.v2Route(ctx, path)
	}
}

// v3req is an authenticated APIv3 request.
type v3req struct {
	ctx   *fasthttp.RequestCtx
	mchID string
	body  []byte
	now   time.Time
}

// v3handler returns the status and body of a successful answer, or an error.
type v3handler func(r *v3req) (int, []byte, *apiError)

// v3 authenticates, draws a fault, runs h, then signs and writes the answer
// (or drops it).
func (s *Server) v3(ctx *fasthttp.RequestCtx, ep endpoint, method string, h v3handler) {
	s.stats.requests[ep].Add(1)
	hint := string(ctx.Request.Header.Peek(wxpay.HeaderSerial))
	if string(ctx.Method()) != method {
		s.finish(ctx, 0, nil, errMethod, hint)
		return
	}
	r := &v3req{ctx: ctx, body: ctx.PostBody(), now: s.clock.Now()}
	if e := s.authenticate(r); e != nil {
		s.finish(ctx, 0, nil, e, hint)
		return
	}
	f := s.drawFault(faultPoints[ep])
	if f.noEffect() {
		s.recordFaultedCall(r, ep)
		s.v3Fault(ctx, f, hint)
		return
	}
	status, body, e := h(r)
	if f != afNone {
		s.v3Faulted(ctx, f, status, body, e, hint)
		return
	}
	s.finish(ctx, status, body, e, hint)
}

// recordFaultedCall counts, on its order's ledger, a call answered by a
// fault before its handler ran: it names the order as the handler would.
func (s *Server) recordFaultedCall(r *v3req, ep endpoint) {
	st := s.store
	var otn string
	var kind callKind
	switch ep {
	case epPrepay:
		var b struct {
			MchID      string `json:"mchid"`
			OutTradeNo string `json:"out_trade_no"`
		}
		if json.Unmarshal(r.body, &b) != nil || b.MchID != r.mchID {
			return
		}
		otn, kind = b.OutTradeNo, ckPrepay
	case epQuery:
		kind = ckQuery
		if bytes.HasPrefix(r.ctx.Path(), []byte(pathQueryByIDPrefix)) {
			otn = st.outTradeNoOfTxn(r.mchID, pathParam(r.ctx, pathQueryByIDPrefix, ""))
		} else if string(r.ctx.QueryArgs().Peek("mchid")) == r.mchID {
			otn = pathParam(r.ctx, pathQueryPrefix, "")
		}
	case epClose:
		otn, kind = pathParam(r.ctx, pathQueryPrefix, "/close"), ckClose
	case epRefund:
		var b struct {
			TransactionID string `json:"transaction_id"`
			OutTradeNo    string `json:"out_trade_no"`
		}
		if json.Unmarshal(r.body, &b) != nil {
			return
		}
		otn, kind = b.OutTradeNo, ckRefund
		if b.TransactionID != "" {
			otn = st.outTradeNoOfTxn(r.mchID, b.TransactionID)
		}
	case epRefundQuery:
		otn, kind = st.outTradeNoOfRefund(r.mchID, pathParam(r.ctx, pathRefundPrefix, "")), ckRefundQuery
	}
	if wxpay.ValidOutTradeNo(otn) {
		st.recordCall(r.mchID, otn, kind, r.now)
	}
}

// outTradeNoOfTxn returns the out_trade_no of mchID's transaction txn, or "".
func (st *store) outTradeNoOfTxn(mchID, txn string) string {
	st.idxMu.RLock()
	defer st.idxMu.RUnlock()
	if o := st.byTxn[txn]; o != nil && o.mchID == mchID {
		return o.outTradeNo // immutable
	}
	return ""
}

// outTradeNoOfRefund returns the out_trade_no of mchID's refund
// outRefundNo, or "".
func (st *store) outTradeNoOfRefund(mchID, outRefundNo string) string {
	st.idxMu.RLock()
	defer st.idxMu.RUnlock()
	if rf := st.refunds[orderKey(mchID, outRefundNo)]; rf != nil {
		return rf.o.outTradeNo // immutable
	}
	return ""
}

// authenticate checks the Authorization header as WeChat does.
func (s *Server) authenticate(r *v3req) *apiError {
	a, err := wxpay.ParseAuthorization(string(r.ctx.Request.Header.Peek(wxpay.HeaderAuthorization)))
	if err != nil {
		return errSignature("Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》")
	}
	if a.MchID != s.id.MchID {
		// UNCONFIRMED: WeChat's answer for an unknown mchid in Authorization.
		return errSignature("Http头Authorization中的mchid不存在或未开通APIv3")
	}
	if a.SerialNo != s.id.MerchantSerial {
		return errSignature("商户证书序列号有误。请使用签名私钥匹配的证书序列号")
	}
	err = wxpay.VerifyRequest(a, s.merchantPub, string(r.ctx.Method()), signedURL(r.ctx.RequestURI()), r.body,
		r.now, DefaultRequestWindow)
	switch {
	case err == nil:
		r.mchID = a.MchID
		return nil
	case errors.Is(err, wxpay.ErrExpired):
		return errExpiredSign
	default:
		return errSignature("错误的签名，验签失败")
	}
}

// signedURL returns the request target as the merchant signed it: the path
// and query exactly as sent. An absolute-form target (through a proxy) is
// cut to its path.
func signedURL(uri []byte) string {
	if len(uri) > 0 && uri[0] != '/' {
		if i := bytes.Index(uri, []byte("://")); i >= 0 {
			rest := uri[i+3:]
			if j := bytes.IndexByte(rest, '/'); j >= 0 {
				return string(rest[j:])
			}
			return "/"
		}
	}
	return string(uri)
}

// finish applies latency and drop, then signs and writes the answer.
func (s *Server) finish(ctx *fasthttp.RequestCtx, status int, body []byte, e *apiError, hint string) {
	if e != nil {
		status, body = e.status, e.body()
		s.stats.reject(e.code)
	}
	s.latency()
	if s.chance(s.cfg.DropRate) {
		s.drop(ctx)
		return
	}
	s.writeSigned(ctx, status, body, hint)
}

// latency waits Config.Latency (WeChat API answers only).
func (s *Server) latency() {
	if s.cfg.Latency > 0 {
		time.Sleep(s.cfg.Latency)
	}
}

// drop closes the connection without an answer (--drop-rate): the request
// was processed but the merchant never learns the result.
func (s *Server) drop(ctx *fasthttp.RequestCtx) {
	s.stats.dropped.Add(1)
	cut(ctx)
}

// cut closes the connection without writing anything.
func cut(ctx *fasthttp.RequestCtx) {
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {}) // fasthttp closes c when this returns
}

// writeSigned writes an APIv3 answer with WeChat's signature headers. Every
// answer, the bodiless 204 included, says Content-Type: application/json;
// charset=utf-8 as WeChat's do (WxJava refuses an answer without it).
func (s *Server) writeSigned(ctx *fasthttp.RequestCtx, status int, body []byte, hint string) {
	key, serial := s.answerKey(hint)
	ts := strconv.FormatInt(s.clock.Now().Unix(), 10)
	nonce := wxpay.NewNonce()
	sig, err := wxpay.SignResponse(key, ts, nonce, body)
	if err != nil {
		s.log.Error("sign answer", "err", err)
		status, body = 500, errOverloaded.body()
	}
	h := &ctx.Response.Header
	h.Set(wxpay.HeaderTimestamp, ts)
	h.Set(wxpay.HeaderNonce, nonce)
	h.Set(wxpay.HeaderSignature, sig)
	h.Set(wxpay.HeaderSerial, serial)
	h.Set(wxpay.HeaderSignatureType, wxpay.SignatureType)
	h.Set(wxpay.HeaderRequestID, s.requestID())
	h.SetContentType("application/json; charset=utf-8")
	ctx.SetStatusCode(status)
	if status == fasthttp.StatusNoContent {
		return
	}
	ctx.SetBody(body)
}

// answerError writes an unsigned-path error (routing) through finish.
func (s *Server) answerError(ctx *fasthttp.RequestCtx, e *apiError, hint string) {
	s.finish(ctx, 0, nil, e, hint)
}

// writeJSON writes a /sim/ answer (unsigned, no latency, never dropped).
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = 500, []byte(`{"code":"SYSTEM_ERROR","message":"encode"}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(b)
}

// simError is the body of a /sim/ error answer.
type simError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// handleSim serves the control API.
func (s *Server) handleSim(ctx *fasthttp.RequestCtx, path []byte) {
	m := string(ctx.Method())
	switch p := string(path); {
	case p == "/sim/v1/pay" && m == fasthttp.MethodPost:
		s.stats.requests[epSimPay].Add(1)
		s.simPay(ctx)
	case p == "/sim/v1/stats" && m == fasthttp.MethodGet:
		writeJSON(ctx, 200, s.Stats())
	case p == "/sim/v1/faults" && (m == fasthttp.MethodGet || m == fasthttp.MethodPut):
		s.simFaults(ctx)
	case p == "/sim/v1/ledger" && m == fasthttp.MethodGet:
		s.simLedger(ctx)
	case p == "/sim/v1/login" && m == fasthttp.MethodPost:
		s.simLogin(ctx)
	case p == "/sim/v1/requestPayment" && m == fasthttp.MethodPost:
		s.simRequestPayment(ctx)
	case bytes.HasPrefix(path, []byte("/sim/miniprogram")):
		s.simMiniProgram(ctx, p)
	case (p == pathSimBillsSynthetic || p == pathSimBillsGenerate) && m == fasthttp.MethodPost:
		s.simBills(ctx, p == pathSimBillsSynthetic)
	case len(p) > len(pathSimOrders) && p[:len(pathSimOrders)] == pathSimOrders && m == fasthttp.MethodGet:
		s.simOrder(ctx, p[len(pathSimOrders):])
	case p == "/sim/v1/health":
		writeJSON(ctx, 200, map[string]string{"status": "ok"})
	default:
		writeJSON(ctx, 404, simError{"NOT_FOUND", "no such control endpoint"})
	}
}

const pathSimOrders = "/sim/v1/orders/"
