package deploycheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/sink"
)

// repoRoot is the wxpayd repository (two levels above this module).
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

func readFile(t testing.TB, path ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(path...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setting is one row of docs/configuration.md, the table that
// cmd/wxpayd's own test keeps in step with its settings.
type setting struct {
	Name     string
	Default  string
	Required bool
}

var settingRow = regexp.MustCompile("(?m)^\\| `(WXPAYD?_[A-Z0-9_]+)` \\|([^|]*)\\|(.*)\\|\\s*$")

// wxpaydSettings reads wxpayd's settings from docs/configuration.md.
func wxpaydSettings(t testing.TB) map[string]setting {
	t.Helper()
	doc := readFile(t, repoRoot(t), "docs", "configuration.md")
	out := map[string]setting{}
	for _, m := range settingRow.FindAllStringSubmatch(string(doc), -1) {
		out[m[1]] = setting{
			Name:     m[1],
			Default:  strings.Trim(strings.TrimSpace(m[2]), "`"),
			Required: strings.Contains(m[3], "(required)"),
		}
	}
	if len(out) < 20 {
		t.Fatalf("docs/configuration.md: only %d settings parsed; has the table changed?", len(out))
	}
	return out
}

// flagName is cmd/wxpayd's flag for a setting (WXPAYD_ORDER_TTL →
// wxpayd-order-ttl).
func flagName(env string) string { return strings.ToLower(strings.ReplaceAll(env, "_", "-")) }

var getenvLiteral = regexp.MustCompile(`os\.Getenv\("(WXPAYD?_[A-Z0-9_]+)"\)`)

// sinkSettings are the variables wxpaysink reads: the sink package's
// Env* constants and the os.Getenv literals of cmd/wxpaysink.
func sinkSettings(t testing.TB) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, v := range []string{sink.EnvKafkaBrokers, sink.EnvKafkaTopic, sink.EnvGroupID, sink.EnvClickHouseAddr,
		sink.EnvClickHouseDatabase, sink.EnvClickHouseUser, sink.EnvClickHousePassword, sink.EnvBatchSize, sink.EnvFlushInterval} {
		out[v] = true
	}
	src := readFile(t, repoRoot(t), "cmd", "wxpaysink", "main.go")
	for _, m := range getenvLiteral.FindAllStringSubmatch(string(src), -1) {
		out[m[1]] = true
	}
	return out
}

// requiredWxpayd lists the settings wxpayd refuses to start without.
func requiredWxpayd(t testing.TB) []string {
	var out []string
	for _, s := range wxpaydSettings(t) {
		if s.Required {
			out = append(out, s.Name)
		}
	}
	sort.Strings(out)
	return out
}

// hasWechatKey tells whether env names a WeChat Pay key the way wxpayd
// requires one: a public key with its id, platform certificates, or
// certificate refresh.
func hasWechatKey(env map[string]string) bool {
	return env["WXPAY_PUBLIC_KEY_FILE"] != "" && env["WXPAY_PUBLIC_KEY_ID"] != "" ||
		env["WXPAY_PLATFORM_CERT_FILES"] != "" || env["WXPAY_CERT_REFRESH"] != ""
}

var shardRE = regexp.MustCompile(`^[0-9A-Z]{2}$`)

const howToServices = "start the real services first: `make services-up` (or `bash deploy/local/services.sh up`), " +
	"then `eval \"$(bash deploy/local/services.sh env)\"` to export KAFKA_ADDR and CLICKHOUSE_ADDR"

// service returns the address in the environment variable name; without
// it the test skips, or fails when WXPAYD_INTEGRATION=1 (make test).
func service(t testing.TB, name string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	if os.Getenv("WXPAYD_INTEGRATION") == "1" {
		t.Fatalf("%s is not set and WXPAYD_INTEGRATION=1: %s", name, howToServices)
	}
	t.Skipf("%s is not set: %s (with WXPAYD_INTEGRATION=1 this fails instead)", name, howToServices)
	return ""
}

// uniqueName is prefix plus a suffix unique to this process and call.
var uniqueSeq struct {
	sync.Mutex
	n int
}

func uniqueName(prefix string) string {
	uniqueSeq.Lock()
	defer uniqueSeq.Unlock()
	uniqueSeq.n++
	return fmt.Sprintf("%s_%d_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9, uniqueSeq.n)
}
