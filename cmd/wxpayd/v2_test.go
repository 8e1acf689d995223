package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/bench/rig"
	"github.com/wxpayd/wxpayd/bench/sim"
	"github.com/wxpayd/wxpayd/wxpay"
)

// v2Env is the settings of an APIv2 merchant as `wxpaysim keygen --api v2`
// writes them, plus the server's own.
func v2Env(t *testing.T, keys string) map[string]string {
	t.Helper()
	if _, err := sim.Keygen(keys, sim.KeygenOptions{API: "v2"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"WXPAYD_LOG_LEVEL": "error"}
	for _, line := range strings.Split(string(readTestFile(t, filepath.Join(keys, sim.FileEnv))), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "WXPAY") {
			env[k] = v
		}
	}
	env["WXPAYD_ADMIN_TOKEN_FILE"] = rig.WriteSecret(t, keys, "admin_token", strings.Repeat("a", 16))
	env["WXPAYD_SESSION_SECRET_FILE"] = rig.WriteSecret(t, keys, "session_secret", strings.Repeat("s", 32))
	return env
}

// TestV2StartupCombinations: an APIv2 merchant starts without the APIv3
// key and the RSA merchant key, and every incomplete combination stops
// start-up with exit code 3. A combination that passes reaches the
// listener, which the test holds busy (exit 1).
func TestV2StartupCombinations(t *testing.T) {
	keys := t.TempDir()
	base := v2Env(t, keys)
	for _, k := range []string{"WXPAY_MERCHANT_KEY_FILE", "WXPAY_MERCHANT_SERIAL", "WXPAY_APIV3_KEY_FILE", "WXPAY_PUBLIC_KEY_FILE"} {
		if base[k] != "" {
			t.Fatalf("keygen --api v2 wrote %s", k)
		}
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	p12 := filepath.Join(keys, "apiclient_cert.p12")
	wrongPass := filepath.Join(keys, "wrong.p12")
	haveP12 := true
	for file, pass := range map[string]string{p12: base["WXPAY_MCHID"], wrongPass: "not-the-mchid"} {
		// WeChat's p12 uses the legacy algorithms x/crypto/pkcs12 reads.
		cmd := exec.Command("openssl", "pkcs12", "-export", "-in", base["WXPAY_APICLIENT_CERT_FILE"], "-inkey",
			base["WXPAY_APICLIENT_KEY_FILE"], "-passout", "pass:"+pass, "-certpbe", "PBE-SHA1-3DES", "-keypbe",
			"PBE-SHA1-3DES", "-macalg", "sha1", "-out", file)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Logf("openssl pkcs12 unavailable, the .p12 cases are left out: %v %s", err, b)
			haveP12 = false
		}
	}
	tests := []struct {
		name string
		env  map[string]string // over base, "" removes
		want int
	}{
		{"the APIv2 credentials alone pass", nil, exitRuntime},
		{"without WXPAY_API, only APIv2 credentials choose APIv2", map[string]string{"WXPAY_API": ""}, exitRuntime},
		{"HMAC-SHA256 passes", map[string]string{"WXPAY_V2_SIGN_TYPE": "HMAC-SHA256"}, exitRuntime},
		{"an unknown API is refused", map[string]string{"WXPAY_API": "v4"}, exitConfig},
		{"an unknown sign type is refused", map[string]string{"WXPAY_V2_SIGN_TYPE": "SHA1"}, exitConfig},
		{"no APIv2 key is refused", map[string]string{"WXPAY_APIV2_KEY_FILE": ""}, exitConfig},
		{"no client certificate is refused", map[string]string{"WXPAY_APICLIENT_CERT_FILE": "", "WXPAY_APICLIENT_KEY_FILE": ""}, exitConfig},
		{"a certificate without its key is refused", map[string]string{"WXPAY_APICLIENT_KEY_FILE": ""}, exitConfig},
		{"a key that is not the certificate's is refused", map[string]string{"WXPAY_APICLIENT_KEY_FILE": filepath.Join(keys, sim.FilePlatformKey)}, exitConfig},
		{"a v3 notify URL is refused", map[string]string{"WXPAY_NOTIFY_URL": "http://127.0.0.1:8080/wxpay/v3/notify"}, exitConfig},
		{"a refund URL that cannot be derived is refused", map[string]string{"WXPAY_NOTIFY_URL": "http://127.0.0.1:8080/wx/v2"}, exitConfig},
		{"an explicit refund URL passes", map[string]string{"WXPAY_NOTIFY_URL": "http://127.0.0.1:8080/wx/v2", "WXPAY_V2_REFUND_NOTIFY_URL": "http://127.0.0.1:8080/wx/r"}, exitRuntime},
		{"APIv3 with the APIv2 settings alone is refused", map[string]string{"WXPAY_API": "v3"}, exitConfig},
		{"a CA file without certificates is refused", map[string]string{"WXPAY_API_CA_FILE": filepath.Join(keys, sim.FileAPIv2Key)}, exitConfig},
	}
	if haveP12 {
		tests = append(tests, []struct {
			name string
			env  map[string]string
			want int
		}{
			{"the .p12 with the mch_id as password passes", map[string]string{"WXPAY_APICLIENT_CERT_FILE": "", "WXPAY_APICLIENT_KEY_FILE": "", "WXPAY_APICLIENT_P12_FILE": p12}, exitRuntime},
			{"a .p12 under another password is refused", map[string]string{"WXPAY_APICLIENT_CERT_FILE": "", "WXPAY_APICLIENT_KEY_FILE": "", "WXPAY_APICLIENT_P12_FILE": wrongPass}, exitConfig},
			{"the .p12 and the PEM pair at once are refused", map[string]string{"WXPAY_APICLIENT_P12_FILE": p12}, exitConfig},
		}...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"WXPAYD_DATA_DIR": t.TempDir(), "WXPAYD_LISTEN": busy.Addr().String()}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			if code := run(nil, func(k string) string { return env[k] }); code != tt.want {
				t.Fatalf("exit code %d, want %d", code, tt.want)
			}
		})
	}
}

// TestV2ThroughTheRealBinaries runs the real wxpayd as an APIv2 merchant
// (settings from `wxpaysim keygen --api v2`, HMAC-SHA256) against the real
// wxpaysim with its TLS listener: login, prepay through unifiedorder with a
// v2 paySign WeChat's client accepts, pay, PAID through the XML
// notification, refund through /secapi/pay/refund with the client
// certificate, REFUNDED through the req_info notification; then wxpayd is
// killed and restarted and the order is as it was.
func TestV2ThroughTheRealBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("real binaries")
	}
	const admin = "v2-admin-token-0123456789"
	m := startMerchant(t, "v2", admin, []string{"--notify-speedup", "100"}, "WXPAYD_LOG_LEVEL=info", "WXPAY_V2_SIGN_TYPE=HMAC-SHA256")
	base := m.base
	if !strings.Contains(m.srv.Logs(), `"api":"v2"`) {
		t.Fatal("wxpayd does not say it runs APIv2")
	}

	hc := &http.Client{Timeout: 10 * time.Second}
	if st, b := call(hc, "PUT", base+"/admin/v1/skus/v2tea", admin, `{"description":"APIv2 茶","price":1999,"stock":2}`); st != 200 {
		t.Fatalf("put sku: %d %s", st, b)
	}
	st, b := call(hc, "POST", base+"/api/v1/login", "", `{"code":"code-v2buyer"}`)
	var login struct{ Token string }
	if json.Unmarshal(b, &login); st != 200 || login.Token == "" {
		t.Fatalf("login: %d %s", st, b)
	}
	st, b = call(hc, "POST", base+"/api/v1/orders", login.Token, `{"sku":"v2tea"}`)
	var o struct {
		OutTradeNo string          `json:"out_trade_no"`
		State      string          `json:"state"`
		Payment    wxpay.PayParams `json:"payment"`
	}
	if json.Unmarshal(b, &o); st != 201 || o.State != "PREPAID" || o.Payment.SignType != "HMAC-SHA256" || len(o.Payment.PaySign) != 64 {
		t.Fatalf("order: %d %s", st, b)
	}
	openid := orderOpenID(t, hc, base, admin, o.OutTradeNo)
	// WeChat's client checks the paySign before it shows the pay sheet.
	rp, _ := json.Marshal(map[string]string{"timeStamp": o.Payment.TimeStamp, "nonceStr": o.Payment.NonceStr,
		"package": o.Payment.Package, "signType": o.Payment.SignType, "paySign": o.Payment.PaySign, "openid": openid})
	if st, b := call(hc, "POST", m.sim.URL+"/sim/v1/requestPayment", "", string(rp)); st != 200 {
		t.Fatalf("requestPayment: %d %s", st, b)
	}
	pay := fmt.Sprintf(`{"prepay_id":%q,"openid":%q}`, strings.TrimPrefix(o.Payment.Package, "prepay_id="), openid)
	if st, b := call(hc, "POST", m.sim.URL+"/sim/v1/pay", "", pay); st != 201 {
		t.Fatalf("pay: %d %s", st, b)
	}
	rig.Eventually(t, 20*time.Second, "PAID", func() bool { return orderField(hc, base, admin, o.OutTradeNo, "state") == "PAID" })
	if st, b := call(hc, "POST", base+"/admin/v1/orders/"+o.OutTradeNo+"/refunds", admin, `{"amount":1999,"reason":"退货"}`); st != 200 {
		t.Fatalf("refund: %d %s", st, b)
	}
	rig.Eventually(t, 20*time.Second, "REFUNDED", func() bool { return orderField(hc, base, admin, o.OutTradeNo, "state") == "REFUNDED" })

	// WeChat's books: the order refunded in full, every call on it APIv2's.
	st, b = call(hc, "GET", m.sim.URL+"/sim/v1/ledger?out_trade_no="+o.OutTradeNo, "", "")
	var l sim.Ledger
	if json.Unmarshal(b, &l); st != 200 || len(l.Orders) != 1 || l.Orders[0].Refunded != 1999 || l.Orders[0].Calls.Refund != 1 {
		t.Fatalf("ledger: %d %s", st, b)
	}
	var stats sim.Stats
	_, b = call(hc, "GET", m.sim.URL+"/sim/v1/stats", "", "")
	if json.Unmarshal(b, &stats); stats.Requests["v2_unifiedorder"] != 1 || stats.Requests["v2_refund"] != 1 ||
		stats.Requests["prepay"] != 0 || stats.Notifications.Acknowledged != 2 {
		t.Fatalf("sim stats: %s", b)
	}

	// kill -9 and restart on the same data: the order is as it was.
	m.crash(t)
	if s := orderField(hc, base, admin, o.OutTradeNo, "state"); s != "REFUNDED" {
		t.Fatalf("after restart: %s", s)
	}
}

// orderOpenID reads an order's buyer from the admin view (the buyer's
// phone knows it; the test does not).
func orderOpenID(t *testing.T, hc *http.Client, base, admin, otn string) string {
	t.Helper()
	if id := orderField(hc, base, admin, otn, "openid"); id != "" {
		return id
	}
	t.Fatalf("no openid for %s", otn)
	return ""
}

func orderField(hc *http.Client, base, admin, otn, field string) string {
	_, b := call(hc, "GET", base+"/admin/v1/orders/"+otn, admin, "")
	var v struct {
		Order map[string]any `json:"order"`
	}
	_ = json.Unmarshal(b, &v)
	s, _ := v.Order[field].(string)
	return s
}
