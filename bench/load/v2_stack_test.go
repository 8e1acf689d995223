package load_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/bench/load"
	"github.com/wxpayd/wxpayd/bench/rig"
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
	st := startStack(t, "v2", []string{"--tamper-rate", "0.1", "--dup-rate", "0.1", "--seed", "7"}, "WXPAYD_ORDER_TTL=1m")
	if api := rig.Getenv(st.env, "WXPAY_API"); api != "v2" {
		t.Fatalf("keygen --api v2 wrote WXPAY_API=%q", api)
	}
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
