package rig

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long a process has after SIGTERM, when the test ends,
// before it is SIGKILLed.
const stopGrace = 30 * time.Second

// logTail is how many lines of a process's log a failed test shows, and an
// error of Ready carries.
const logTail = 40

// Cmd is what Start runs.
type Cmd struct {
	Path string   // the binary
	Args []string // its arguments
	Env  []string // NAME=value, on top of the test's environment without WXPAY_*, WXPAYD_*, WXPAYSIM_*
	Log  string   // the file for stdout and stderr, appended to by every start

	// Ready, if set, is a URL that answers 200 once the process is ready:
	// Start and Restart wait up to ReadyWithin for it.
	Ready       string
	ReadyWithin time.Duration
}

// Process is a child process of the test, started by Start, and each of
// its restarts. Its methods are safe for concurrent use.
type Process struct {
	c    Cmd
	name string // the binary's base name, for messages

	mu     sync.Mutex
	cmd    *exec.Cmd     // the current start; nil after Kill
	exited chan struct{} // closed when the current start has exited and been reaped
	starts int
}

// Start starts c, waits for c.Ready if set, and registers the process's
// stop with t.Cleanup: SIGTERM, SIGKILL after 30 s, then, if the test
// failed, the tail of its log in the test's output. A failure to start or
// to be ready fails the test.
func Start(t testing.TB, c Cmd) *Process {
	t.Helper()
	p := &Process{c: c, name: filepath.Base(c.Path)}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("--- %s (%s), last %d lines:\n%s", filepath.Base(c.Log), p.name, logTail, p.tail())
		}
	})
	if err := p.ready(); err != nil {
		t.Fatal(err)
	}
	return p
}

// start starts the process; p.mu is held or p is not shared yet.
func (p *Process) start() error {
	f, err := os.OpenFile(p.c.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if p.starts > 0 {
		fmt.Fprintf(f, "rig: %s started again (start %d) at %s\n", p.name, p.starts+1, time.Now().Format(time.StampMilli))
	}
	cmd := exec.Command(p.c.Path, p.c.Args...)
	cmd.Env = append(cleanEnv(), p.c.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(exited) }()
	p.cmd, p.exited = cmd, exited
	p.starts++
	return nil
}

// cleanEnv is the test's environment without wxpayd's and wxpaysim's own
// settings.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WXPAY_") && !strings.HasPrefix(kv, "WXPAYD_") && !strings.HasPrefix(kv, "WXPAYSIM_") {
			out = append(out, kv)
		}
	}
	return out
}

// Pid is the process id of the current start.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill SIGKILLs the process (no shutdown: only what it made durable
// survives) and returns once it has exited. It does nothing if the process
// was killed already.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kill()
}

func (p *Process) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// Restart SIGKILLs the process if it runs, starts it again with the same
// command, environment and log, and waits for its Ready URL if it has one.
func (p *Process) Restart() error {
	p.mu.Lock()
	p.kill()
	err := p.start()
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return p.ready()
}

// ready waits for the Cmd's Ready URL, if it has one.
func (p *Process) ready() error {
	if p.c.Ready == "" {
		return nil
	}
	return p.Ready(p.c.Ready, p.c.ReadyWithin)
}

// stop ends the current start: SIGTERM, then SIGKILL after stopGrace.
func (p *Process) stop(t testing.TB) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopGrace):
		t.Logf("%s did not stop within %v of SIGTERM: SIGKILL", p.name, stopGrace)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// Ready polls url every 50 ms until it answers 200. It returns an error,
// with the tail of the process's log, if the process exits first or within
// passes.
func (p *Process) Ready(url string, within time.Duration) error {
	p.mu.Lock()
	exited := p.exited
	running := p.cmd != nil
	p.mu.Unlock()
	if !running {
		return fmt.Errorf("%s is not running, so %s will not answer", p.name, url)
	}
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before %s answered 200; its log ends:\n%s", p.name, url, p.tail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %v (last: %v); %s's log ends:\n%s", url, within, err, p.name, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitReady is Ready that fails the test instead of returning an error;
// call it from the test's goroutine.
func (p *Process) WaitReady(t testing.TB, url string, within time.Duration) {
	t.Helper()
	if err := p.Ready(url, within); err != nil {
		t.Fatal(err)
	}
}

// Logs returns the log: what every start of the process wrote, in order,
// each restart after a line "rig: NAME started again (start N) at TIME".
func (p *Process) Logs() string {
	b, err := os.ReadFile(p.c.Log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err.Error()
	}
	return string(b)
}

// LogFile returns the log's path.
func (p *Process) LogFile() string { return p.c.Log }

func (p *Process) tail() string {
	lines := strings.Split(strings.TrimRight(p.Logs(), "\n"), "\n")
	if len(lines) > logTail {
		lines = lines[len(lines)-logTail:]
	}
	return strings.Join(lines, "\n")
}
