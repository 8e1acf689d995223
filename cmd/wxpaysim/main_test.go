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
