package rig_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/bench/rig"
)

// TestMain runs the tests, or, with RIG_CHILD set, is the child process
// the tests start.
func TestMain(m *testing.M) {
	if mode := os.Getenv("RIG_CHILD"); mode != "" {
		beChild(mode)
	}
	rig.Main(m)
}

// beChild exits at once with status 3 (mode "exit"), or answers 200 on
// RIG_ADDR's /ready and says what it saw until SIGTERM ("serve").
func beChild(mode string) {
	if mode == "exit" {
		fmt.Println("child: exiting")
		os.Exit(3)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	ln, err := net.Listen("tcp", os.Getenv("RIG_ADDR"))
	if err != nil {
		fmt.Println("child:", err)
		os.Exit(1)
	}
	fmt.Printf("child: serving, WXPAYD_LEAK=%q RIG_GIVEN=%q\n", os.Getenv("WXPAYD_LEAK"), os.Getenv("RIG_GIVEN"))
	go func() { _ = http.Serve(ln, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})) }()
	<-term
	fmt.Println("child: SIGTERM")
	os.Exit(0)
}

func child(t *testing.T, mode, addr string) rig.Cmd {
	return rig.Cmd{Path: os.Args[0], Args: []string{"-test.run=^$"}, Log: filepath.Join(t.TempDir(), "child.log"),
		Env: []string{"RIG_CHILD=" + mode, "RIG_ADDR=" + addr, "RIG_GIVEN=yes"}}
}

// gone reports whether no process has pid (a reaped child's pid is free).
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

func TestProcessKillRestartAndLog(t *testing.T) {
	t.Setenv("WXPAYD_LEAK", "from the developer's shell")
	addr := rig.FreeAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("FreeAddr %q is not on 127.0.0.1", addr)
	}
	c := child(t, "serve", addr)
	c.Ready, c.ReadyWithin = "http://"+addr+"/ready", 30*time.Second
	p := rig.Start(t, c) // and waits for /ready
	first := p.Pid()

	p.Kill()
	if !gone(first) {
		t.Fatalf("pid %d still there after Kill", first)
	}
	if err := p.Ready("http://"+addr+"/ready", time.Second); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("Ready after Kill: %v", err)
	}
	p.Kill() // a second Kill does nothing

	if err := p.Restart(); err != nil { // and waits for /ready
		t.Fatal(err)
	}
	if p.Pid() == first || p.Pid() == 0 {
		t.Fatalf("pid after Restart %d, before %d", p.Pid(), first)
	}
	if err := p.Restart(); err != nil { // kills the running start first
		t.Fatal(err)
	}
	if err := p.Ready("http://"+addr+"/ready", time.Second); err != nil {
		t.Fatal(err)
	}

	logs := p.Logs()
	if n := strings.Count(logs, `child: serving, WXPAYD_LEAK="" RIG_GIVEN="yes"`); n != 3 {
		t.Errorf("%d of 3 starts logged the environment they should have:\n%s", n, logs)
	}
	for _, want := range []string{"started again (start 2)", "started again (start 3)"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// TestCleanupStopsTheProcess: a process still running when its test ends
// gets SIGTERM and is gone once the test's cleanup is over.
func TestCleanupStopsTheProcess(t *testing.T) {
	var pid int
	var log string
	t.Run("starts a process and ends", func(t *testing.T) {
		addr := rig.FreeAddr(t)
		c := child(t, "serve", addr)
		c.Log = filepath.Join(os.TempDir(), fmt.Sprintf("rig-cleanup-%d.log", os.Getpid()))
		log = c.Log
		p := rig.Start(t, c)
		p.WaitReady(t, "http://"+addr+"/ready", 30*time.Second)
		pid = p.Pid()
	})
	defer os.Remove(log)
	if !gone(pid) {
		t.Fatalf("pid %d outlived its test", pid)
	}
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "child: SIGTERM") {
		t.Fatalf("the child was not stopped with SIGTERM:\n%s", b)
	}
}

// TestFailingChild fails on purpose with a process running, when
// TestFailedTestShowsTheLog runs it in a child test binary.
func TestFailingChild(t *testing.T) {
	if os.Getenv("RIG_FAIL") == "" {
		t.Skip("run by TestFailedTestShowsTheLog")
	}
	addr := rig.FreeAddr(t)
	c := child(t, "serve", addr)
	c.Log = os.Getenv("RIG_FAIL")
	rig.Start(t, c).WaitReady(t, "http://"+addr+"/ready", 30*time.Second)
	t.Fatal("failing on purpose")
}

// TestFailedTestShowsTheLog: when a test fails, its processes' logs end
// its output.
func TestFailedTestShowsTheLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "failing.log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFailingChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "RIG_FAIL="+log)
	out, _ := cmd.CombinedOutput() // it fails: the verdict is in the output
	for _, want := range []string{"--- FAIL: TestFailingChild", "failing on purpose", "--- failing.log", "child: serving", "child: SIGTERM"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the failed test's output lacks %q:\n%s", want, out)
		}
	}
}

func TestReadyFailsAtOnceWhenTheProcessExits(t *testing.T) {
	addr := rig.FreeAddr(t)
	p := rig.Start(t, child(t, "exit", addr))
	t0 := time.Now()
	err := p.Ready("http://"+addr+"/ready", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "exited before") || !strings.Contains(err.Error(), "child: exiting") {
		t.Fatalf("Ready: %v", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("Ready took %v to see the exit", d)
	}
}

func TestSecretsAndEnvFiles(t *testing.T) {
	dir := t.TempDir()
	p := rig.WriteSecret(t, dir, "token", "s3cret")
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file %s: %v %v", p, fi.Mode(), err)
	}
	if b, _ := os.ReadFile(p); string(b) != "s3cret" {
		t.Fatalf("secret file holds %q", b)
	}
	env := rig.ReadEnv(t, rig.WriteSecret(t, dir, "x.env", "# comment\n\nA=1\n  export B=two=2  \nnot a setting\nA=3\n"))
	if got := strings.Join(env, "|"); got != "A=1|B=two=2|A=3" {
		t.Fatalf("ReadEnv: %q", got)
	}
	if rig.Getenv(env, "A") != "3" || rig.Getenv(env, "B") != "two=2" || rig.Getenv(env, "C") != "" {
		t.Fatalf("Getenv on %q", env)
	}
}

func TestEventually(t *testing.T) {
	n := 0
	rig.Eventually(t, 10*time.Second, "the third look", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times", n)
	}
}

// TestBuildAndSim builds wxpaysim (once for both calls) and serves an
// identity with it.
func TestBuildAndSim(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wxpaysim")
	}
	bin := rig.Build(t, "./cmd/wxpaysim")
	fi, err := os.Stat(bin["wxpaysim"])
	if err != nil {
		t.Fatal(err)
	}
	again := rig.Build(t, "./cmd/wxpaysim")
	if fi2, err := os.Stat(again["wxpaysim"]); err != nil || again["wxpaysim"] != bin["wxpaysim"] || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatalf("the second Build made another binary: %v %v", again, err)
	}

	dir := t.TempDir()
	listen := rig.FreeAddr(t)
	sim := rig.StartSim(t, bin["wxpaysim"], dir, "v3", listen, "--tls-listen", "off")
	resp, err := http.Get(sim.URL + "/sim/v1/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /sim/v1/health: %v %v", resp, err)
	}
	resp.Body.Close()
	if rig.Getenv(sim.Env, "WXPAY_NOTIFY_URL") != "http://"+listen+"/wxpay/v3/notify" || rig.Getenv(sim.Env, "WXPAY_API_BASE") != sim.URL {
		t.Fatalf("identity env %q", sim.Env)
	}
	a := sim.WxpaydEnv(t, filepath.Join(dir, "a"), listen, "admin-token-a", "WXPAYD_LOG_LEVEL=warn")
	b := sim.WxpaydEnv(t, filepath.Join(dir, "b"), listen, "admin-token-b")
	if rig.Getenv(a, "WXPAYD_LISTEN") != listen || rig.Getenv(a, "WXPAYD_DATA_DIR") != filepath.Join(dir, "a", "data") ||
		rig.Getenv(a, "WXPAYD_LOG_LEVEL") != "warn" || rig.Getenv(a, "WXPAY_MCHID") == "" {
		t.Fatalf("wxpayd env %q", a)
	}
	if tok, _ := os.ReadFile(rig.Getenv(a, "WXPAYD_ADMIN_TOKEN_FILE")); string(tok) != "admin-token-a" {
		t.Fatalf("admin token file holds %q", tok)
	}
	sa, _ := os.ReadFile(rig.Getenv(a, "WXPAYD_SESSION_SECRET_FILE"))
	sb, _ := os.ReadFile(rig.Getenv(b, "WXPAYD_SESSION_SECRET_FILE"))
	if len(sa) < 32 || string(sa) != string(sb) {
		t.Fatalf("session secrets %q and %q: want one of 32 bytes or more", sa, sb)
	}

	// APIv2: the notify path and the TLS listener of /secapi/.
	v2 := rig.StartSim(t, bin["wxpaysim"], filepath.Join(dir, "v2"), "v2", listen)
	secapi := rig.Getenv(v2.Env, "WXPAY_V2_SECAPI_BASE")
	if rig.Getenv(v2.Env, "WXPAY_API") != "v2" || rig.Getenv(v2.Env, "WXPAY_NOTIFY_URL") != "http://"+listen+"/wxpay/v2/notify" ||
		!strings.HasPrefix(secapi, "https://127.0.0.1:") {
		t.Fatalf("APIv2 identity env %q", v2.Env)
	}
	if c, err := net.Dial("tcp", strings.TrimPrefix(secapi, "https://")); err != nil {
		t.Fatalf("the TLS listener: %v", err)
	} else {
		c.Close()
	}
}
