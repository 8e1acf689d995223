package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/bench/rig"
)

// stack is the real wxpaysim and wxpayd processes on loopback, rig
// processes. wxpaysim runs for the whole test; wxpayd is killed and started
// again on the same data directory. Safe for concurrent use.
type stack struct {
	t      *testing.T
	sim    *rig.Sim
	simURL string
	base   string // wxpayd
	admin  string // admin bearer token
	shop   string // the shop's bearer token (POST /api/v1/checkouts)
	appID  string
	wxpayd rig.Cmd
	hc     *http.Client

	mu     sync.Mutex
	srv    *rig.Process // wxpayd, from startWxpayd on
	starts []time.Time  // when each wxpayd process was started
	kills  []time.Time  // when each SIGKILL was sent
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

const (
	adminToken = "chaos-admin-token-0123456789abcdef"
	shopToken  = "chaos-shop-token-0123456789abcdef"
)

func TestMain(m *testing.M) { rig.Main(m) }

// binaries builds wxpayd and wxpaysim from this tree; with CHAOS_WXPAYD
// set, that wxpayd binary is audited instead (another build, when
// bisecting).
func binaries(t *testing.T) map[string]string {
	t.Helper()
	if p := os.Getenv("CHAOS_WXPAYD"); p != "" {
		t.Logf("CHAOS_WXPAYD: auditing %s", p)
		bin := rig.Build(t, "./cmd/wxpaysim")
		bin["wxpayd"] = p
		return bin
	}
	return rig.Build(t, "./cmd/wxpayd", "./cmd/wxpaysim")
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

// newStack starts wxpaysim with simArgs on a fresh identity; wxpayd is
// started by startWxpayd.
func newStack(t *testing.T, dir string, bin map[string]string, opts wxpaydOptions, simArgs []string) *stack {
	t.Helper()
	listen := rig.FreeAddr(t)
	sim := rig.StartSim(t, bin["wxpaysim"], dir, "v3", listen, simArgs...)
	s := &stack{
		t: t, sim: sim, simURL: sim.URL, base: "http://" + listen, admin: adminToken, shop: shopToken,
		appID: rig.Getenv(sim.Env, "WXPAY_APPID"),
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
			DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		}},
	}
	if s.appID == "" {
		t.Fatal("wxpay.env has no WXPAY_APPID")
	}
	env := sim.WxpaydEnv(t, dir, listen, adminToken, append([]string{"WXPAYD_LOG_LEVEL=info", "WXPAYD_PREPAY_QPS=-1",
		"WXPAYD_SHOP_TOKEN_FILE=" + rig.WriteSecret(t, dir, "shop_token", shopToken)}, opts.set...)...)
	s.wxpayd = rig.Cmd{Path: bin["wxpayd"], Env: env, Log: filepath.Join(dir, "wxpayd.log"),
		Ready: s.base + "/readyz", ReadyWithin: 90 * time.Second}
	s.requireSimControl()
	return s
}

// startWxpayd starts wxpayd on the stack's data directory and waits until
// it is ready. Call it once, from the test's goroutine.
func (s *stack) startWxpayd() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starts = append(s.starts, time.Now())
	s.srv = rig.Start(s.t, s.wxpayd)
}

// restart SIGKILLs wxpayd, starts it again on the same data directory and
// waits until it is ready. Safe from any goroutine.
func (s *stack) restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kills = append(s.kills, time.Now())
	s.srv.Kill()
	s.starts = append(s.starts, time.Now())
	if err := s.srv.Restart(); err != nil {
		return fmt.Errorf("wxpayd start %d: %w", len(s.starts), err)
	}
	return nil
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
// running wxpayd logged at start: the log's last such line.
func (s *stack) brokerAddrs() []string {
	s.mu.Lock()
	logs := s.srv.Logs()
	s.mu.Unlock()
	var addrs []string
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg   string   `json:"msg"`
			Addrs []string `json:"addrs"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "embedded kafka broker" {
			addrs = l.Addrs
		}
	}
	return addrs
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

// keepLogs copies the run's logs (wxpaysim's, and wxpayd's of every start,
// one after another) to a directory that outlives the test and returns it.
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
	files := []string{s.sim.LogFile(), s.srv.LogFile()}
	s.mu.Unlock()
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			_ = os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644)
		}
	}
	return dst
}
