package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/wxpayd/wxpayd/bench/rig"
	"github.com/wxpayd/wxpayd/sink/itest"
)

const adminToken = "browser-admin-token-0123456789"

// stepTimeout bounds every wait for the page.
const stepTimeout = 30 * time.Second

func TestMiniProgramInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("real binaries and Chromium (~30 s)")
	}
	chrome := findChromium(t)
	root := itest.RepoRoot(t)
	out := outDir(t, root)
	st := startStack(t)
	st.putSKU(t, "tea", "Tea, one unit only", 888, 1)
	st.putSKU(t, "oolong", "Oolong", 1288, 10)
	st.putSKU(t, "puer", "Pu'er", 1688, 10)
	browser := newBrowser(t, chrome)

	var firstRun time.Duration
	t.Run("a buyer logs in, buys, pays and sees PAID", func(t *testing.T) {
		b := st.open(t, browser, "alice", "tea")
		b.do("buy", chromedp.Click(chromedp.CSS("#buy")), chromedp.WaitVisible(chromedp.CSS("#wx-sheet")))
		if amount := b.text("#wx-sheet-amount"); amount != "¥8.88" {
			t.Errorf("pay sheet amount %q, want ¥8.88 (WeChat's view of the prepay)", amount)
		}
		b.shot(out, "1-pay-sheet")
		b.do("pay", chromedp.Click(chromedp.CSS("#wx-sheet-pay")), chromedp.WaitVisible(chromedp.CSS(`#order-state[data-state="PAID"]`)))
		b.shot(out, "1-paid")
		otn := b.text("#order-no")
		if got := st.adminState(t, otn); got != "PAID" {
			t.Errorf("wxpayd has order %s %s", otn, got)
		}
		firstRun = b.flowTime().total
	})

	t.Run("a second buyer sees SOLD_OUT", func(t *testing.T) {
		b := st.open(t, browser, "bob", "tea")
		b.do("buy", chromedp.Click(chromedp.CSS("#buy")), chromedp.WaitVisible(chromedp.CSS(`#result[data-state="sold_out"]`)))
		if title := b.text("#result-title"); title != "Sold out" {
			t.Errorf("title %q", title)
		}
		b.shot(out, "2-sold-out")
	})

	t.Run("a buyer cancels the pay sheet, then pays again from the order page", func(t *testing.T) {
		b := st.open(t, browser, "carol", "oolong")
		b.do("buy", chromedp.Click(chromedp.CSS("#buy")), chromedp.WaitVisible(chromedp.CSS("#wx-sheet")))
		b.do("cancel", chromedp.Click(chromedp.CSS("#wx-sheet-cancel")),
			chromedp.WaitVisible(chromedp.CSS(`#order-result[data-state="cancelled"]`)), chromedp.WaitVisible(chromedp.CSS("#pay-again")))
		otn := b.text("#order-no")
		if s := b.text("#order-state"); s != "PREPAID" {
			t.Errorf("after cancel the order is %s, want PREPAID (kept)", s)
		}
		b.shot(out, "3-cancelled")
		b.do("pay again", chromedp.Click(chromedp.CSS("#pay-again")), chromedp.WaitVisible(chromedp.CSS("#wx-sheet")),
			chromedp.Click(chromedp.CSS("#wx-sheet-pay")), chromedp.WaitVisible(chromedp.CSS(`#order-state[data-state="PAID"]`)))
		if again := b.text("#order-no"); again != otn {
			t.Errorf("paid %s, but the cancelled order was %s", again, otn)
		}
		b.shot(out, "4-paid-again")
		if got := st.adminState(t, otn); got != "PAID" {
			t.Errorf("wxpayd has order %s %s", otn, got)
		}
	})

	t.Run("a tampered paySign is refused by the simulated client", func(t *testing.T) {
		b := st.open(t, browser, "mallory", "oolong")
		tampered := b.tamperPaySign()
		b.do("buy", chromedp.Click(chromedp.CSS("#buy")), chromedp.WaitVisible(chromedp.CSS(`#order-result[data-state="pay_failed"]`)))
		select {
		case <-tampered:
		default:
			t.Fatal("the order's answer was not intercepted: nothing was tampered with")
		}
		const want = "requestPayment:fail 支付验证签名失败"
		if d := b.text("#order-result-detail"); d != want {
			t.Errorf("detail %q, want %q", d, want)
		}
		if b.visible("#wx-sheet") {
			t.Error("the pay sheet was shown for a bad signature")
		}
		b.shot(out, "5-tampered-paysign")
		otn := b.text("#order-no")
		if got := st.adminState(t, otn); got != "PREPAID" {
			t.Errorf("wxpayd has order %s %s, want PREPAID (unpaid)", otn, got)
		}
		if got := st.simState(t, otn); got != "NOTPAY" {
			t.Errorf("WeChat (the simulator) has order %s %s, want NOTPAY", otn, got)
		}
	})

	// login → PAID, three fresh buyers in fresh tabs.
	var total, login, buy []time.Duration
	for i, user := range []string{"dave", "erin", "frank"} {
		t.Run("login to PAID, run "+fmt.Sprint(i+1), func(t *testing.T) {
			b := st.open(t, browser, user, "puer")
			b.do("buy and pay", chromedp.Click(chromedp.CSS("#buy")), chromedp.WaitVisible(chromedp.CSS("#wx-sheet")),
				chromedp.Click(chromedp.CSS("#wx-sheet-pay")), chromedp.WaitVisible(chromedp.CSS(`#order-state[data-state="PAID"]`)))
			ft := b.flowTime()
			total, login, buy = append(total, ft.total), append(login, ft.login), append(buy, ft.buy)
		})
	}
	if len(total) == 3 {
		t.Logf("login → PAID in Chromium: median %v of %v; login median %v, buy → PAID median %v (first buyer of the run: %v)",
			median(total), total, median(login), median(buy), firstRun)
		writeJSON(t, filepath.Join(out, "timings.json"), map[string]any{
			"login_to_paid_ms":        msOf(total),
			"login_to_paid_median_ms": msOf([]time.Duration{median(total)})[0],
			"login_median_ms":         msOf([]time.Duration{median(login)})[0],
			"buy_to_paid_median_ms":   msOf([]time.Duration{median(buy)})[0],
			"first_buyer_ms":          msOf([]time.Duration{firstRun})[0],
		})
	}
	t.Logf("screenshots in %s", out)
}

// findChromium returns the browser binary, or fails (WXPAYD_INTEGRATION=1)
// or skips saying how to install it.
func findChromium(t *testing.T) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"}
	if p := os.Getenv("WXPAYD_CHROMIUM"); p != "" {
		names = []string{p}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("Chromium not found (looked for %s): install Debian's chromium with "+
		"`bash deploy/local/browser.sh install` (make test does), or name a binary in WXPAYD_CHROMIUM", strings.Join(names, ", "))
	if itest.Integration() {
		t.Fatalf("%s; %s=1, so this fails", msg, itest.EnvIntegration)
	}
	t.Skipf("%s (with %s=1 this fails instead)", msg, itest.EnvIntegration)
	return ""
}

// outDir is where screenshots go: WXPAYD_BROWSER_OUT, else
// bench/browser/testdata/screenshots.
func outDir(t *testing.T, root string) string {
	t.Helper()
	d := os.Getenv("WXPAYD_BROWSER_OUT")
	if d == "" {
		d = filepath.Join(root, "bench", "browser", "testdata", "screenshots")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// stack is wxpaysim and wxpayd, the real binaries, on loopback.
type stack struct {
	simURL, apiURL string
	hc             *http.Client
}

func TestMain(m *testing.M) { rig.Main(m) }

func startStack(t *testing.T) *stack {
	t.Helper()
	dir := t.TempDir()
	bin := rig.Build(t, "./cmd/wxpayd", "./cmd/wxpaysim")
	listen := rig.FreeAddr(t)
	sim := rig.StartSim(t, bin["wxpaysim"], dir, "v3", listen, "--notify-speedup", "100")
	s := &stack{simURL: sim.URL, apiURL: "http://" + listen, hc: &http.Client{Timeout: 10 * time.Second}}
	// The page is served by wxpaysim: another origin than wxpayd's.
	env := sim.WxpaydEnv(t, dir, listen, adminToken, "WXPAYD_CORS_ORIGINS="+s.simURL, "WXPAYD_LOG_LEVEL=warn")
	rig.Start(t, rig.Cmd{Path: bin["wxpayd"], Env: env, Log: filepath.Join(dir, "wxpayd.log"),
		Ready: s.apiURL + "/readyz", ReadyWithin: 20 * time.Second})
	return s
}

func (s *stack) call(t *testing.T, method, u, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *stack) putSKU(t *testing.T, sku, desc string, price, stock int) {
	t.Helper()
	body := fmt.Sprintf(`{"description":%q,"price":%d,"stock":%d}`, desc, price, stock)
	if st, b := s.call(t, "PUT", s.apiURL+"/admin/v1/skus/"+sku, adminToken, body); st != 200 {
		t.Fatalf("put sku %s: %d %s", sku, st, b)
	}
}

// adminState is the order's state in wxpayd's books.
func (s *stack) adminState(t *testing.T, otn string) string {
	t.Helper()
	st, b := s.call(t, "GET", s.apiURL+"/admin/v1/orders/"+url.PathEscape(otn), adminToken, "")
	var o struct {
		Order struct {
			State string `json:"state"`
		} `json:"order"`
	}
	if st != 200 || json.Unmarshal(b, &o) != nil {
		t.Fatalf("admin order %s: %d %s", otn, st, b)
	}
	return o.Order.State
}

// simState is the order's trade_state at WeChat (the simulator).
func (s *stack) simState(t *testing.T, otn string) string {
	t.Helper()
	st, b := s.call(t, "GET", s.simURL+"/sim/v1/orders/"+url.PathEscape(otn), "", "")
	var o struct {
		TradeState string `json:"trade_state"`
	}
	if st != 200 || json.Unmarshal(b, &o) != nil {
		t.Fatalf("sim order %s: %d %s", otn, st, b)
	}
	return o.TradeState
}

// newBrowser starts headless Chromium for the whole test.
func newBrowser(t *testing.T, chrome string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.WindowSize(480, 900),
		// CI runs as root, where Chromium's sandbox refuses to start; the
		// browser only loads the simulator's page on loopback.
		chromedp.NoSandbox,
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", chrome, err)
	}
	return bctx
}

// tab is one buyer's tab on the simulator page.
type tab struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	exc []string // uncaught exceptions of the page
}

// open opens the page for user and sku in a new tab and waits for the
// login (wx.login → POST /api/v1/login) to finish.
func (s *stack) open(t *testing.T, browser context.Context, user, sku string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	b := &tab{t: t, ctx: ctx}
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.exc) > 0 {
			t.Errorf("uncaught exceptions in the page: %s", strings.Join(b.exc, "; "))
		}
	})
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // opens the tab, without a timeout
		t.Fatal(err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() {
				b.mu.Lock()
				b.exc = append(b.exc, m.Text)
				b.mu.Unlock()
			}
		}
	}()
	q := url.Values{"api": {s.apiURL}, "user": {user}, "sku": {sku}}
	b.do("open the page", chromedp.Navigate(s.simURL+"/sim/miniprogram/?"+q.Encode()),
		chromedp.WaitVisible(chromedp.CSS(`#login-state[data-state="ok"]`)))
	return b
}

// do runs steps within stepTimeout; on failure it reports the page's text.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\n--- the page says:\n%s", what, err, b.eval("document.body.innerText"))
	}
}

func (b *tab) eval(expr string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	return b.eval("document.querySelector(" + jsString(sel) + ").textContent")
}

func (b *tab) visible(sel string) bool {
	return b.eval("String(!document.querySelector("+jsString(sel)+").hidden)") == "true"
}

// flowTime is the page's own measure of one buyer (window.mpShop.timings,
// ms): total from the start of wx.login to the moment wxpayd's answer showed
// the order PAID; login up to the session token; buy from the tap on "Buy
// now" to PAID (order, the client's paySign check, the pay sheet's tap,
// the simulator's payment and notification, the confirming read).
type flowTime struct{ total, login, buy time.Duration }

func (b *tab) flowTime() flowTime {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	tm, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64]("window.mpShop.timings"))
	if err != nil || tm["paid"] == 0 {
		b.t.Fatalf("timings %v: %v", tm, err)
	}
	ms := func(a, z string) time.Duration { return time.Duration((tm[z] - tm[a]) * float64(time.Millisecond)) }
	return flowTime{total: ms("login", "paid"), login: ms("login", "loggedIn"), buy: ms("buy", "paid")}
}

// shot writes a full-page PNG as out/name.png.
func (b *tab) shot(out, name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(out, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// tamperPaySign intercepts wxpayd's answers to POST /api/v1/orders on the
// wire (the DevTools Fetch domain, below the page) and changes one character
// of payment.paySign, as a man in the middle would. The channel is closed
// once an answer was altered.
func (b *tab) tamperPaySign() <-chan struct{} {
	b.t.Helper()
	done := make(chan struct{})
	events := chromedp.Events(b.ctx, fetch.RequestPaused)
	if _, err := chromedp.Call(b.ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
		{URLPattern: "*/api/v1/orders", RequestStage: fetch.RequestStageResponse},
	}}); err != nil {
		b.t.Fatalf("Fetch.enable: %v", err)
	}
	go func() {
		var once sync.Once
		for ev, err := range events {
			if err != nil {
				return
			}
			if body, ok := b.tampered(ev); ok {
				_, err = chromedp.Call(b.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
					RequestID: ev.RequestID, ResponseCode: ev.ResponseStatusCode, ResponseHeaders: ev.ResponseHeaders, Body: body,
				})
				if err == nil {
					once.Do(func() { close(done) })
				}
				continue
			}
			_, _ = chromedp.Call(b.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	return done
}

// tampered returns the order answer with its paySign altered, or false for
// anything else (a preflight, an error answer).
func (b *tab) tampered(ev fetch.EventRequestPaused) ([]byte, bool) {
	if ev.Request == nil || ev.Request.Method != "POST" || ev.ResponseStatusCode != 201 {
		return nil, false
	}
	r, err := chromedp.Call(b.ctx, fetch.GetResponseBody, fetch.GetResponseBodyParams{RequestID: ev.RequestID})
	if err != nil {
		return nil, false
	}
	var o map[string]any
	if json.Unmarshal(r.Body, &o) != nil {
		return nil, false
	}
	p, _ := o["payment"].(map[string]any)
	sig, _ := p["paySign"].(string)
	if len(sig) < 8 {
		return nil, false
	}
	c := sig[4]
	repl := byte('A')
	if c == 'A' {
		repl = 'B'
	}
	p["paySign"] = sig[:4] + string(repl) + sig[5:]
	body, err := json.Marshal(o)
	return body, err == nil
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func msOf(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d.Microseconds()) / 1000
	}
	return out
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Error(err)
	}
}
