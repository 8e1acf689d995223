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
	"sync"
	"syscall"
	"testing"
	"time"
)

const howTo = "start the real services first: `make services-up` (or `bash deploy/local/services.sh up`), " +
	"then `eval \"$(bash deploy/local/services.sh env)\"` to export KAFKA_ADDR and CLICKHOUSE_ADDR"

func need(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		lock(t, syscall.LOCK_SH)
		return v
	}
	if os.Getenv("WXPAYD_INTEGRATION") == "1" {
		t.Fatalf("%s is not set and WXPAYD_INTEGRATION=1: %s", name, howTo)
	}
	t.Skipf("%s is not set: %s (with WXPAYD_INTEGRATION=1 this fails instead)", name, howTo)
	return ""
}

// The outage tests stop the shared services. go test runs packages in
// parallel processes, so every integration test of the sink holds a shared
// lock on one file while it runs, and an outage test holds it exclusively:
// no sink test sees a service vanish under it. (Tests in one package run one
// after another, so a process holds at most one kind at a time.)
var (
	lockMu    sync.Mutex
	exclusive bool // this process holds the exclusive lock for the running test
)

func lock(t testing.TB, how int) {
	t.Helper()
	lockMu.Lock()
	defer lockMu.Unlock()
	if exclusive {
		return
	}
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "wxpayd-sink-services.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("services lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		_ = f.Close()
		t.Fatalf("services lock: %v", err)
	}
	if how == syscall.LOCK_EX {
		exclusive = true
	}
	t.Cleanup(func() {
		lockMu.Lock()
		defer lockMu.Unlock()
		if how == syscall.LOCK_EX {
			exclusive = false
		}
		_ = f.Close() // releases the lock
	})
}

// Outage marks a test that stops shared services: it waits until no other
// sink integration test runs and keeps new ones waiting until it ends. Call
// it first, before Kafka or ClickHouse. It skips like them when the
// services are not configured.
func Outage(t testing.TB) {
	t.Helper()
	if os.Getenv("KAFKA_ADDR") == "" || os.Getenv("CLICKHOUSE_ADDR") == "" {
		need(t, "KAFKA_ADDR")
		need(t, "CLICKHOUSE_ADDR")
	}
	lock(t, syscall.LOCK_EX)
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
