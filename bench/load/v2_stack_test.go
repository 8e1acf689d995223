package load_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/bench/load"
)

// TestFlashSaleOnAPIv2PassesTheAudit: the real binaries with wxpayd as an
// APIv2 merchant (`wxpaysim keygen --api v2`: the APIv2 key and the client
// certificate only) and wxpaysim's TLS listener; a flash sale with refunds
// (through /secapi/pay/refund) while unifiedorder fails (SYSTEMERROR,
// FREQUENCY_LIMITED, answers lost), tampered and duplicated notifications,
// then wxpaybench's audit with --api v2 (every order through unifiedorder,
// every paySign MD5, no APIv3 call) on top of the usual checks. (Faults on
// refunds are in ingress's TestEndToEndV2RefundLostIsRetried: a refund
// whose answer is lost waits a minute for its retry.)
func TestFlashSaleOnAPIv2PassesTheAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the whole stack")
	}
	st := startV2Stack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := load.Run(ctx, load.Config{
		API:     load.APIv2,
		RunID:   fmt.Sprintf("v2e2e%x", time.Now().UnixNano()),
		Targets: []string{st.target}, Sim: st.sim, AdminTokenFile: st.adminFile,
		Scenario: load.ScenarioFlashSale, Buyers: 200, Stock: 40, PayShare: 0.8, Connections: 64, RefundShare: 0.5,
		SimFaults: "prepay.system_error=0.1,prepay.rate_limited=0.05,prepay.lost=0.05",
		Seed:      11, MaxTime: 2 * time.Minute, AuditTimeout: 60 * time.Second,
	})
	if res != nil {
		t.Logf("summary:\n%s", load.Markdown(res))
	}
	if err != nil {
		st.dumpLogs(t)
		t.Fatalf("Run: %v", err)
	}
	var apiCheck *load.Check
	for i, c := range res.Audit.Checks {
		if c.Name == "orders and payment signatures through APIv2" {
			apiCheck = &res.Audit.Checks[i]
		}
	}
	if apiCheck == nil || !apiCheck.Passed {
		t.Fatalf("API check %+v", apiCheck)
	}
	if n := res.Audit.Numbers; n["wxpaysim_v2_calls"] == 0 || n["wxpaysim_v3_calls"] != 0 || res.Outcome.Orders == 0 {
		t.Fatalf("numbers %v, orders %d", n, res.Outcome.Orders)
	}

	// The same APIv2 stack audited as if it ran APIv3 fails that check.
	res, err = load.Run(ctx, load.Config{
		API: load.APIv3, Targets: []string{st.target}, Sim: st.sim, AdminTokenFile: st.adminFile,
		Scenario: load.ScenarioFlashSale, Buyers: 10, Stock: 2, PayShare: 1, Seed: 3, MaxTime: time.Minute,
	})
	if err == nil {
		t.Fatal("an APIv2 stack passed the APIv3 audit")
	}
	for _, c := range res.Audit.Checks {
		if c.Passed != (c.Name != "orders and payment signatures through APIv3") {
			t.Errorf("check %q passed=%v (%s)", c.Name, c.Passed, c.Detail)
		}
	}
}

// startV2Stack is startStack for an APIv2 merchant.
func startV2Stack(t *testing.T) *stack {
	t.Helper()
	bin := binaries(t)
	dir := t.TempDir()
	simAddr, simTLS, addr := freePort(t), freePort(t), freePort(t)
	s := &stack{dir: dir, target: "http://" + addr, sim: "http://" + simAddr,
		wxpaydLog: filepath.Join(dir, "wxpayd.log"), simLog: filepath.Join(dir, "wxpaysim.log")}
	keys := filepath.Join(dir, "keys")
	if out, err := exec.Command(filepath.Join(bin, "wxpaysim"), "keygen", "--dir", keys, "--api", "v2", "--sim-addr", simAddr,
		"--sim-tls-addr", simTLS, "--notify-url", "http://"+addr+"/wxpay/v2/notify").CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	s.adminFile = filepath.Join(dir, "admin_token")
	session := filepath.Join(dir, "session_secret")
	if err := os.WriteFile(s.adminFile, []byte("bench-admin-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(session, []byte("bench-session-secret-0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.simArgs = []string{"serve", "--keys-dir", keys, "--listen", simAddr, "--tls-listen", simTLS, "--notify-speedup", "60",
		"--log-level", "warn", "--tamper-rate", "0.1", "--dup-rate", "0.1", "--seed", "7"}
	s.wxpaysim = s.start(t, filepath.Join(bin, "wxpaysim"), s.simArgs, nil, s.simLog)
	s.waitHTTP(t, s.sim+"/sim/v1/health", s.wxpaysim, s.simLog)
	env := readEnvFile(t, filepath.Join(keys, "wxpay.env"))
	if !containsLine(env, "WXPAY_API=v2") {
		t.Fatalf("keygen --api v2 wrote %v", env)
	}
	env = append(env, "WXPAYD_LISTEN="+addr, "WXPAYD_DATA_DIR="+filepath.Join(dir, "data"),
		"WXPAYD_ADMIN_TOKEN_FILE="+s.adminFile, "WXPAYD_SESSION_SECRET_FILE="+session, "WXPAYD_LOG_LEVEL=warn",
		"WXPAYD_ORDER_TTL=1m")
	s.wxpaydEnv = env
	s.wxpayd = s.start(t, filepath.Join(bin, "wxpayd"), nil, env, s.wxpaydLog)
	s.waitHTTP(t, s.target+"/readyz", s.wxpayd, s.wxpaydLog)
	return s
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if strings.TrimSpace(l) == want {
			return true
		}
	}
	return false
}
