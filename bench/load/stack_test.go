package load_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/bench/load"
	"github.com/wxpayd/wxpayd/bench/rig"
	"github.com/wxpayd/wxpayd/sink/itest"
)

// The end-to-end test: the real wxpayd and wxpaysim binaries, built from
// this tree, on free loopback ports, with a fresh identity. Kafka and
// ClickHouse are the real services when KAFKA_ADDR / CLICKHOUSE_ADDR are set
// (make test sets them and WXPAYD_INTEGRATION=1, which makes their absence
// a failure); otherwise wxpayd runs its embedded broker and the ClickHouse
// check is skipped.

func TestFlashSaleThroughTheRealBinariesPassesTheAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the whole stack")
	}
	kafka, ch := itest.Optional(t) // "" for the embedded broker and no ClickHouse
	st := startStack(t, "v3", nil, "WXPAYD_KAFKA_BROKERS="+kafka, "WXPAYD_CLICKHOUSE_ADDR="+ch)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "report")
	runID := fmt.Sprintf("e2e%x", time.Now().UnixNano()) // unique: ClickHouse keeps every run's events
	res, err := load.Run(ctx, load.Config{
		RunID:   runID,
		Targets: []string{st.target}, Sim: st.sim, AdminTokenFile: st.adminFile, ClickHouse: ch,
		Scenario: load.ScenarioFlashSale, Buyers: 300, Stock: 50, PayShare: 0.8, Connections: 64,
		Seed: 42, MaxTime: 2 * time.Minute, AuditTimeout: 60 * time.Second, Out: out,
		WatchPIDs: map[string]int{"wxpayd": st.wxpayd.Pid(), "wxpaysim": st.wxpaysim.Pid()},
	})
	if res != nil {
		t.Logf("summary:\n%s", load.Markdown(res))
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	o := res.Outcome
	if o.Buyers != 300 || o.LoggedIn != 300 {
		t.Errorf("buyers %d, logged in %d; want 300, 300", o.Buyers, o.LoggedIn)
	}
	if o.Orders != 50 || o.SoldOut != 250 {
		t.Errorf("orders %d, sold out %d; want exactly the 50 units sold and 250 refusals", o.Orders, o.SoldOut)
	}
	if o.Paid != o.Payers || o.SeenPaid != o.Paid || o.Paid == 0 || o.Paid == 50 {
		t.Errorf("payers %d, paid %d, saw PAID %d: want every payer paid and saw PAID, some but not all of 50", o.Payers, o.Paid, o.SeenPaid)
	}
	for _, name := range []string{"login", "prepay", "pay", "poll", "paid", "checkout"} {
		s := res.Step(name)
		if s == nil || s.Count == 0 || s.Errors != 0 {
			t.Errorf("step %s: %+v; want samples and no errors", name, s)
		}
	}
	if n := res.Audit.Numbers; n["wxpaysim_paid"] != int64(o.Paid) || n["wxpayd_paid_orders"] != int64(o.Paid) || n["wxpayd_units_sold"] != int64(o.Paid) {
		t.Errorf("audit numbers %v; want every count = %d", n, o.Paid)
	}
	if ch != "" && res.Audit.Numbers["clickhouse_paid_orders"] != int64(o.Paid) {
		t.Errorf("ClickHouse has %d paid orders; want %d", res.Audit.Numbers["clickhouse_paid_orders"], o.Paid)
	}
	if res.CPU.Generator <= 0 || res.CPU.Machine <= 0 || len(res.CPU.Processes) != 2 {
		t.Errorf("CPU %+v: want the generator, the machine and both watched processes measured", res.CPU)
	}
	html, err := os.ReadFile(filepath.Join(out, load.FileHTML))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "no oversell", "audit passed", "Latency distribution"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	for _, forbidden := range []string{"<script src", "http://cdn", "https://"} {
		if strings.Contains(string(html), forbidden) {
			t.Errorf("report.html is not self-contained: it has %q", forbidden)
		}
	}
	if _, err := os.Stat(filepath.Join(out, load.FileJSON)); err != nil {
		t.Error(err)
	}

	// Acknowledged means durable: kill -9 wxpayd (no shutdown: only what it
	// fsync'd survives), start it again on the same data dir, and every
	// payment and reservation is still there.
	if err := st.wxpayd.Restart(); err != nil {
		t.Fatal(err)
	}
	if sku := st.sku(t, runID+"-flash"); sku.Sold != int64(o.Paid) || sku.Reserved != int64(o.Orders-o.Paid) || sku.Left != 0 {
		t.Errorf("after kill -9 and restart: %+v; want sold %d, reserved %d, left 0", sku, o.Paid, o.Orders-o.Paid)
	}

	// Steady and mixed on the same stack: open-loop arrivals that log in
	// inside the window, and a ramped flash sale on top.
	for _, sc := range []load.Config{
		{Scenario: load.ScenarioSteady, Rate: 40, Duration: 2 * time.Second, PayShare: 0.5},
		{Scenario: load.ScenarioMixed, Rate: 30, Duration: 3 * time.Second, Buyers: 100, Stock: 10, PayShare: 0.5,
			Arrival: load.ArrivalRamp, Ramp: 500 * time.Millisecond},
	} {
		sc.Targets, sc.Sim, sc.AdminTokenFile, sc.ClickHouse = []string{st.target}, st.sim, st.adminFile, ch
		sc.Seed, sc.MaxTime, sc.Connections = 3, time.Minute, 32
		res, err := load.Run(ctx, sc)
		if err != nil {
			if res != nil {
				t.Logf("summary:\n%s", load.Markdown(res))
			}
			t.Fatalf("%s: %v", sc.Scenario, err)
		}
		want := 80 // steady: every arrival gets a unit
		if sc.Scenario == load.ScenarioMixed {
			want = 90 + 10
		}
		if o := res.Outcome; o.Orders != want || o.Paid == 0 || o.SeenPaid != o.Paid {
			t.Errorf("%s: outcome %+v; want %d orders and every payer seeing PAID", sc.Scenario, o, want)
		}
		if s := res.Step("login"); s == nil || s.Count < 80 {
			t.Errorf("%s: login step %+v; want the arrivals' logins inside the window", sc.Scenario, s)
		}
	}

	// Refunds while WeChat fails: a share of the paid orders is refunded,
	// wxpaysim fails a share of every API call and ends some refunds CLOSED
	// or ABNORMAL during the window (then restores its settings), and the
	// audit compares every refund with wxpaysim's.
	res, err = load.Run(ctx, load.Config{
		Targets: []string{st.target}, Sim: st.sim, AdminTokenFile: st.adminFile, ClickHouse: ch,
		Scenario: load.ScenarioSteady, Rate: 20, Duration: 3 * time.Second, PayShare: 0.9, RefundShare: 0.6,
		SimFaults:         "all.system_error=0.05,all.rate_limited=0.03,all.bad_gateway=0.03,all.lost=0.05",
		SimRefundOutcomes: "success=0.8,closed=0.1,abnormal=0.1",
		Seed:              11, MaxTime: 3 * time.Minute, AuditTimeout: 100 * time.Second, Connections: 32,
	})
	if err != nil {
		if res != nil {
			t.Logf("summary:\n%s", load.Markdown(res))
		}
		t.Fatalf("refunds under faults: %v", err)
	}
	for _, c := range res.Audit.Checks {
		if c.Name == "refunds equal WeChat's" || c.Name == "WeChat API faults injected" {
			t.Logf("refunds under faults: %s: %s", c.Name, c.Detail)
		}
	}
	if n := res.Audit.Numbers; n["refunds_asked"] == 0 || n["wxpaysim_api_faults"] == 0 || n["refunded_fen_wxpayd"] != n["refunded_fen_wechat"] {
		t.Errorf("refunds under faults: audit numbers %v; want refunds asked, faults injected and equal refunded amounts", n)
	}

	// The same stack has no fault injection: a notify-storm must fail its
	// audit (it would prove nothing), while every other check still passes.
	res, err = load.Run(ctx, load.Config{
		Targets: []string{st.target}, Sim: st.sim, AdminTokenFile: st.adminFile,
		Scenario: load.ScenarioNotifyStorm, Buyers: 20, Rate: 200, PayShare: -1, Seed: 7, MaxTime: time.Minute,
	})
	if !errors.Is(err, load.ErrAuditFailed) {
		t.Fatalf("notify-storm without faults: err %v; want ErrAuditFailed", err)
	}
	for _, c := range res.Audit.Checks {
		if c.Passed != (c.Name != "faults injected") {
			t.Errorf("check %q passed=%v (%s)", c.Name, c.Passed, c.Detail)
		}
	}
}

// stack is wxpaysim and wxpayd, the real binaries of this tree, on
// loopback: rig processes, stopped when the test ends, their logs shown if
// it failed.
type stack struct {
	target, sim      string // wxpayd's and wxpaysim's URLs
	adminFile        string
	env              []string // wxpayd's
	wxpayd, wxpaysim *rig.Process
}

// adminToken is the stack's admin token, as an operator's file holds it.
const adminToken = "bench-admin-token-0123456789\n"

func TestMain(m *testing.M) { rig.Main(m) }

// startStack starts wxpaysim for a merchant on API api ("v3" or "v2"),
// with serve's flags after the stack's own, and wxpayd with env after
// WXPAYD_LOG_LEVEL=warn; wxpayd's start and restarts wait up to 60 s for
// its /readyz.
func startStack(t *testing.T, api string, serve []string, env ...string) *stack {
	t.Helper()
	bin := rig.Build(t, "./cmd/wxpayd", "./cmd/wxpaysim")
	dir := t.TempDir()
	addr := rig.FreeAddr(t)
	sim := rig.StartSim(t, bin["wxpaysim"], dir, api, addr, append([]string{"--notify-speedup", "60", "--log-level", "warn"}, serve...)...)
	s := &stack{target: "http://" + addr, sim: sim.URL, wxpaysim: sim.Process,
		env: sim.WxpaydEnv(t, dir, addr, adminToken, append([]string{"WXPAYD_LOG_LEVEL=warn"}, env...)...)}
	s.adminFile = rig.Getenv(s.env, "WXPAYD_ADMIN_TOKEN_FILE")
	s.wxpayd = rig.Start(t, rig.Cmd{Path: bin["wxpayd"], Env: s.env, Log: filepath.Join(dir, "wxpayd.log"),
		Ready: s.target + "/readyz", ReadyWithin: 60 * time.Second})
	return s
}

// skuView is GET /admin/v1/skus/{sku}.
type skuView struct {
	Stock, Left, Reserved, Sold int64
}

func (s *stack) sku(t *testing.T, name string) skuView {
	t.Helper()
	token, err := os.ReadFile(s.adminFile)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", s.target+"/admin/v1/skus/"+name, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET sku: %v", err)
	}
	defer resp.Body.Close()
	var v skuView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET sku: status %d, %v", resp.StatusCode, err)
	}
	return v
}
