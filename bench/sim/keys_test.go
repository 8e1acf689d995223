package sim

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeygen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	id, err := Keygen(dir, KeygenOptions{AppID: "wx1234567890abcdef", MchID: "1230000109", SimAddr: "127.0.0.1:9999",
		NotifyURL: "http://127.0.0.1:8081/n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("writes every file, secrets 0600", func(t *testing.T) {
		for name, mode := range map[string]os.FileMode{
			FileMerchantKey: 0o600, FileMerchantCert: 0o644, FileWechatPayKey: 0o600, FileWechatPayPub: 0o644,
			FilePlatformKey: 0o600, FilePlatformCert: 0o644, FileAPIv3Key: 0o600, FileAPIv2Key: 0o600,
			FileAppSecret: 0o600, FileEnv: 0o644, FileSimJSON: 0o644,
			FileAPIClientCert: 0o644, FileAPIClientKey: 0o600, FileCACert: 0o644, FileCAKey: 0o600,
		} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != mode {
				t.Fatalf("%s mode %v, want %v", name, fi.Mode().Perm(), mode)
			}
		}
		for _, f := range []string{FileAPIv3Key, FileAPIv2Key} {
			if b, _ := os.ReadFile(filepath.Join(dir, f)); len(b) != 32 {
				t.Fatalf("%s has %d bytes", f, len(b))
			}
		}
	})
	t.Run("wxpay.env names every WXPAY_ variable of the contract", func(t *testing.T) {
		b, _ := os.ReadFile(filepath.Join(dir, FileEnv))
		env := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
				env[k] = v
			}
		}
		abs, _ := filepath.Abs(dir)
		want := map[string]string{
			"WXPAY_APPID": "wx1234567890abcdef", "WXPAY_MCHID": "1230000109",
			"WXPAY_APP_SECRET_FILE": filepath.Join(abs, FileAppSecret), "WXPAY_MERCHANT_KEY_FILE": filepath.Join(abs, FileMerchantKey),
			"WXPAY_MERCHANT_SERIAL": id.MerchantSerial, "WXPAY_APIV3_KEY_FILE": filepath.Join(abs, FileAPIv3Key),
			"WXPAY_APIV2_KEY_FILE": filepath.Join(abs, FileAPIv2Key), "WXPAY_PUBLIC_KEY_FILE": filepath.Join(abs, FileWechatPayPub),
			"WXPAY_PUBLIC_KEY_ID": id.PublicKeyID, "WXPAY_PLATFORM_CERT_FILES": filepath.Join(abs, FilePlatformCert),
			"WXPAY_API_BASE": "http://127.0.0.1:9999", "WXPAY_LOGIN_BASE": "http://127.0.0.1:9999",
			"WXPAY_NOTIFY_URL":          "http://127.0.0.1:8081/n",
			"WXPAY_APICLIENT_CERT_FILE": filepath.Join(abs, FileAPIClientCert), "WXPAY_APICLIENT_KEY_FILE": filepath.Join(abs, FileAPIClientKey),
			"WXPAY_V2_SECAPI_BASE": "https://" + DefaultTLSListen, "WXPAY_API_CA_FILE": filepath.Join(abs, FileCACert),
		}
		for k, v := range want {
			if env[k] != v {
				t.Fatalf("%s=%q, want %q", k, env[k], v)
			}
		}
		if len(env) != len(want) {
			t.Fatalf("extra variables: %v", env)
		}
	})
	t.Run("LoadIdentity reads back the same identity", func(t *testing.T) {
		got, err := LoadIdentity(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got.MchID != id.MchID || got.AppID != id.AppID || got.MerchantSerial != id.MerchantSerial ||
			got.PublicKeyID != id.PublicKeyID || got.PlatformSerial != id.PlatformSerial || got.AppSecret != id.AppSecret ||
			string(got.APIv3Key) != string(id.APIv3Key) || !got.MerchantKey.Equal(id.MerchantKey) ||
			!strings.HasPrefix(got.PublicKeyID, "PUB_KEY_ID_") || len(got.MerchantSerial) != 40 {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("serve starts from the directory", func(t *testing.T) {
		s, err := New(Config{KeysDir: dir, Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an inconsistent directory is ErrKeys", func(t *testing.T) {
		bad := t.TempDir()
		other, _ := NewIdentity(KeygenOptions{})
		if err := other.Write(bad, KeygenOptions{}); err != nil {
			t.Fatal(err)
		}
		// Swap in a certificate from the first identity.
		b, _ := os.ReadFile(filepath.Join(dir, FileMerchantCert))
		os.WriteFile(filepath.Join(bad, FileMerchantCert), b, 0o644)
		if _, err := LoadIdentity(bad); !errors.Is(err, ErrKeys) {
			t.Fatalf("got %v", err)
		}
		os.WriteFile(filepath.Join(bad, FileAPIv3Key), []byte("short"), 0o600)
		if _, err := LoadIdentity(bad); !errors.Is(err, ErrKeys) {
			t.Fatalf("got %v", err)
		}
		if _, err := LoadIdentity(filepath.Join(bad, "missing")); !errors.Is(err, ErrKeys) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("bad appid or mchid is refused", func(t *testing.T) {
		if _, err := NewIdentity(KeygenOptions{AppID: "xx1234567890abcdef"}); !errors.Is(err, ErrConfig) {
			t.Fatalf("got %v", err)
		}
		if _, err := NewIdentity(KeygenOptions{MchID: "12a"}); !errors.Is(err, ErrConfig) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{KeysDir: "k"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
	}{
		{"no keys directory", func(c *Config) { c.KeysDir = "" }},
		{"a listen address without a port", func(c *Config) { c.Listen = "127.0.0.1" }},
		{"an unknown signing mode", func(c *Config) { c.SigningMode = "rsa" }},
		{"a negative latency", func(c *Config) { c.Latency = -1 }},
		{"a rate limit below -1", func(c *Config) { c.RateLimit = -2 }},
		{"a negative speedup", func(c *Config) { c.NotifySpeedup = -1 }},
		{"a dup rate above 1", func(c *Config) { c.DupRate = 1.5 }},
		{"a negative tamper rate", func(c *Config) { c.TamperRate = -0.1 }},
		{"a stale rate above 1", func(c *Config) { c.StaleRate = 2 }},
		{"a drop rate above 1", func(c *Config) { c.DropRate = 1.01 }},
		{"a mixed share above 1", func(c *Config) { c.MixedPublicKeyShare = 3 }},
		{"negative max orders", func(c *Config) { c.MaxOrders = -1 }},
		{"too many workers", func(c *Config) { c.NotifyWorkers = 20000 }},
		{"a negative refund delay", func(c *Config) { c.RefundDelay = -time.Second }},
	} {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			if err := c.Validate(); !errors.Is(err, ErrConfig) {
				t.Fatalf("got %v", err)
			}
		})
	}
	t.Run("the zero values mean the defaults", func(t *testing.T) {
		c := ok
		if c.listen() != DefaultListen || c.signingMode() != ModePublicKey || c.rateLimit() != 600 ||
			c.maxOrders() != DefaultMaxOrders || c.speedup() != 1 || c.notifyTimeout() != 5*time.Second ||
			c.scaled(15*time.Second) != 15*time.Second {
			t.Fatal("defaults differ")
		}
		c.NotifySpeedup = 60
		if c.scaled(15*time.Second) != 250*time.Millisecond || c.refundDelay() != time.Second/60 {
			t.Fatal("speedup not applied")
		}
		c.RateLimit = RateLimitOff
		if c.rateLimit() != 0 {
			t.Fatal("RateLimitOff")
		}
	})
}

func TestClose(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.Clock = SystemClock })
	m := newMerchant(t, ts.Server, func(int) int { return 500 })
	pid := ts.c.prepay("CLOSE00001", "o", m.url)
	ts.c.pay(pid, "o")
	m.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ts.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := ts.c.try("GET", "/v3/certificates", nil, nil); err == nil {
		t.Fatal("served after Close")
	}
}
