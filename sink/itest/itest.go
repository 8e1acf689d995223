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

// The variables of the gate.
const (
	// EnvIntegration set to "1" makes a missing service fail the test.
	EnvIntegration = "WXPAYD_INTEGRATION"
	// EnvKafka is the address (host:port) of the real Kafka.
	EnvKafka = "KAFKA_ADDR"
	// EnvClickHouse is the address (host:port) of ClickHouse's native protocol.
	EnvClickHouse = "CLICKHOUSE_ADDR"
)

// howTo is the skip and failure message's advice.
const howTo = "start the real services first: `make services-up` (or `bash deploy/local/services.sh up`), " +
	"then `eval \"$(bash deploy/local/services.sh env)\"` to export " + EnvKafka + " and " + EnvClickHouse

// Integration reports whether WXPAYD_INTEGRATION=1: the services must be
// there and a test that needs one fails without it.
func Integration() bool { return os.Getenv(EnvIntegration) == "1" }

// Kafka returns KAFKA_ADDR. When it is not set the test fails with
// WXPAYD_INTEGRATION=1 and skips otherwise.
func Kafka(t testing.TB) string { t.Helper(); return need(t, EnvKafka) }

// ClickHouse returns CLICKHOUSE_ADDR. When it is not set the test fails
// with WXPAYD_INTEGRATION=1 and skips otherwise.
func ClickHouse(t testing.TB) string { t.Helper(); return need(t, EnvClickHouse) }

// Optional returns KAFKA_ADDR and CLICKHOUSE_ADDR, each "" when unset, for
// a test that runs without the real services too. With
// WXPAYD_INTEGRATION=1 both must be set or the test fails.
func Optional(t testing.TB) (kafka, clickhouse string) {
	t.Helper()
	kafka, clickhouse = os.Getenv(EnvKafka), os.Getenv(EnvClickHouse)
	if (kafka == "" || clickhouse == "") && Integration() {
		t.Fatalf("%s=%q and %s=%q, but %s=1 needs both: %s",
			EnvKafka, kafka, EnvClickHouse, clickhouse, EnvIntegration, howTo)
	}
	if kafka != "" || clickhouse != "" {
		lock(t, syscall.LOCK_SH)
	}
	return kafka, clickhouse
}

// Outage marks a test that stops the shared services: it waits until no
// other test that took them from this package runs, and keeps new ones
// waiting until it ends. Call it first, before Kafka, ClickHouse or
// Optional. It fails or skips like them when either service is not set.
func Outage(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvKafka) == "" || os.Getenv(EnvClickHouse) == "" {
		need(t, EnvKafka)
		need(t, EnvClickHouse)
	}
	lock(t, syscall.LOCK_EX)
}

func need(t testing.TB, name string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		lock(t, syscall.LOCK_SH)
		return v
	}
	if Integration() {
		t.Fatalf("%s is not set and %s=1: %s", name, EnvIntegration, howTo)
	}
	t.Skipf("%s is not set: %s (with %s=1 this fails instead)", name, howTo, EnvIntegration)
	return ""
}

// The services lock (see the package comment). Tests of one package run
// one after another unless they are parallel, so a process holds one kind
// at a time; once this process holds it exclusively, further requests of
// the same test take nothing.
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
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "wxpayd-services.lock"), os.O_CREATE|os.O_RDWR, 0o666)
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

// Name returns prefix plus a random suffix: a valid Kafka topic and
// ClickHouse identifier, unique to this call.
func Name(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// Eventually polls cond every interval until it returns true, and fails
// the test with what and cond's last message (if it gave one) if timeout
// passes first. It is the module's one poll of this kind: bench/rig's
// Eventually is this one every 100 ms.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if msg == "" {
				t.Fatalf("%s: not within %v", what, timeout)
			}
			t.Fatalf("%s: not within %v (last: %s)", what, timeout, msg)
		}
		time.Sleep(interval)
	}
}

// RepoRoot returns the module root, the directory of go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	for dir := filepath.Dir(file); !strings.HasSuffix(dir, string(filepath.Separator)) && dir != "."; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
	}
	t.Fatal("go.mod not found above " + file)
	return ""
}
