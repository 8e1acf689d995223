package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestConfigurationDocMatchesSettings keeps docs/configuration.md and the
// settings table in step: every variable documented with its default, and
// nothing documented that does not exist.
func TestConfigurationDocMatchesSettings(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(WXPAYD?_[A-Z0-9_]+)` \\|([^|]*)\\|").FindAllStringSubmatch(string(doc), -1) {
		rows[m[1]] = strings.Trim(strings.TrimSpace(m[2]), "`")
	}
	for _, s := range settings {
		def, ok := rows[s.env]
		if !ok {
			t.Errorf("%s is not documented", s.env)
			continue
		}
		if def != s.def {
			t.Errorf("%s: documented default %q, code %q", s.env, def, s.def)
		}
		delete(rows, s.env)
	}
	for env := range rows {
		t.Errorf("%s is documented but not a setting", env)
	}
}

// TestIssueNamesAreSettings pins the names the payment-core issue fixed.
func TestIssueNamesAreSettings(t *testing.T) {
	want := "WXPAY_APPID WXPAY_MCHID WXPAY_APP_SECRET_FILE WXPAY_MERCHANT_KEY_FILE WXPAY_MERCHANT_SERIAL " +
		"WXPAY_APIV3_KEY_FILE WXPAY_APIV2_KEY_FILE WXPAY_PUBLIC_KEY_FILE WXPAY_PUBLIC_KEY_ID WXPAY_PLATFORM_CERT_FILES " +
		"WXPAY_CERT_REFRESH WXPAY_API_BASE WXPAY_LOGIN_BASE WXPAY_NOTIFY_URL WXPAYD_LISTEN WXPAYD_DATA_DIR " +
		"WXPAYD_ADMIN_TOKEN_FILE WXPAYD_SESSION_SECRET_FILE WXPAYD_ORDER_TTL WXPAYD_PREPAY_QPS WXPAYD_KAFKA_BROKERS " +
		"WXPAYD_CLICKHOUSE_ADDR"
	have := map[string]bool{}
	for _, s := range settings {
		have[s.env] = true
	}
	for _, n := range strings.Fields(want) {
		if !have[n] {
			t.Errorf("%s is missing", n)
		}
	}
}

func TestMissingSettingsAreNamedWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	secret := dir + "/admin"
	if err := os.WriteFile(secret, []byte("short-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"WXPAYD_ADMIN_TOKEN_FILE": secret}
	v, err := load(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	_, err = build(v, newLogger("error"))
	if err == nil || !strings.Contains(err.Error(), "WXPAY_APPID") || !strings.Contains(err.Error(), "WXPAYD_DATA_DIR") {
		t.Fatalf("want the missing names, got %v", err)
	}
	if _, err := v.secret("WXPAYD_ADMIN_TOKEN_FILE", 16); err == nil || strings.Contains(err.Error(), "short-secret") {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := load([]string{"-wxpayd-order-ttl", "5m"}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"-no-such-flag"}, func(string) string { return "" }); code != exitConfig {
		t.Fatalf("bad flag exit %d", code)
	}
}
