package rig

import (
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/sink/itest"
)

// The binaries Build made in this test binary, in one directory that Main
// removes.
var built struct {
	sync.Mutex
	main bool              // Main runs the tests
	dir  string            // made by the first Build
	bins map[string]string // command as given to Build → binary
}

// Main runs the package's tests and then removes the binaries Build made.
// A package whose tests call Build calls it from TestMain:
//
//	func TestMain(m *testing.M) { rig.Main(m) }
func Main(m *testing.M) {
	built.Lock()
	built.main = true
	built.Unlock()
	code := m.Run()
	built.Lock()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	built.Unlock()
	os.Exit(code)
}

// Build builds the module's commands, given as go build takes them from the
// module root ("./cmd/wxpayd"), and returns each binary's path by its base
// name ("wxpayd"). A command is built once per test binary; later calls
// return the same file. The map is the caller's to change.
func Build(t testing.TB, cmds ...string) map[string]string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	if !built.main {
		t.Fatal("rig.Build: the package's TestMain must call rig.Main, which removes the binaries")
	}
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "wxpayd-rig-")
		if err != nil {
			t.Fatal(err)
		}
		built.dir, built.bins = dir, map[string]string{}
	}
	var todo []string
	for _, c := range cmds {
		if _, ok := built.bins[c]; !ok {
			todo = append(todo, c)
		}
	}
	if len(todo) > 0 {
		t0 := time.Now()
		cmd := exec.Command("go", append([]string{"build", "-o", built.dir + string(filepath.Separator)}, todo...)...)
		cmd.Dir = itest.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", strings.Join(todo, " "), err, out)
		}
		for _, c := range todo {
			built.bins[c] = filepath.Join(built.dir, path.Base(c))
		}
		t.Logf("built %s in %.1f s", strings.Join(todo, " "), time.Since(t0).Seconds())
	}
	out := make(map[string]string, len(cmds))
	for _, c := range cmds {
		out[path.Base(c)] = built.bins[c]
	}
	return out
}

// FreeAddr returns 127.0.0.1:port with a port that was free when asked.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// WriteSecret writes value to dir/name, readable by the owner only, and
// returns the file's path.
func WriteSecret(t testing.TB, dir, name, value string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ReadEnv returns the NAME=value lines of an env file such as wxpay.env,
// trimmed, without blank lines, comments and a leading "export ".
func ReadEnv(t testing.TB, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimPrefix(strings.TrimSpace(l), "export ")
		if l != "" && !strings.HasPrefix(l, "#") && strings.Contains(l, "=") {
			out = append(out, l)
		}
	}
	return out
}

// Getenv returns the value of the last NAME=value of env, "" if there is
// none: what a process given env reads.
func Getenv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}
