package deploycheck

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/bench/rig"
	"github.com/wxpayd/wxpayd/bench/sim"
	"github.com/wxpayd/wxpayd/sink/clickhouse"
	"github.com/wxpayd/wxpayd/sink/itest"
)

// proc is a process this test started; Cleanup stops it (by its own pid)
// and shows its log when the test failed.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(t testing.TB, dir, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log (tail):\n%s", name, b)
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to d; it returns the exit code.
func (p *proc) stop(t testing.TB, d time.Duration) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s did not stop within %v of SIGTERM", p.name, d)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("%s: %v", p.name, p.err)
	}
	return 0
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func do(method, url, auth string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func waitHTTP(t testing.TB, p *proc, url string, timeout time.Duration) {
	t.Helper()
	itest.Eventually(t, timeout, 100*time.Millisecond, p.name+" answering "+url, func() (bool, string) {
		if p.exited() {
			t.Fatalf("%s exited: %v", p.name, p.err)
		}
		code, _, err := do("GET", url, "", nil)
		return code == 200, fmt.Sprint(code, err)
	})
}

// scrape fetches a /metrics page and returns the names of the samples on
// it. A histogram's samples are name_bucket, name_sum and name_count, a
// summary's name (with quantile), name_sum and name_count, which is what
// a query names. client_golang writes no line at all (not even # HELP or
// # TYPE) for a labelled vector that has no child yet; the tests drive
// traffic until every vector the dashboards use has one, rather than
// trusting the code for names.
func scrape(url string) (map[string]bool, error) {
	code, body, err := do("GET", url, "", nil)
	if err != nil || code != 200 {
		return nil, fmt.Errorf("GET %s: %d %v", url, code, err)
	}
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		out[name] = true
	}
	return out, sc.Err()
}

func missing(want map[string][]string, have map[string]bool, keep func(string) bool) []string {
	var out []string
	for n := range want {
		if keep(n) && !have[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func isSinkMetric(n string) bool { return strings.HasPrefix(n, "wxpayd_sink_") }

// TestDashboardMetricsExistInWxpayd runs the binaries the Containerfile
// builds: wxpaysim (playing WeChat Pay, prepay limited to 1/s so it
// refuses some) and wxpayd with a fresh development identity and its
// embedded Kafka broker. It drives a login, prepays (some refused at
// wxpayd's own budget, some by the simulator) and a bad notification, so
// that every labelled metric has a series, then checks that each metric
// a dashboard or an alert rule (alerts.yml) queries (except the sink's,
// served by wxpaysink) is on wxpayd's live /metrics. Finally SIGTERM must stop wxpayd cleanly
// (exit 0) within the grace period the deploy files give it.
func TestDashboardMetricsExistInWxpayd(t *testing.T) {
	want := dashboardMetrics(t)
	for n, where := range ruleMetrics(t) { // the alert rules' metrics too
		want[n] = append(want[n], where...)
	}
	bin := containerBuild(t, "")
	dir := t.TempDir()
	simAddr, wxAddr := rig.FreeAddr(t), rig.FreeAddr(t)
	keys := filepath.Join(dir, "keys")
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir}

	out, err := exec.Command(filepath.Join(bin, "wxpaysim"), "keygen", "--dir", keys, "--sim-addr", simAddr,
		"--notify-url", "http://"+wxAddr+"/wxpay/v3/notify").CombinedOutput()
	if err != nil {
		t.Fatalf("wxpaysim keygen: %v\n%s", err, out)
	}
	simP := startProc(t, dir, "wxpaysim", base, filepath.Join(bin, "wxpaysim"), "serve", "--keys-dir", keys,
		"--listen", simAddr, "--rate-limit", "1", "--log-level", "warn")
	waitHTTP(t, simP, "http://"+simAddr+"/sim/v1/stats", 30*time.Second)

	admin, session := randomHex(16), randomHex(24)
	for name, v := range map[string]string{"admin_token": admin, "session_secret": session} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := append([]string{}, base...)
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, keys, sim.FileEnv)))
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "WXPAY") {
			env = append(env, l)
		}
	}
	env = append(env,
		"WXPAYD_LISTEN="+wxAddr, "WXPAYD_DATA_DIR="+filepath.Join(dir, "data"),
		"WXPAYD_ADMIN_TOKEN_FILE="+filepath.Join(dir, "admin_token"),
		"WXPAYD_SESSION_SECRET_FILE="+filepath.Join(dir, "session_secret"),
		"WXPAYD_PREPAY_QPS=5", // burst 1, 200 ms wait at most: concurrent prepays are refused at admission
		"WXPAYD_LOG_LEVEL=info",
	)
	wx := startProc(t, dir, "wxpayd", env, filepath.Join(bin, "wxpayd"))
	url := "http://" + wxAddr
	waitHTTP(t, wx, url+"/readyz", 60*time.Second)

	first, err := scrape(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if absent := missing(want, first, func(n string) bool { return !isSinkMetric(n) }); len(absent) > 0 {
		t.Logf("before any traffic, /metrics lacks (labelled vectors without a child): %s", strings.Join(absent, " "))
	}

	// A SKU, a buyer, then prepays and a notification until every vector
	// the dashboards use has a series.
	if code, b, err := do("PUT", url+"/admin/v1/skus/tea", admin, map[string]any{
		"description": "tea", "price": 1, "stock": 100000, "per_buyer_limit": 100000,
	}); err != nil || code/100 != 2 {
		t.Fatalf("PUT sku: %d %s %v", code, b, err)
	}
	code, b, err := do("POST", url+"/api/v1/login", "", map[string]string{"code": "code-deploycheck"})
	if err != nil || code != 200 {
		t.Fatalf("login: %d %s %v", code, b, err)
	}
	var login struct{ Token string }
	if err := json.Unmarshal(b, &login); err != nil || login.Token == "" {
		t.Fatalf("login answer %s: %v", b, err)
	}
	statuses := map[int]int{}
	var mu sync.Mutex
	var have map[string]bool
	itest.Eventually(t, 60*time.Second, 100*time.Millisecond, "every dashboard metric on wxpayd's /metrics", func() (bool, string) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, _, _ := do("POST", url+"/api/v1/orders", login.Token, map[string]any{"sku": "tea", "quantity": 1})
				mu.Lock()
				statuses[code]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		_, _, _ = do("POST", url+"/wxpay/v3/notify", "", map[string]string{"id": "not-signed"})
		var err error
		if have, err = scrape(url + "/metrics"); err != nil {
			return false, err.Error()
		}
		m := missing(want, have, func(n string) bool { return !isSinkMetric(n) })
		return len(m) == 0, fmt.Sprintf("missing %v; order answers %v", m, statuses)
	})
	t.Logf("order answers by status: %v", statuses)
	var checked []string
	for n := range want {
		if !isSinkMetric(n) {
			checked = append(checked, n)
		}
	}
	sort.Strings(checked)
	t.Logf("all %d dashboard metrics of wxpayd are live: %s", len(checked), strings.Join(checked, " "))
	var unused []string
	for n := range have {
		if strings.HasPrefix(n, "wxpayd_") && len(want[n]) == 0 &&
			!strings.HasSuffix(n, "_sum") && !strings.HasSuffix(n, "_count") && !strings.HasSuffix(n, "_bucket") {
			unused = append(unused, n)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Logf("wxpayd metrics no dashboard shows: %v", unused)
	}

	// The RSA backend the CGO build chose: OpenSSL when this machine has
	// libcrypto.so.3, as the runtime image does.
	logs := string(readFile(t, wx.log))
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"); err == nil && !strings.Contains(logs, `"backend":"openssl"`) {
		t.Errorf("libcrypto.so.3 is here but wxpayd (CGO build) did not choose the OpenSSL backend")
	}

	start := time.Now()
	if code := wx.stop(t, 75*time.Second); code != 0 {
		t.Errorf("wxpayd exited %d after SIGTERM, want 0", code)
	}
	t.Logf("wxpayd stopped in %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	simP.stop(t, 15*time.Second)
}

// TestDashboardSinkMetricsExistInWxpaysink runs wxpaysink (as the
// Containerfile builds it) against the real Kafka and ClickHouse, with
// its metrics endpoint, and checks every wxpayd_sink_* metric a dashboard
// queries. The sink registers its metrics once ClickHouse is open; they
// are plain counters, gauges and a histogram, so they appear at once.
func TestDashboardSinkMetricsExistInWxpaysink(t *testing.T) {
	want := dashboardMetrics(t)
	kafka, ch := service(t, "KAFKA_ADDR"), service(t, "CLICKHOUSE_ADDR")
	bin := containerBuild(t, "")
	dir := t.TempDir()
	db := uniqueName("deploycheck")
	metricsAddr := rig.FreeAddr(t)
	t.Cleanup(func() { dropDatabase(t, ch, db) })
	p := startProc(t, dir, "wxpaysink", []string{
		"PATH=" + os.Getenv("PATH"),
		"WXPAYD_KAFKA_BROKERS=" + kafka, "WXPAYD_CLICKHOUSE_ADDR=" + ch, "WXPAYD_CLICKHOUSE_DATABASE=" + db,
		"WXPAYD_KAFKA_TOPIC=" + db, "WXPAYD_SINK_GROUP=" + db, "WXPAYD_SINK_METRICS_ADDR=" + metricsAddr,
	}, filepath.Join(bin, "wxpaysink"))
	var have map[string]bool
	itest.Eventually(t, 90*time.Second, 100*time.Millisecond, "the sink's metrics on wxpaysink's /metrics", func() (bool, string) {
		if p.exited() {
			t.Fatalf("wxpaysink exited: %v", p.err)
		}
		var err error
		if have, err = scrape("http://" + metricsAddr + "/metrics"); err != nil {
			return false, err.Error()
		}
		m := missing(want, have, isSinkMetric)
		return len(m) == 0, fmt.Sprintf("missing %v", m)
	})
	var checked []string
	for n := range want {
		if isSinkMetric(n) {
			checked = append(checked, n)
		}
	}
	sort.Strings(checked)
	t.Logf("all %d dashboard metrics of the sink are live: %s", len(checked), strings.Join(checked, " "))
	if code := p.stop(t, 45*time.Second); code != 0 {
		t.Errorf("wxpaysink exited %d after SIGTERM, want 0", code)
	}
}

func dropDatabase(t testing.TB, addr, db string) {
	conn, err := clickhouse.Dial(clickhouse.Config{Addr: addr}.WithDefaults(), "default")
	if err != nil {
		t.Logf("drop database %s: %v", db, err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		t.Logf("drop database %s: %v", db, err)
	}
}
