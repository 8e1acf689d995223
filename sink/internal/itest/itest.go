// Package itest has the helpers of the sink's integration tests: the
// addresses of the real Kafka and ClickHouse that deploy/local starts,
// unique names, and polling.
package itest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const howTo = "start the real services first: `make services-up` (or `bash deploy/local/services.sh up`), " +
	"then `eval \"$(bash deploy/local/services.sh env)\"` to export KAFKA_ADDR and CLICKHOUSE_ADDR"

func need(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	if os.Getenv("WXPAYD_INTEGRATION") == "1" {
		t.Fatalf("%s is not set and WXPAYD_INTEGRATION=1: %s", name, howTo)
	}
	t.Skipf("%s is not set: %s (with WXPAYD_INTEGRATION=1 this fails instead)", name, howTo)
	return ""
}

// Kafka returns KAFKA_ADDR, or skips (fails with WXPAYD_INTEGRATION=1).
func Kafka(t testing.TB) string { t.Helper(); return need(t, "KAFKA_ADDR") }

// ClickHouse returns CLICKHOUSE_ADDR, or skips (fails with WXPAYD_INTEGRATION=1).
func ClickHouse(t testing.TB) string { t.Helper(); return need(t, "CLICKHOUSE_ADDR") }

// Name returns prefix plus a random suffix, a valid Kafka topic and
// ClickHouse identifier, unique to this call.
func Name(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// Eventually polls cond every interval until it returns true or timeout passes.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last: %s)", what, timeout, last)
		}
		time.Sleep(interval)
	}
}

// RepoRoot is the module root (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for !strings.HasSuffix(dir, string(filepath.Separator)) && dir != "." {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		dir = filepath.Dir(dir)
	}
	t.Fatal("go.mod not found above " + file)
	return ""
}
