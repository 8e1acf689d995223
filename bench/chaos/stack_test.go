package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stack is the real wxpaysim and wxpayd processes on loopback. wxpaysim
// runs for the whole test; wxpayd is killed and started again on the same
// data directory. Safe for concurrent use.
type stack struct {
	t      *testing.T
	dir    string
	bin    map[string]string
	simURL string
	base   string // wxpayd
	admin  string // admin bearer token
	appID  string
	env    []string
	sim    *exec.Cmd
	simLog string
	hc     *http.Client

	mu      sync.Mutex
	srv     *exec.Cmd
	srvDone chan struct{}
	starts  []time.Time // when each wxpayd process was started
	kills   []time.Time // when each SIGKILL was sent
	logs    []string    // one log file per wxpayd process
}

// wxpaydOptions are the wxpayd settings the harness depends on for timing,
// as configured (or wxpayd's defaults when a setting does not exist).
type wxpaydOptions struct {
	ttl        time.Duration // WXPAYD_ORDER_TTL
	queryAfter time.Duration // first active query after prepay
	closeGrace time.Duration // a CREATED order is closed after this
	callLimit  time.Duration // the longest a WeChat call of wxpayd waits (prepay or background)
	set        []string      // NAME=value given to wxpayd, for the log
}

// optional wxpayd settings: applied when `wxpayd -h` lists them, so the
// run gets shorter as wxpayd grows knobs and never depends on one that is
// not there. Values are chosen so that wxpaysim's --slow-delay exceeds the
// call timeouts and the timers fire within the run.
var optionalSettings = []struct{ env, value string }{
	{"WXPAYD_PREPAY_TIMEOUT", "2s"},
	{"WXPAYD_CALL_TIMEOUT", "2s"},
	{"WXPAYD_WECHAT_TIMEOUT", "2s"},
	{"WXPAYD_BACKGROUND_CALL_TIMEOUT", "2s"},
	{"WXPAYD_QUERY_AFTER", "10s"},
	{"WXPAYD_CLOSE_GRACE", "20s"},
}

const adminToken = "chaos-admin-token-0123456789abcdef"

// buildBinaries builds wxpayd and wxpaysim from this tree into dir; with
// CHAOS_WXPAYD set, that wxpayd binary is audited instead (another build,
// when bisecting).
func buildBinaries(t *testing.T, dir string) map[string]string {
	t.Helper()
	t0 := time.Now()
	pkgs := []string{"github.com/wxpayd/wxpayd/cmd/wxpaysim"}
	out := map[string]string{"wxpayd": filepath.Join(dir, "wxpayd"), "wxpaysim": filepath.Join(dir, "wxpaysim")}
	if p := os.Getenv("CHAOS_WXPAYD"); p != "" {
		out["wxpayd"] = p
		t.Logf("CHAOS_WXPAYD: auditing %s", p)
	} else {
		pkgs = append(pkgs, "github.com/wxpayd/wxpayd/cmd/wxpayd")
	}
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %v: %v\n%s", pkgs, err, b)
	}
	t.Logf("built %d binaries in %.1f s", len(pkgs), time.Since(t0).Seconds())
	return out
}

// helpText is what a binary prints for -h (it exits 0 or 2: both fine).
func helpText(bin string, args ...string) string {
	out, _ := exec.Command(bin, append(args, "-h")...).CombinedOutput()
	return string(out)
}

// simFlags reports which of wxpaysim serve's flags exist.
func simFlags(simBin string) map[string]bool {
	h := helpText(simBin, "serve")
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(h, -1) {
		out[m[1]] = true
	}
	return out
}

// requireSimControl fails unless the running wxpaysim has the control API
// the run needs: runtime faults and the ledger.
func (s *stack) requireSimControl() {
	for _, path := range []string{"/sim/v1/faults", "/sim/v1/ledger"} {
		if a := s.do(context.Background(), "GET", s.simURL+path, "", nil); !a.ok() {
			s.t.Fatalf("wxpaysim: GET %s: %s: the chaos audit needs wxpaysim's API fault injection and ledger (bench/sim/README.md)", path, a)
		}
	}
}

// cleanEnv is the test's environment without wxpayd's and wxpaysim's own
// settings, so a developer's shell cannot leak into the stack.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "WXPAY_") || strings.HasPrefix(kv, "WXPAYD_") || strings.HasPrefix(kv, "WXPAYSIM_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeSecret(t *testing.T, dir, name, v string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readEnvFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, strings.TrimPrefix(l, "export "))
		}
	}
	return out
}

// newStack generates an identity and starts wxpaysim with simArgs; wxpayd
// is started by startWxpayd.
func newStack(t *testing.T, dir string, bin map[string]string, opts wxpaydOptions, simArgs []string) *stack {
	t.Helper()
	simAddr, listen := freeAddr(t), freeAddr(t)
	keys := filepath.Join(dir, "keys")
	if b, err := exec.Command(bin["wxpaysim"], "keygen", "--dir", keys, "--sim-addr", simAddr,
		"--notify-url", "http://"+listen+"/wxpay/v3/notify").CombinedOutput(); err != nil {
		t.Fatalf("wxpaysim keygen: %v\n%s", err, b)
	}
	s := &stack{
		t: t, dir: dir, bin: bin, simURL: "http://" + simAddr, base: "http://" + listen, admin: adminToken,
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
			DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		}},
	}
	s.env = readEnvFile(t, filepath.Join(keys, "wxpay.env"))
	for _, kv := range s.env {
		if v, ok := strings.CutPrefix(kv, "WXPAY_APPID="); ok {
			s.appID = strings.Trim(v, `"'`)
		}
	}
	s.env = append(s.env,
		"WXPAYD_LISTEN="+listen, "WXPAYD_DATA_DIR="+filepath.Join(dir, "data"),
		"WXPAYD_ADMIN_TOKEN_FILE="+writeSecret(t, dir, "admin", adminToken),
		"WXPAYD_SESSION_SECRET_FILE="+writeSecret(t, dir, "session", strings.Repeat("chaos-session-", 4)),
		"WXPAYD_LOG_LEVEL=info", "WXPAYD_PREPAY_QPS=-1")
	s.env = append(s.env, opts.set...)
	if s.appID == "" {
		t.Fatal("wxpay.env has no WXPAY_APPID")
	}

	s.simLog = filepath.Join(dir, "wxpaysim.log")
	f, err := os.Create(s.simLog)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--keys-dir", keys, "--listen", simAddr}, simArgs...)
	s.sim = exec.Command(bin["wxpaysim"], args...)
	s.sim.Env = cleanEnv()
	s.sim.Stdout, s.sim.Stderr = f, f
	if err := s.sim.Start(); err != nil {
		t.Fatal(err)
	}
	simDone := make(chan struct{})
	go func() { _ = s.sim.Wait(); f.Close(); close(simDone) }()
	t.Cleanup(func() {
		_ = s.sim.Process.Signal(syscall.SIGTERM)
		select {
		case <-simDone:
		case <-time.After(15 * time.Second):
			_ = s.sim.Process.Kill()
			<-simDone
		}
	})
	if err := s.waitOK(s.simURL+"/sim/v1/health", 30*time.Second, simDone); err != nil {
		t.Fatalf("wxpaysim %v did not come up: %v\n%s", args, err, tail(s.simLog, 30))
	}
	s.requireSimControl()
	t.Cleanup(s.stopWxpayd)
	return s
}

// waitOK polls url until it answers 200, the deadline passes or done closes
// (the process exited).
func (s *stack) waitOK(url string, within time.Duration, done <-chan struct{}) error {
	deadline := time.Now().Add(within)
	hc := &http.Client{Timeout: time.Second}
	for {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-done:
			return errors.New("the process exited")
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startWxpayd starts wxpayd on the stack's data directory and waits until
// it is ready. Call it from the test's goroutine.
func (s *stack) startWxpayd() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startLocked(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *stack) startLocked() error {
	logPath := filepath.Join(s.dir, fmt.Sprintf("wxpayd.%02d.log", len(s.logs)))
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin["wxpayd"])
	cmd.Env = append(cleanEnv(), s.env...)
	cmd.Stdout, cmd.Stderr = f, f
	s.starts = append(s.starts, time.Now())
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	s.srv, s.srvDone = cmd, done
	s.logs = append(s.logs, logPath)
	if err := s.waitOK(s.base+"/readyz", 90*time.Second, done); err != nil {
		return fmt.Errorf("wxpayd start %d did not become ready: %v\n%s", len(s.logs), err, tail(logPath, 40))
	}
	return nil
}

// restart SIGKILLs wxpayd and starts it again on the same data directory.
// Safe from any goroutine.
func (s *stack) restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
	return s.startLocked()
}

func (s *stack) killLocked() {
	if s.srv == nil {
		return
	}
	s.kills = append(s.kills, time.Now())
	_ = s.srv.Process.Kill()
	<-s.srvDone
	s.srv = nil
}

// stopWxpayd stops wxpayd gracefully (SIGTERM, then SIGKILL after 30 s).
func (s *stack) stopWxpayd() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	_ = s.srv.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.srvDone:
	case <-time.After(30 * time.Second):
		_ = s.srv.Process.Kill()
		<-s.srvDone
	}
	s.srv = nil
}

// restartTimes returns the moments wxpayd was (re)started, for the call
// spacing check: a process that starts resumes its timers at once.
func (s *stack) restartTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.starts...)
}

func (s *stack) killCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.kills)
}

// brokerAddrs returns the embedded Kafka broker's addresses that the
// running wxpayd logged at start.
func (s *stack) brokerAddrs() []string {
	s.mu.Lock()
	path := s.logs[len(s.logs)-1]
	s.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg   string   `json:"msg"`
			Addrs []string `json:"addrs"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "embedded kafka broker" {
			return l.Addrs
		}
	}
	return nil
}

// answer is one HTTP exchange's result; err is a transport failure.
type answer struct {
	status     int
	body       []byte
	retryAfter time.Duration
	err        error
}

func (a answer) ok() bool { return a.err == nil && a.status >= 200 && a.status < 300 }

// code is the error code of a wxpayd ({"error":{"code"}}) or wxpaysim
// ({"code"}) error answer.
func (a answer) code() string {
	var v struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
		Code string `json:"code"`
	}
	_ = json.Unmarshal(a.body, &v)
	if v.Error.Code != "" {
		return v.Error.Code
	}
	return v.Code
}

func (a answer) String() string {
	if a.err != nil {
		return "transport: " + a.err.Error()
	}
	if c := a.code(); c != "" {
		return strconv.Itoa(a.status) + " " + c
	}
	return strconv.Itoa(a.status)
}

// transient reports an answer after which the same request may be sent
// again: no answer, 429, 5xx, an order still being created, or the 400
// "malformed request" fasthttp writes on a connection whose first request
// did not arrive within wxpayd's read timeout (Go's transport keeps such
// spare connections; a request sent on one as the timeout fires reads that
// 400, unprocessed, as its answer).
func (a answer) transient() bool {
	return a.err != nil || a.status == 429 || a.status >= 500 || a.status == 409 && a.code() == "ORDER_IN_PROGRESS" ||
		a.malformed()
}

func (a answer) malformed() bool {
	return a.status == 400 && bytes.Contains(a.body, []byte(`"malformed request"`))
}

// do sends one request. auth is a bearer token; hdr are extra headers.
func (s *stack) do(ctx context.Context, method, url, auth string, body any, hdr ...string) answer {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return answer{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{err: err}
	}
	a := answer{status: resp.StatusCode, body: b}
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n >= 0 {
		a.retryAfter = time.Duration(n) * time.Second
	}
	return a
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// keepLogs copies the run's logs to a directory that outlives the test and
// returns it.
func (s *stack) keepLogs(seed uint64) string {
	dst := os.Getenv("CHAOS_KEEP")
	if dst == "" {
		var err error
		if dst, err = os.MkdirTemp("", fmt.Sprintf("chaos-%d-", seed)); err != nil {
			return ""
		}
	} else if err := os.MkdirAll(dst, 0o755); err != nil {
		return ""
	}
	s.mu.Lock()
	files := append([]string{s.simLog}, s.logs...)
	s.mu.Unlock()
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			_ = os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644)
		}
	}
	return dst
}
