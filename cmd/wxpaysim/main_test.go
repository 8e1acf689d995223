package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestApplyEnv(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9090", "")
	latency := fs.Duration("latency", 0, "")
	rate := fs.Int("rate-limit", 600, "")
	speed := fs.Float64("notify-speedup", 1, "")
	if err := fs.Parse([]string{"--listen", "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"WXPAYSIM_LISTEN": "127.0.0.1:2", "WXPAYSIM_LATENCY": "30ms", "WXPAYSIM_RATE_LIMIT": "0",
		"WXPAYSIM_NOTIFY_SPEEDUP": "60",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := applyEnv(fs, lookup); err != nil {
		t.Fatal(err)
	}
	if *listen != "127.0.0.1:1" {
		t.Fatalf("the command line must win over the environment: %s", *listen)
	}
	if *latency != 30*time.Millisecond || *rate != 0 || *speed != 60 {
		t.Fatalf("env not applied: %v %d %v", *latency, *rate, *speed)
	}
	env["WXPAYSIM_LATENCY"] = "soon"
	fs2 := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs2.Duration("latency", 0, "")
	if err := applyEnv(fs2, lookup); err == nil || !strings.Contains(err.Error(), "WXPAYSIM_LATENCY") {
		t.Fatalf("bad value: %v", err)
	}
}

func TestExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	if c := run(nil, &out, &errb); c != exitUsage {
		t.Fatalf("no command: %d", c)
	}
	if c := run([]string{"bogus"}, &out, &errb); c != exitUsage {
		t.Fatalf("unknown command: %d", c)
	}
	if c := run([]string{"keygen"}, &out, &errb); c != exitUsage {
		t.Fatalf("keygen without --dir: %d", c)
	}
	if c := run([]string{"serve", "--keys-dir", filepath.Join(t.TempDir(), "none"), "--rsa-backend", "go"}, &out, &errb); c != exitConfig {
		t.Fatalf("serve with a missing keys dir: %d (%s)", c, errb.String())
	}
	if c := run([]string{"serve", "--keys-dir", "x", "--signing-mode", "rsa", "--rsa-backend", "go"}, &out, &errb); c != exitConfig {
		t.Fatalf("serve with a bad mode: %d", c)
	}
	dir := t.TempDir()
	if c := run([]string{"keygen", "--dir", dir, "--sim-addr", "127.0.0.1:19999"}, &out, &errb); c != exitOK {
		t.Fatalf("keygen: %d %s", c, errb.String())
	}
	env, err := os.ReadFile(filepath.Join(dir, "wxpay.env"))
	if err != nil || !strings.Contains(string(env), "WXPAY_API_BASE=http://127.0.0.1:19999\n") {
		t.Fatalf("wxpay.env: %s %v", env, err)
	}
}

func TestFaultFlags(t *testing.T) {
	// Not parallel: one case sets WXPAYSIM_FAULTS.
	for _, tc := range []struct {
		name string
		args []string
		env  string // WXPAYSIM_FAULTS, when set
		code int
		msg  string
	}{
		{"an unknown fault endpoint is a usage error", []string{"--faults", "refunds.lost=0.1"}, "", exitUsage, "unknown endpoint"},
		{"an unknown fault kind is a usage error", []string{"--faults", "refund.timeout=0.1"}, "", exitUsage, "unknown kind"},
		{"a fault rate above 1 is a usage error", []string{"--faults", "all.lost=2"}, "", exitUsage, "[0, 1]"},
		{"a bad WXPAYSIM_FAULTS is a usage error", nil, "all.nap=0.1", exitUsage, "WXPAYSIM_FAULTS"},
		{"bad refund outcomes are a usage error", []string{"--refund-outcomes", "success=0.5"}, "", exitUsage, "add up"},
		{"a bad --slow-delay is a usage error", []string{"--slow-delay", "soon"}, "", exitUsage, "slow-delay"},
		{"a negative --slow-delay is a configuration error", []string{"--slow-delay", "-1s"}, "", exitConfig, "slow-delay"},
		{"valid specs pass on to the keys check", []string{"--faults", "all.system_error=0.05,refund.lost=0.1,prepay.slow=0.01",
			"--refund-outcomes", "success=0.9,closed=0.05,abnormal=0.05", "--slow-delay", "30s"}, "", exitConfig, "keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("WXPAYSIM_FAULTS", tc.env)
			}
			var out, errb bytes.Buffer
			args := append([]string{"serve", "--keys-dir", filepath.Join(t.TempDir(), "none"), "--rsa-backend", "go"}, tc.args...)
			if c := run(args, &out, &errb); c != tc.code || !strings.Contains(errb.String(), tc.msg) {
				t.Fatalf("exit %d, want %d; stderr %q lacks %q", c, tc.code, errb.String(), tc.msg)
			}
		})
	}
}
