package reconcile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/reconcile"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/bench/sim"
	"github.com/wxpayd/wxpayd/ingress"
	"github.com/wxpayd/wxpayd/ingress/openapitest"
	"github.com/wxpayd/wxpayd/sink/itest"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

// The end-to-end tests run the real pieces in process: wxpaysim plays
// WeChat Pay (ledger, notifications, bills), wxpayd's store, actors and
// HTTP server serve on loopback, and a Reconciler runs over them. The
// notification endpoint sits behind a filter that can lose one order's
// notifications, as a network that never delivers them would.

var (
	identOnce sync.Once
	ident     *sim.Identity
	identErr  error
)

// loadSpec loads wxpayd's OpenAPI description once.
var loadSpec = sync.OnceValues(func() (*openapitest.Spec, error) { return openapitest.Load(ingress.OpenAPI()) })

func identity(t testing.TB) *sim.Identity {
	t.Helper()
	identOnce.Do(func() { ident, identErr = sim.NewIdentity(sim.KeygenOptions{}) })
	if identErr != nil {
		t.Fatal(identErr)
	}
	return ident
}

type stack struct {
	t     testing.TB
	id    *sim.Identity
	sim   *sim.Server
	pay   *client.Client
	st    *store.Store
	sys   *actors.System
	rec   *reconcile.Reconciler
	url   string
	admin string
	aead  *wxpay.AEAD
	lose  atomic.Pointer[string] // the out_trade_no whose notifications are lost
	http  *http.Client
	reg   *prometheus.Registry
}

type stackOpts struct {
	dir        string // the store's directory (default: a new one)
	simCfg     func(*sim.Config)
	loader     reconcile.Loader
	noRun      bool // do not start the Reconciler's daily job
	queryAfter time.Duration
}

func newStack(t testing.TB, o stackOpts) *stack {
	t.Helper()
	id := identity(t)
	scfg := sim.Config{Identity: id, Listen: "127.0.0.1:0", NotifySpeedup: 1000, RateLimit: sim.RateLimitOff,
		BillReadyAfter: sim.BillReadyNow, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if o.simCfg != nil {
		o.simCfg(&scfg)
	}
	sm, err := sim.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sm.Start(); err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, id: id, sim: sm, admin: "admin-token-0123456789", http: &http.Client{Timeout: 30 * time.Second},
		reg: prometheus.NewRegistry()}
	mk, err := wxpay.GoBackend.NewPrivateKey(id.MerchantKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := wxpay.NewSigner(id.MchID, id.MerchantSerial, mk)
	if err != nil {
		t.Fatal(err)
	}
	keys := wxpay.NewKeySet(wxpay.GoBackend)
	if err := keys.AddPublicKey(id.PublicKeyID, &id.WechatPayKey.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := keys.AddCertificate(id.PlatformCert); err != nil {
		t.Fatal(err)
	}
	verifier := wxpay.NewVerifier(keys)
	if s.aead, err = wxpay.NewAEAD(id.APIv3Key); err != nil {
		t.Fatal(err)
	}
	if s.pay, err = client.New(client.Config{BaseURL: sm.URL()}, signer, verifier); err != nil {
		t.Fatal(err)
	}
	login, err := client.NewLoginClient(client.LoginConfig{BaseURL: sm.URL(), AppID: id.AppID, AppSecret: id.AppSecret})
	if err != nil {
		t.Fatal(err)
	}
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
	if s.st, err = store.Open(dir, store.Options{}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + ln.Addr().String()
	// Every exchange with wxpayd is held to its OpenAPI description.
	spec, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	s.http.Transport = spec.Transport(t, s.url, nil)
	if o.queryAfter <= 0 {
		o.queryAfter = time.Hour
	}
	if s.sys, err = actors.New(actors.Config{AppID: id.AppID, MchID: id.MchID, NotifyURL: s.url + "/wxpay/v3/notify",
		Idle: time.Second, QueryAfter: o.queryAfter}, s.st, s.pay); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if s.rec, err = reconcile.New(reconcile.Config{Logger: quiet, Registerer: s.reg}, s.st, s.pay, s.sys, o.loader); err != nil {
		t.Fatal(err)
	}
	srv, err := ingress.New(ingress.Config{
		AppID: id.AppID, MchID: id.MchID, SessionSecret: bytes.Repeat([]byte("s"), 32), AdminToken: []byte(s.admin),
		Logger: quiet,
	}, ingress.Deps{
		Actors: s.sys, Signer: signer, Notify: wxpay.NewNotifyParser(verifier, s.aead), Login: login,
		Registry: s.reg, Gatherer: s.reg, Reconciler: s.rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	front := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/wxpay/v3/notify" && s.lost(ctx.PostBody()) {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable) // never reaches wxpayd
			return
		}
		h(ctx)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	run := func(fn func() error) {
		wg.Add(1)
		go func() { defer wg.Done(); _ = fn() }()
	}
	run(func() error { return s.sys.Run(ctx) })
	run(func() error { return front.Serve(ln) })
	if !o.noRun {
		run(func() error { return s.rec.Run(ctx) })
	}
	srv.SetReady(true)
	// Serving before the stack is handed out: a fasthttp Shutdown that
	// comes before its Serve has begun would leave Serve running forever.
	eventually(t, 10*time.Second, "the front serving", func() bool {
		resp, err := s.http.Get(s.url + "/healthz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	t.Cleanup(func() {
		c, cc := context.WithTimeout(context.Background(), 10*time.Second)
		defer cc()
		_ = s.rec.Close(c)
		_ = front.Shutdown()
		_ = s.sys.Close(c)
		cancel()
		wg.Wait()
		_ = sm.Close(c)
		_ = s.pay.Close(c)
		_ = login.Close(c)
		_ = s.st.Close()
	})
	return s
}

// lost reports a notification about the order whose notifications are lost.
func (s *stack) lost(body []byte) bool {
	otn := s.lose.Load()
	if otn == nil {
		return false
	}
	var n struct {
		Resource struct {
			Ciphertext     string `json:"ciphertext"`
			Nonce          string `json:"nonce"`
			AssociatedData string `json:"associated_data"`
		} `json:"resource"`
	}
	if json.Unmarshal(body, &n) != nil {
		return false
	}
	plain, err := s.aead.Open(nil, n.Resource.Nonce, n.Resource.AssociatedData, n.Resource.Ciphertext)
	return err == nil && bytes.Contains(plain, []byte(`"out_trade_no":"`+*otn+`"`))
}

func (s *stack) do(method, path, token string, body any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// buy logs a buyer in and orders one unit of sku; it returns the order
// number and the prepay_id.
func (s *stack) buy(buyer, sku string) (otn, prepayID, openid string) {
	s.t.Helper()
	st, b := s.do("POST", "/api/v1/login", "", map[string]string{"code": "code-" + buyer + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)})
	if st != 200 {
		s.t.Fatalf("login: %d %s", st, b)
	}
	var l struct {
		Token  string `json:"token"`
		OpenID string `json:"openid"`
	}
	_ = json.Unmarshal(b, &l)
	st, b = s.do("POST", "/api/v1/orders", l.Token, map[string]any{"sku": sku, "quantity": 1})
	if st != 201 {
		s.t.Fatalf("order: %d %s", st, b)
	}
	var o struct {
		OutTradeNo string          `json:"out_trade_no"`
		Payment    wxpay.PayParams `json:"payment"`
	}
	_ = json.Unmarshal(b, &o)
	rep, err := s.sys.Request(context.Background(), &actors.Get{OutTradeNo: o.OutTradeNo})
	if err != nil {
		s.t.Fatal(err)
	}
	return o.OutTradeNo, strings.TrimPrefix(o.Payment.Package, "prepay_id="), rep.Order.OpenID
}

func (s *stack) order(otn string) store.Order {
	s.t.Helper()
	o, ok, err := s.st.GetOrder(otn)
	if err != nil || !ok {
		s.t.Fatalf("order %s: %v %v", otn, ok, err)
	}
	return o
}

// outbox returns the events waiting in the outbox (no relay runs here).
func (s *stack) outbox() []event.Event {
	s.t.Helper()
	es, err := s.st.ReadOutbox(0, 1<<30)
	if err != nil {
		s.t.Fatal(err)
	}
	out := make([]event.Event, 0, len(es))
	for _, e := range es {
		ev, err := event.Decode(e.Value)
		if err != nil {
			s.t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// report reads GET /admin/v1/reconciliations/{date}.
func (s *stack) report(date string) reconcile.Report {
	s.t.Helper()
	st, b := s.do("GET", "/admin/v1/reconciliations/"+date, s.admin, nil)
	if st != 200 {
		s.t.Fatalf("GET reconciliation: %d %s", st, b)
	}
	var r reconcile.Report
	if err := json.Unmarshal(b, &r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// putTea creates the SKU tea: 19.99 yuan, 10 in stock, 2 per buyer.
func (s *stack) putTea() {
	s.t.Helper()
	if st, b := s.do("PUT", "/admin/v1/skus/tea", s.admin, map[string]any{"description": "tea", "price": 1999, "stock": 10, "per_buyer_limit": 2}); st != 200 {
		s.t.Fatalf("put sku: %d %s", st, b)
	}
}

// refundAtWeChat refunds 7.00 yuan of the paid tea order otn at WeChat
// directly, as another system on the merchant account would (wxpayd never
// hears of it), and waits until WeChat has paid it.
func (s *stack) refundAtWeChat(otn, outRefundNo string) {
	s.t.Helper()
	if _, err := s.pay.CreateRefund(context.Background(), &wxpay.RefundRequest{OutTradeNo: otn, OutRefundNo: outRefundNo,
		NotifyURL: "http://127.0.0.1:1/nobody", Amount: wxpay.RefundAmount{Refund: 700, Total: 1999, Currency: "CNY"}}); err != nil {
		s.t.Fatal(err)
	}
	eventually(s.t, 15*time.Second, "the refund "+outRefundNo+" SUCCESS at WeChat", func() bool {
		l := s.sim.Ledger(otn)
		return len(l.Orders) == 1 && len(l.Orders[0].Refunds) == 1 && l.Orders[0].Refunds[0].Status == wxpay.RefundStatusSuccess
	})
}

// gauges reads the registry's gauges by name and label values
// ("wxpayd_reconcile_discrepancies/unknown_order").
func (s *stack) gauges() map[string]float64 {
	s.t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		s.t.Fatal(err)
	}
	gauges := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			gauges[name] = m.GetGauge().GetValue()
		}
	}
	return gauges
}

// reconcileRun asks for date's reconciliation and waits until run n of it is done.
func (s *stack) reconcileRun(date string, n int) reconcile.Report {
	s.t.Helper()
	st, b := s.do("POST", "/admin/v1/reconciliations", s.admin, map[string]string{"date": date})
	if st != 202 {
		s.t.Fatalf("POST reconciliation: %d %s", st, b)
	}
	var r reconcile.Report
	eventually(s.t, 30*time.Second, "reconciliation run "+strconv.Itoa(n)+" of "+date, func() bool {
		r = s.report(date)
		return r.Run.Run == n && r.Status == reconcile.StatusDone
	})
	return r
}

// eventually is the module's one poll (itest.Eventually), every 20 ms.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	itest.Eventually(t, d, 20*time.Millisecond, what, func() (bool, string) { return cond(), "" })
}

func countByType(es []event.Event) map[string]int {
	n := map[string]int{}
	for _, e := range es {
		n[e.Type]++
	}
	return n
}

// A day of orders where WeChat keeps one payment from wxpayd (every
// notification of it lost, every query of it failing) and books one refund
// wxpayd never asked for: the reconciliation finds both, repairs the
// payment once queries work again (PAID, stock committed, one order.paid),
// raises the refund, and reruns never double an event.
func TestReconciliationRepairsALostPaymentAndRaisesAnUnknownRefund(t *testing.T) {
	// The order's own timer stays quiet (its first query is an hour away):
	// otherwise, once queries work again, it races the repair and pays the
	// order with reason "query" first. Its failing queries are tested in
	// actors.
	s := newStack(t, stackOpts{})
	s.putTea()
	const n = 5
	otns := make([]string, n)
	for i := range n {
		var prepay, openid string
		otns[i], prepay, openid = s.buy(fmt.Sprintf("buyer%d", i), "tea")
		if i == 0 {
			// The lost payment: its notifications never arrive and WeChat
			// fails every query of it until run 2.
			s.lose.Store(&otns[0])
			if err := s.sim.SetFaults("query.system_error=1"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.sim.Pay(prepay, openid); err != nil {
			t.Fatal(err)
		}
	}
	for _, otn := range otns[1:] {
		eventually(t, 15*time.Second, otn+" PAID", func() bool { return s.order(otn).State == store.StatePaid })
	}
	// A refund through wxpayd (matched by the bill), and one booked at
	// WeChat directly, which wxpayd never hears of.
	if st, b := s.do("POST", "/admin/v1/orders/"+otns[2]+"/refunds", s.admin, map[string]any{"amount": 500}); st != 200 && st != 202 {
		t.Fatalf("refund: %d %s", st, b)
	}
	s.refundAtWeChat(otns[1], "R-elsewhere-1")
	eventually(t, 15*time.Second, "wxpayd's refund SUCCESS", func() bool { return s.order(otns[2]).State == store.StateRefunded })
	if st := s.order(otns[0]).State; st != store.StatePrepaid {
		t.Fatalf("the lost payment's order is %s, want PREPAID (wxpayd must not have learnt of it)", st)
	}
	date := wxpay.BillDate(time.Now())
	if _, err := s.sim.GenerateBill(date); err != nil {
		t.Fatal(err)
	}
	sold := func() int64 {
		_, b := s.do("GET", "/admin/v1/skus/tea", s.admin, nil)
		var v actors.SKUView
		_ = json.Unmarshal(b, &v)
		return v.Sold
	}
	if got := sold(); got != n-1 {
		t.Fatalf("sold %d before the reconciliation, want %d", got, n-1)
	}

	// Run 1, WeChat's queries still failing: both found, the repair fails.
	r := s.reconcileRun(date, 1)
	t.Logf("run 1: %+v", r.Run)
	byClass := map[string]reconcile.Discrepancy{}
	for _, d := range r.Discrepancies {
		byClass[d.Class] = d
	}
	if len(r.Discrepancies) != 2 || byClass[reconcile.ClassPaymentMissingHere].OutTradeNo != otns[0] ||
		byClass[reconcile.ClassRefundMissingHere].OutRefundNo != "R-elsewhere-1" {
		t.Fatalf("run 1 discrepancies: %+v", r.Discrepancies)
	}
	if d := byClass[reconcile.ClassPaymentMissingHere]; d.Status != reconcile.DiscrepancyOpen || !strings.HasPrefix(d.Repair, "not repaired") {
		t.Fatalf("the repair with failing queries: %+v", d)
	}
	if r.BillRows != n+2 || r.WeChat.Payments != n || r.Ours.Payments != n-1 || r.Ours.Refunds != 1 || r.WeChat.Refunds != 2 ||
		r.WeChat.PaymentFen != n*1999 || r.WeChat.FeeMilliFen == 0 || r.Matched != n-2 {
		t.Fatalf("run 1 counts: %+v", r.Run)
	}
	if s.order(otns[0]).State != store.StatePrepaid {
		t.Fatal("repaired although WeChat's queries fail")
	}

	// Run 2, queries working: the payment is repaired, nothing doubles.
	if err := s.sim.SetFaults(""); err != nil {
		t.Fatal(err)
	}
	r = s.reconcileRun(date, 2)
	t.Logf("run 2: %+v", r.Run)
	for _, d := range r.Discrepancies {
		if d.Class == reconcile.ClassPaymentMissingHere && (d.Status != reconcile.DiscrepancyRepaired || !strings.HasPrefix(d.Repair, "repaired")) {
			t.Fatalf("not repaired: %+v", d)
		}
	}
	o := s.order(otns[0])
	if o.State != store.StatePaid || o.TransactionID == "" {
		t.Fatalf("the lost payment's order after the repair: %+v", o)
	}
	if got := sold(); got != n {
		t.Fatalf("sold %d after the repair, want %d (stock committed once)", got, n)
	}
	hist, err := s.st.History(otns[0])
	if err != nil {
		t.Fatal(err)
	}
	paid := 0
	for _, e := range hist {
		if e.Type == event.OrderPaid {
			paid++
			if e.Reason != "reconcile" || !strings.Contains(e.Alert, "reconciliation") {
				t.Fatalf("order.paid of the repair: %+v", e)
			}
		}
	}
	if paid != 1 {
		t.Fatalf("%d order.paid events for the repaired order, want 1", paid)
	}
	if r.Open[reconcile.ClassRefundMissingHere] != 1 || r.Open[reconcile.ClassPaymentMissingHere] != 0 || r.Repaired != 1 {
		t.Fatalf("run 2 counts: %+v", r.Run)
	}

	// Run 3: the repaired payment is found paid, the refund still raised.
	r = s.reconcileRun(date, 3)
	evs := s.outbox()
	ids := map[string]int{}
	for _, e := range evs {
		ids[e.EventID]++
		if ids[e.EventID] > 1 {
			t.Fatalf("event %s twice in the outbox", e.EventID)
		}
		if e.Type == event.ReconcileDiscrepancy && (e.BillDate != date || e.Seq != 0 || e.Alert == "" || e.State != "") {
			t.Fatalf("discrepancy event %+v", e)
		}
	}
	byType := countByType(evs)
	if byType[event.ReconcileDiscrepancy] != 2 || byType[event.ReconcileCompleted] < 3 {
		t.Fatalf("reconcile events %v", byType)
	}
	if r.Open[reconcile.ClassRefundMissingHere] != 1 || len(r.Discrepancies) != 2 {
		t.Fatalf("run 3: %+v %+v", r.Run, r.Discrepancies)
	}
	// The gauges the alert rule reads.
	gauges := s.gauges()
	day, _ := wxpay.ParseBillDate(date)
	if gauges["wxpayd_reconcile_discrepancies/"+reconcile.ClassRefundMissingHere] != 1 ||
		gauges["wxpayd_reconcile_discrepancies/"+reconcile.ClassPaymentMissingHere] != 0 ||
		gauges["wxpayd_reconcile_last_date"] != float64(day.Unix()) {
		t.Fatalf("gauges %v", gauges)
	}
	// The admin API's refusals.
	if st, _ := s.do("POST", "/admin/v1/reconciliations", s.admin, map[string]string{"date": "2999-01-01"}); st != 400 {
		t.Fatalf("a future date: %d", st)
	}
	if st, _ := s.do("GET", "/admin/v1/reconciliations/"+date, "", nil); st != 401 {
		t.Fatalf("no admin token: %d", st)
	}
	if st, _ := s.do("GET", "/admin/v1/reconciliations/2020-01-01", s.admin, nil); st != 404 {
		t.Fatalf("never reconciled: %d", st)
	}
}

// memLoader is an analytics store in memory: it keeps, per discrepancy
// key, the version with the latest updated_ms, as ClickHouse's
// ReplacingMergeTree(updated_ms) does. fail makes every load fail; hold,
// when set before the Reconciler runs, is called first in each
// LoadDiscrepancies with the number of discrepancies.
type memLoader struct {
	mu   sync.Mutex
	ds   map[string]reconcile.Discrepancy
	fail atomic.Bool
	hold func(n int)
}

var errLoad = errors.New("analytics store down")

func (l *memLoader) LoadBill(ctx context.Context, date string, rows []wxpay.TradeBillRow) error {
	if l.fail.Load() {
		return errLoad
	}
	return nil
}

func (l *memLoader) LoadDiscrepancies(ctx context.Context, date string, ds []reconcile.Discrepancy) error {
	if l.hold != nil {
		l.hold(len(ds))
	}
	if l.fail.Load() {
		return errLoad
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ds == nil {
		l.ds = map[string]reconcile.Discrepancy{}
	}
	for _, d := range ds {
		if old, ok := l.ds[d.Key]; !ok || d.UpdatedMs >= old.UpdatedMs {
			l.ds[d.Key] = d
		}
	}
	return nil
}

func (l *memLoader) get(key string) reconcile.Discrepancy {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ds[key]
}

// A rerun asked for while a finished run is loaded into the analytics
// store again (after a load that failed) is kept: the load writes only its
// outcome, and only while the record is still the run it loaded.
func TestReconciliationAskedForDuringAReloadIsKept(t *testing.T) {
	loader := &memLoader{}
	entered, release := make(chan struct{}), make(chan struct{})
	loader.hold = func(n int) {
		if !loader.fail.Load() {
			close(entered)
			<-release
		}
	}
	s := newStack(t, stackOpts{noRun: true, loader: loader})
	date := wxpay.BillDate(time.Now().AddDate(0, 0, -1))
	if _, err := s.sim.SyntheticBill(date, 10); err != nil {
		t.Fatal(err)
	}
	loader.fail.Store(true)
	if run, err := s.rec.RunDate(context.Background(), date); err != nil || run.Loaded || run.NextMs == 0 {
		t.Fatalf("run 1 with the analytics store down: %+v %v", run, err)
	}
	loader.fail.Store(false)
	reloaded := make(chan error, 1)
	go func() {
		_, err := s.rec.RunDate(context.Background(), date)
		reloaded <- err
	}()
	<-entered
	asked, err := s.rec.Request(date)
	if err != nil || asked.Run != 2 || asked.Status != reconcile.StatusPending {
		t.Fatalf("asked for during the reload: %+v %v", asked, err)
	}
	close(release)
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	rep, err := s.rec.Report(date, 0)
	if err != nil || rep.Run.Run != 2 || rep.Status != reconcile.StatusPending {
		t.Fatalf("the record after the reload: %+v %v, want run 2 pending", rep.Run, err)
	}
}

// errCrash is the crash hook's stop.
var errCrash = errors.New("crash")

// A reconciliation stopped in the middle of matching (as by a crash: the
// hook returns before anything more is written) resumes on the same store
// with a new Reconciler, from its last checkpoint, and publishes each
// discrepancy once.
func TestReconciliationResumesAfterACrashWithoutDuplicateEvents(t *testing.T) {
	dir := t.TempDir()
	date := wxpay.BillDate(time.Now().AddDate(0, 0, -1))
	const rows = 300 // 270 payments and 30 refunds of orders wxpayd does not have
	s := newStack(t, stackOpts{dir: dir, noRun: true})
	if _, err := s.sim.SyntheticBill(date, rows); err != nil {
		t.Fatal(err)
	}
	reconcile.SetCheckpoint(s.rec, 16)
	reconcile.SetMatchHook(s.rec, func(n int) error {
		if n == 100 {
			return errCrash
		}
		return nil
	})
	if _, err := s.rec.RunDate(context.Background(), date); !errors.Is(err, errCrash) {
		t.Fatalf("first attempt: %v, want the crash", err)
	}
	first := countByType(s.outbox())[event.ReconcileDiscrepancy]
	if first < 96 || first > 100*2 {
		t.Fatalf("%d discrepancy events before the crash", first)
	}
	rep, err := s.rec.Report(date, 0)
	if err != nil || rep.Status != reconcile.StatusRunning || rep.Phase != "match" || rep.Cursor == "" {
		t.Fatalf("the run after the crash: %+v %v", rep.Run, err)
	}

	// A new job over the same store (the sim keeps the day's bill).
	rec2, err := reconcile.New(reconcile.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, s.st, s.pay, s.sys, nil)
	if err != nil {
		t.Fatal(err)
	}
	reconcile.SetMatchHook(rec2, func(n int) error {
		if n > rows-96 { // resumed from a checkpoint at or after the 96th order
			t.Errorf("matched %d orders after resuming: it did not resume from the checkpoint", n)
		}
		return nil
	})
	run, err := rec2.RunDate(context.Background(), date)
	if err != nil {
		t.Fatal(err)
	}
	evs := s.outbox()
	ids := map[string]int{}
	for _, e := range evs {
		if ids[e.EventID]++; ids[e.EventID] > 1 {
			t.Fatalf("event %s published twice", e.EventID)
		}
	}
	byType := countByType(evs)
	if byType[event.ReconcileDiscrepancy] != rows || byType[event.ReconcileCompleted] != 1 {
		t.Fatalf("events %v, want %d discrepancies and one completed", byType, rows)
	}
	if run.Status != reconcile.StatusDone || run.BillRows != rows || run.Found != rows || run.Open[reconcile.ClassUnknownOrder] != rows {
		t.Fatalf("the resumed run: %+v", run)
	}
	// The spill is gone once done.
	it, err := s.st.ReconIter([]byte("c/b/" + date + "/"))
	if err != nil {
		t.Fatal(err)
	}
	if it.First() {
		t.Fatal("the spilled bill is still in the store")
	}
	_ = it.Close()
}

// A corrupt download (its digest does not match) is thrown away: the run
// fails, acts on nothing, and the next attempt reconciles the good bill.
func TestReconciliationRefusesACorruptBill(t *testing.T) {
	s := newStack(t, stackOpts{noRun: true, simCfg: func(c *sim.Config) {}})
	date := wxpay.BillDate(time.Now().AddDate(0, 0, -1))
	if _, err := s.sim.SyntheticBill(date, 50); err != nil {
		t.Fatal(err)
	}
	if err := s.sim.SetFaults("bill_download.corrupt=1"); err != nil {
		t.Fatal(err)
	}
	run, err := s.rec.RunDate(context.Background(), date)
	if !errors.Is(err, wxpay.ErrBillDigest) || run.Status != reconcile.StatusFailed {
		t.Fatalf("a corrupt bill: %v, run %+v", err, run)
	}
	if got := countByType(s.outbox())[event.ReconcileDiscrepancy]; got != 0 {
		t.Fatalf("%d discrepancies published from a corrupt bill", got)
	}
	if err := s.sim.SetFaults(""); err != nil {
		t.Fatal(err)
	}
	if run, err = s.rec.RunDate(context.Background(), date); err != nil || run.Status != reconcile.StatusDone || run.Found != 50 {
		t.Fatalf("the next attempt: %v %+v", err, run)
	}
}

// A reconciliation asked for while the run before it is finishing (its
// last write made, its date not yet let go) is a new run, not lost: the
// 202 the admin got is kept.
func TestReconciliationAskedForAsARunFinishesRunsAgain(t *testing.T) {
	s := newStack(t, stackOpts{noRun: true})
	date := wxpay.BillDate(time.Now().AddDate(0, 0, -1))
	if _, err := s.sim.SyntheticBill(date, 10); err != nil {
		t.Fatal(err)
	}
	var asked reconcile.Run
	var askErr error
	reconcile.SetDoneHook(s.rec, func() {
		if asked.Run == 0 {
			asked, askErr = s.rec.Request(date)
		}
	})
	run, err := s.rec.RunDate(context.Background(), date)
	if err != nil || run.Run != 1 || run.Status != reconcile.StatusDone {
		t.Fatalf("run 1: %+v %v", run, err)
	}
	if askErr != nil || asked.Run != 2 || asked.Status != reconcile.StatusPending {
		t.Fatalf("asked for as run 1 finished: %+v %v, want run 2 pending", asked, askErr)
	}
	rep, err := s.rec.Report(date, 0)
	if err != nil || rep.Run.Run != 2 || rep.Status != reconcile.StatusPending {
		t.Fatalf("the record after the request: %+v %v", rep.Run, err)
	}
	run, err = s.rec.RunDate(context.Background(), date)
	if err != nil || run.Run != 2 || run.Status != reconcile.StatusDone {
		t.Fatalf("run 2: %+v %v", run, err)
	}
}

// A request for the date the job has just taken, before its first write,
// answers the run about to be recorded, never an empty one.
func TestReconciliationAskedForAsARunStartsAnswersThatRun(t *testing.T) {
	s := newStack(t, stackOpts{noRun: true})
	date := wxpay.BillDate(time.Now().AddDate(0, 0, -1))
	reconcile.SetActive(s.rec, date)
	run, err := s.rec.Request(date)
	if err != nil || run.Date != date || run.Run != 1 || run.Status != reconcile.StatusRunning {
		t.Fatalf("asked for as the job took the date: %+v %v", run, err)
	}
}
