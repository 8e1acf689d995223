package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/bench/sim"
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
	_, err = newApp(v, newLogger("error"))
	if err == nil || !strings.Contains(err.Error(), "WXPAY_APPID") || !strings.Contains(err.Error(), "WXPAYD_DATA_DIR") {
		t.Fatalf("want the missing names, got %v", err)
	}
	if _, err := v.secret("WXPAYD_ADMIN_TOKEN_FILE", 16); err == nil || strings.Contains(err.Error(), "short-secret") {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := load([]string{"-wxpayd-order-ttl", "5m"}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
}

// TestExitCodes runs wxpayd up to the exit code of each kind of failed
// start: the command line (2), a setting or key file (3), a component
// (1). A component that cannot start leaves nothing open: the state
// directory opens again at once.
func TestExitCodes(t *testing.T) {
	keys := t.TempDir()
	if _, err := sim.Keygen(keys, sim.KeygenOptions{}); err != nil {
		t.Fatal(err)
	}
	identity := map[string]string{"WXPAYD_LOG_LEVEL": "error"}
	for _, line := range strings.Split(string(readTestFile(t, filepath.Join(keys, sim.FileEnv))), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "WXPAY") {
			identity[k] = v
		}
	}
	for name, content := range map[string]string{"admin_token": strings.Repeat("a", 16), "session_secret": strings.Repeat("s", 32)} {
		if err := os.WriteFile(filepath.Join(keys, name), []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	identity["WXPAYD_ADMIN_TOKEN_FILE"] = filepath.Join(keys, "admin_token")
	identity["WXPAYD_SESSION_SECRET_FILE"] = filepath.Join(keys, "session_secret")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // after the parallel subtests

	tests := []struct {
		name string
		args []string
		env  map[string]string // over the identity, "" removes
		want int
	}{
		{"an unknown flag is a usage error", []string{"-no-such-flag"}, nil, exitUsage},
		{"an argument is a usage error", []string{"serve"}, nil, exitUsage},
		{"-h asks for the usage and is no error", []string{"-h"}, nil, exitOK},
		{"a missing setting is a configuration error", nil, map[string]string{"WXPAY_MCHID": ""}, exitConfig},
		{"a malformed setting is a configuration error", nil, map[string]string{"WXPAYD_ORDER_TTL": "soon"}, exitConfig},
		{"a zero query delay is a configuration error", nil, map[string]string{"WXPAYD_QUERY_AFTER": "0s"}, exitConfig},
		{"a prepay timeout a buyer cannot wait out is a configuration error", nil, map[string]string{"WXPAYD_PREPAY_TIMEOUT": "31s"}, exitConfig},
		{"a flag's bad value is a configuration error", []string{"-wxpayd-shard=010"}, nil, exitConfig},
		{"a missing key file is a configuration error", nil, map[string]string{"WXPAY_MERCHANT_KEY_FILE": filepath.Join(keys, "absent.pem")}, exitConfig},
		{"a listener that cannot bind is a start failure", nil, map[string]string{"WXPAYD_LISTEN": busy.Addr().String()}, exitRuntime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dataDir := t.TempDir()
			env := map[string]string{"WXPAYD_DATA_DIR": dataDir, "WXPAYD_LISTEN": "127.0.0.1:0"}
			for k, v := range identity {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			if code := run(tt.args, func(k string) string { return env[k] }); code != tt.want {
				t.Fatalf("exit code %d, want %d", code, tt.want)
			}
			st, err := store.Open(filepath.Join(dataDir, "state"), store.Options{})
			if err != nil {
				t.Fatalf("the state directory is still held after the exit: %v", err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func readTestFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTrustedProxiesSetting: IPs and CIDR prefixes, masked; anything else
// is a configuration error that names the setting and the entry.
func TestTrustedProxiesSetting(t *testing.T) {
	v := values{"WXPAYD_TRUSTED_PROXIES": " 10.1.2.3/8, 192.0.2.7 ,2001:db8::/32,::ffff:198.51.100.1"}
	got, err := v.prefixes("WXPAYD_TRUSTED_PROXIES")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "198.51.100.1/32"}
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d: %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.internal", "fe80::1%eth0"} {
		_, err := values{"WXPAYD_TRUSTED_PROXIES": bad}.prefixes("WXPAYD_TRUSTED_PROXIES")
		var ce configError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "WXPAYD_TRUSTED_PROXIES") || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if got, err := (values{}).prefixes("WXPAYD_TRUSTED_PROXIES"); err != nil || got != nil {
		t.Errorf("unset: %v %v", got, err)
	}
}
