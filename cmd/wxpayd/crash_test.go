package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashUnderLoad runs the real wxpayd binary against the real wxpaysim,
// drives buyers through login → prepay → pay, SIGKILLs wxpayd at random
// moments and restarts it on the same data directory. Afterwards:
//   - every order whose creation was acknowledged (201) still exists;
//   - every payment WeChat (the simulator) took ends PAID in wxpayd, once:
//     one order.paid per order, seqs consecutive;
//   - stock is consistent: sold = PAID orders, sold + reserved <= stock.
func TestCrashUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: real binaries, ~40 s")
	}
	const admin = "crash-admin-token-0123456789"
	m := startMerchant(t, "v3", admin, []string{"--notify-speedup", "100"}, "WXPAYD_LOG_LEVEL=warn")
	base := m.base

	const stock = 400
	hc := &http.Client{Timeout: 5 * time.Second}
	if st, b := call(hc, "PUT", base+"/admin/v1/skus/crash", admin, `{"description":"crash","price":100,"stock":400}`); st != 200 {
		t.Fatalf("put sku: %d %s", st, b)
	}

	var (
		created   sync.Map // otn → openid: creation acknowledged with 201
		simPaid   sync.Map // otn → true: the simulator took the money
		attempts  atomic.Int64
		stopLoad  = make(chan struct{})
		loadGroup sync.WaitGroup
	)
	for w := 0; w < 6; w++ {
		loadGroup.Add(1)
		go func(w int) {
			defer loadGroup.Done()
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				attempts.Add(1)
				buyer(hc, base, m.sim.URL, fmt.Sprintf("w%d-%d", w, i), "crash", admin, &created, &simPaid)
			}
		}(w)
	}
	// The killer: five SIGKILLs at random moments, each followed by a restart.
	for k := 0; k < 5; k++ {
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		m.crash(t)
	}
	time.Sleep(500 * time.Millisecond)
	close(stopLoad)
	loadGroup.Wait()

	var nCreated, nPaid int
	created.Range(func(_, _ any) bool { nCreated++; return true })
	simPaid.Range(func(_, _ any) bool { nPaid++; return true })
	t.Logf("%d buyer attempts, %d orders acknowledged, %d paid at the simulator", attempts.Load(), nCreated, nPaid)
	if nCreated == 0 || nPaid == 0 {
		t.Fatal("the load did not get through: nothing to check")
	}

	// Every acknowledged order exists; every payment lands exactly once.
	deadline := time.Now().Add(30 * time.Second)
	paidOrders := 0
	created.Range(func(k, _ any) bool {
		otn := k.(string)
		_, wantPaid := simPaid.Load(otn)
		if auditOrder(t, hc, base, admin, otn, wantPaid, deadline) == "PAID" {
			paidOrders++
		}
		return true
	})
	st, b := call(hc, "GET", base+"/admin/v1/skus/crash", admin, "")
	var sku struct{ Stock, Left, Reserved, Sold int64 }
	if err := json.Unmarshal(b, &sku); st != 200 || err != nil {
		t.Fatalf("sku: %d %s", st, b)
	}
	t.Logf("sku after crashes: %+v; PAID orders %d", sku, paidOrders)
	if sku.Sold+sku.Reserved > stock || sku.Left != stock-sku.Sold-sku.Reserved {
		t.Errorf("stock inconsistent: %+v", sku)
	}
	if sku.Sold != int64(paidOrders) {
		t.Errorf("sold %d but %d orders are PAID", sku.Sold, paidOrders)
	}
}

// auditOrder reads an order through base (retrying a failed read, and a
// paid order that is not PAID yet, until deadline: nodes restart and
// WeChat's retries take a moment) and checks its history: seqs 1..n with
// no gap, and at most one order.paid. It returns the state it read last.
func auditOrder(t *testing.T, hc *http.Client, base, adminToken, otn string, wantPaid bool, deadline time.Time) string {
	t.Helper()
	for {
		st, b := call(hc, "GET", base+"/admin/v1/orders/"+otn, adminToken, "")
		var v struct {
			Order struct {
				State string `json:"state"`
			} `json:"order"`
			Events []struct {
				Type string `json:"type"`
				Seq  uint64 `json:"seq"`
			} `json:"events"`
		}
		_ = json.Unmarshal(b, &v)
		if (st != 200 || wantPaid && v.Order.State != "PAID") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if st != 200 {
			t.Errorf("acknowledged order %s: %d %s", otn, st, b)
			return ""
		}
		if wantPaid && v.Order.State != "PAID" {
			t.Errorf("order %s was paid at WeChat but is %s", otn, v.Order.State)
		}
		paid := 0
		for i, e := range v.Events {
			if e.Seq != uint64(i+1) {
				t.Errorf("order %s: event %d has seq %d", otn, i, e.Seq)
			}
			if e.Type == "order.paid" {
				paid++
			}
		}
		if paid > 1 {
			t.Errorf("order %s paid %d times", otn, paid)
		}
		return v.Order.State
	}
}

// buyer does what the Mini Program does; it records only what wxpayd or
// the simulator acknowledged. Errors (the server is being killed) are
// expected and ignored.
func buyer(hc *http.Client, base, simURL, name, sku, adminToken string, created, simPaid *sync.Map) {
	st, b := call(hc, "POST", base+"/api/v1/login", "", `{"code":"code-`+name+`"}`)
	if st != 200 {
		return
	}
	var login struct{ Token string }
	_ = json.Unmarshal(b, &login)
	st, b = call(hc, "POST", base+"/api/v1/orders", login.Token, `{"sku":"`+sku+`"}`)
	if st != 201 {
		return
	}
	var o struct {
		OutTradeNo string `json:"out_trade_no"`
		Payment    struct {
			Package string `json:"package"`
		} `json:"payment"`
	}
	_ = json.Unmarshal(b, &o)
	created.Store(o.OutTradeNo, true)
	if rand.IntN(10) < 2 {
		return // some buyers never pay
	}
	// The simulator derives the openid from the code; ask it the way the
	// buyer's phone would know it: from a fresh login of the same code
	// family is not possible (codes are single-use), so read it from the
	// admin view.
	st, b = call(hc, "GET", base+"/admin/v1/orders/"+o.OutTradeNo, adminToken, "")
	if st != 200 {
		return
	}
	var full struct {
		Order struct {
			OpenID string `json:"openid"`
		} `json:"order"`
	}
	_ = json.Unmarshal(b, &full)
	body := fmt.Sprintf(`{"prepay_id":%q,"openid":%q}`, strings.TrimPrefix(o.Payment.Package, "prepay_id="), full.Order.OpenID)
	if st, _ = call(hc, "POST", simURL+"/sim/v1/pay", "", body); st == 201 {
		simPaid.Store(o.OutTradeNo, true)
	}
}

func call(hc *http.Client, method, url, token, body string) (int, []byte) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
