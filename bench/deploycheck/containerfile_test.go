package deploycheck

import (
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// A minimal Containerfile reader: enough of the syntax this repository's
// file uses (comments, line continuations, ARG before FROM, FROM … AS,
// COPY with --from, RUN with --mount, exec-form ENTRYPOINT). It does not
// pretend to be BuildKit; it makes the file's claims checkable.
type instruction struct {
	Cmd  string // upper case
	Args string
	Line int
}

type stage struct {
	Name  string
	From  string // expanded
	Instr []instruction
}

type containerfile struct {
	GlobalArgs map[string]string
	Stages     []*stage
}

func (c *containerfile) stage(name string) *stage {
	for _, s := range c.Stages {
		if s.Name == name {
			return s
		}
	}
	return nil
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

func expand(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		if v, ok := vars[name]; ok {
			return v
		}
		return m
	})
}

func parseContainerfile(t testing.TB, path string) *containerfile {
	t.Helper()
	raw := string(readFile(t, path))
	c := &containerfile{GlobalArgs: map[string]string{}}
	var cur *stage
	var buf strings.Builder
	start := 0
	lines := strings.Split(raw, "\n")
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if buf.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if buf.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // comment lines inside a continued instruction
		}
		if buf.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			buf.WriteString(strings.TrimSuffix(trimmed, "\\"))
			buf.WriteByte(' ')
			continue
		}
		buf.WriteString(trimmed)
		text := buf.String()
		buf.Reset()
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		switch in.Cmd {
		case "ARG":
			if cur == nil {
				k, v, _ := strings.Cut(in.Args, "=")
				c.GlobalArgs[k] = v
				continue
			}
		case "FROM":
			f := strings.Fields(in.Args)
			cur = &stage{From: expand(f[0], c.GlobalArgs)}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				cur.Name = f[2]
			}
			c.Stages = append(c.Stages, cur)
			continue
		}
		if cur == nil {
			t.Fatalf("%s:%d: %s before the first FROM", path, in.Line, in.Cmd)
		}
		cur.Instr = append(cur.Instr, in)
	}
	if len(c.Stages) == 0 {
		t.Fatalf("%s: no FROM", path)
	}
	return c
}

// chain returns the instructions that apply to a stage, its base stages'
// first (FROM <stage> inherits USER, ENV, ENTRYPOINT …).
func (c *containerfile) chain(s *stage) []instruction {
	if base := c.stage(s.From); base != nil && base != s {
		return append(c.chain(base), s.Instr...)
	}
	return s.Instr
}

// last returns the value of the last instruction cmd in a stage's chain.
func (c *containerfile) last(s *stage, cmd string) string {
	v := ""
	for _, in := range c.chain(s) {
		if in.Cmd == cmd {
			v = in.Args
		}
	}
	return v
}

// shellWords splits a simple shell command line: whitespace, single and
// double quotes; no expansions other than ${VAR} done before.
func shellWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		case r == ';' || r == '&' || r == '|' || r == '<' || r == '>' || r == '`' || r == '(' || r == ')':
			return nil, fmt.Errorf("shell syntax %q is not handled by this check; keep the build RUN a single command", r)
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote")
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

// goBuild is the build stage's go build command, parsed.
type goBuild struct {
	Env      []string // VAR=value assignments before the command
	Args     []string // after "go"
	OutDir   string   // the -o directory inside the image
	Packages []string // ./cmd/…
}

func (c *containerfile) goBuild(t testing.TB, cgo string) goBuild {
	t.Helper()
	st := c.stage("build")
	if st == nil {
		t.Fatal("Containerfile: no stage named build")
	}
	vars := map[string]string{}
	for k, v := range c.GlobalArgs {
		vars[k] = v
	}
	var found *goBuild
	for _, in := range st.Instr {
		switch in.Cmd {
		case "ARG":
			k, v, _ := strings.Cut(in.Args, "=")
			vars[k] = v
			if k == "CGO_ENABLED" && cgo != "" {
				vars[k] = cgo
			}
		case "RUN":
			words, err := shellWords(expand(in.Args, vars))
			if err != nil {
				t.Fatalf("Containerfile:%d: %v", in.Line, err)
			}
			for len(words) > 0 && strings.HasPrefix(words[0], "--") { // --mount=…
				words = words[1:]
			}
			var env []string
			for len(words) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(words[0]) {
				env = append(env, words[0])
				words = words[1:]
			}
			if len(words) < 2 || words[0] != "go" || words[1] != "build" {
				continue
			}
			if found != nil {
				t.Fatalf("Containerfile:%d: a second go build; this check expects one", in.Line)
			}
			g := goBuild{Env: env, Args: words[1:]}
			for i := 1; i < len(words); i++ {
				switch {
				case words[i] == "-o" && i+1 < len(words):
					g.OutDir = words[i+1]
					i++
				case strings.HasPrefix(words[i], "./"):
					g.Packages = append(g.Packages, words[i])
				}
			}
			found = &g
		}
	}
	if found == nil {
		t.Fatal("Containerfile: the build stage has no `go build` RUN")
	}
	if !strings.HasSuffix(found.OutDir, "/") || !filepath.IsAbs(found.OutDir) {
		t.Fatalf("Containerfile: go build -o %q: want an absolute directory ending in /", found.OutDir)
	}
	return *found
}

// Builds as the Containerfile's build stage does, once per CGO setting
// per test process. The binaries feed metrics_test too, so the live
// /metrics check runs the very binaries the image would hold.
var builds struct {
	sync.Mutex
	dirs map[string]string
	errs map[string]error
	root string
}

func TestMain(m *testing.M) {
	root, err := os.MkdirTemp("", "deploycheck-build-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	builds.root = root
	code := m.Run()
	_ = os.RemoveAll(root)
	os.Exit(code)
}

// containerBuild reproduces the build stage: only the paths it COPYs go
// into a fresh source tree, then its go build command runs there with
// CGO_ENABLED as given ("" = the file's default). It returns the -o
// directory's stand-in.
func containerBuild(t testing.TB, cgo string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if builds.dirs == nil {
		builds.dirs, builds.errs = map[string]string{}, map[string]error{}
	}
	if d, ok := builds.dirs[cgo]; ok {
		return d
	}
	if err, ok := builds.errs[cgo]; ok {
		t.Fatal(err)
	}
	d, err := doContainerBuild(t, cgo)
	if err != nil {
		builds.errs[cgo] = err
		t.Fatal(err)
	}
	builds.dirs[cgo] = d
	return d
}

func doContainerBuild(t testing.TB, cgo string) (string, error) {
	root := repoRoot(t)
	cf := parseContainerfile(t, filepath.Join(root, "deploy", "Containerfile"))
	st := cf.stage("build")
	g := cf.goBuild(t, cgo)
	name := "cgo-default"
	if cgo != "" {
		name = "cgo-" + cgo
	}
	base := filepath.Join(builds.root, name)
	src, out := filepath.Join(base, "src"), filepath.Join(base, "out")
	workdir := "/"
	for _, in := range st.Instr {
		switch in.Cmd {
		case "WORKDIR":
			workdir = in.Args
		case "COPY":
			f := strings.Fields(in.Args)
			if strings.HasPrefix(f[0], "--") {
				return "", fmt.Errorf("Containerfile:%d: COPY %s in the build stage is not handled", in.Line, f[0])
			}
			dest := f[len(f)-1]
			if !filepath.IsAbs(dest) {
				dest = filepath.Join(workdir, dest)
			}
			if workdir != "/src" && !strings.HasPrefix(dest, "/src") {
				return "", fmt.Errorf("Containerfile:%d: COPY outside /src", in.Line)
			}
			rel := strings.TrimPrefix(dest, "/src")
			for _, s := range f[:len(f)-1] {
				target := filepath.Join(src, rel)
				if len(f) > 2 || strings.HasSuffix(f[len(f)-1], "/") && !strings.HasSuffix(s, "/") {
					target = filepath.Join(target, filepath.Base(s))
				}
				if err := copyTree(filepath.Join(root, s), target); err != nil {
					return "", fmt.Errorf("Containerfile:%d: COPY %s: %w", in.Line, s, err)
				}
			}
		}
	}
	if workdir != "/src" {
		return "", fmt.Errorf("Containerfile: build stage WORKDIR is %q; this check expects /src", workdir)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	args := make([]string, len(g.Args))
	for i, a := range g.Args {
		if a == g.OutDir {
			a = out + "/"
		}
		args[i] = a
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), g.Env...)
	cmd.Env = append(cmd.Env, "GOFLAGS=-mod=readonly") // what go.mod and go.sum hold, nothing fetched anew
	t.Logf("build (%s): %s go %s", name, strings.Join(g.Env, " "), strings.Join(args, " "))
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("the Containerfile's build command fails on the COPY'd tree (%s): %v\n%s", name, err, b)
	}
	return out, nil
}

func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		o, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(o, in); err != nil {
			o.Close()
			return err
		}
		return o.Close()
	})
}

var imageRef = regexp.MustCompile(`^[a-z0-9.\-/:]+:[A-Za-z0-9._\-]+$`)

// TestContainerfileInstructions checks what the file says: its stages,
// pinned base images, a non-root numeric user, the runtime libraries the
// OpenSSL signer needs, exec-form entrypoints of binaries it copies, and
// that every command it builds exists under cmd/.
func TestContainerfileInstructions(t *testing.T) {
	root := repoRoot(t)
	cf := parseContainerfile(t, filepath.Join(root, "deploy", "Containerfile"))

	var names []string
	for _, s := range cf.Stages {
		names = append(names, s.Name)
		if cf.stage(s.From) != nil {
			continue // FROM an earlier stage
		}
		if !imageRef.MatchString(s.From) || strings.HasSuffix(s.From, ":latest") || strings.Contains(s.From, "$") {
			t.Errorf("stage %s: base image %q must carry an explicit tag (not latest)", s.Name, s.From)
		}
	}
	if got, want := strings.Join(names, ","), "build,base,wxpaysim,wxpayd"; got != want {
		t.Errorf("stages %s, want %s (wxpayd last: the default target)", got, want)
	}
	if b := cf.stage("build"); b == nil || !strings.HasPrefix(b.From, "golang:1.26") {
		t.Errorf("build stage: want a golang:1.26 builder, have %+v", b)
	}
	if m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(readFile(t, root, "go.mod")); m == nil || string(m[1]) != "1.26" {
		t.Errorf("go.mod's go line %q: the builder image golang:1.26 must be updated with it", m)
	}
	if b := cf.stage("base"); b == nil || b.From != "debian:bookworm-slim" {
		t.Errorf("base stage: want debian:bookworm-slim (libssl3 is the bookworm package name), have %+v", b)
	}

	// The packages built exist.
	g := cf.goBuild(t, "")
	if len(g.Packages) == 0 {
		t.Fatal("go build names no ./cmd/ package")
	}
	built := map[string]bool{}
	for _, p := range g.Packages {
		if _, err := os.Stat(filepath.Join(root, p, "main.go")); err != nil {
			t.Errorf("go build %s: no such command: %v", p, err)
		}
		built[filepath.Base(p)] = true
	}
	for _, want := range []string{"wxpayd", "wxpaysink", "wxpaysim"} {
		if !built[want] {
			t.Errorf("the image does not build %s", want)
		}
	}
	if !strings.Contains(strings.Join(g.Args, " "), "-trimpath") {
		t.Error("go build without -trimpath")
	}
	if !strings.Contains(strings.Join(g.Env, " "), "CGO_ENABLED=1") {
		t.Errorf("the default build must be CGO_ENABLED=1 (OpenSSL signer), got env %v", g.Env)
	}

	base := cf.stage("base")
	run := ""
	for _, in := range base.Instr {
		if in.Cmd == "RUN" {
			run += in.Args + " "
		}
	}
	for _, pkg := range []string{"libssl3", "ca-certificates", "--no-install-recommends"} {
		if !strings.Contains(run, pkg) {
			t.Errorf("base stage: apt-get install lacks %s", pkg)
		}
	}
	if !strings.Contains(run, "rm -rf /var/lib/apt/lists/*") {
		t.Error("base stage keeps the apt lists")
	}

	for _, name := range []string{"wxpayd", "wxpaysim"} {
		s := cf.stage(name)
		if s == nil {
			continue
		}
		user := cf.last(s, "USER")
		uid, _, _ := strings.Cut(user, ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("stage %s: USER %q must be a numeric non-root uid (runAsNonRoot can only verify numbers)", name, user)
		} else if n != 10001 {
			t.Errorf("stage %s: USER %d; deploy/k8s and deploy/compose run as 10001", name, n)
		}
		var ep []string
		if err := json.Unmarshal([]byte(cf.last(s, "ENTRYPOINT")), &ep); err != nil || len(ep) == 0 {
			t.Errorf("stage %s: ENTRYPOINT must be exec form (signals reach the process): %v", name, err)
			continue
		}
		copied := false
		for _, in := range s.Instr {
			if in.Cmd == "COPY" && strings.HasPrefix(in.Args, "--from=build ") {
				f := strings.Fields(in.Args)
				dest := f[len(f)-1]
				for _, src := range f[1 : len(f)-1] {
					p := dest
					if strings.HasSuffix(dest, "/") {
						p = dest + filepath.Base(src)
					}
					if p == ep[0] {
						copied = true
					}
					if !strings.HasPrefix(src, g.OutDir) || !built[filepath.Base(src)] {
						t.Errorf("stage %s: COPY --from=build %s is not a binary the build produces", name, src)
					}
				}
			}
		}
		if !copied {
			t.Errorf("stage %s: ENTRYPOINT %s is not a binary this stage copies", name, ep[0])
		}
		if sig := cf.last(s, "STOPSIGNAL"); sig != "SIGTERM" {
			t.Errorf("stage %s: STOPSIGNAL %q, want SIGTERM (wxpayd's graceful shutdown)", name, sig)
		}
	}

	// ENV names are settings; the listen port is the exposed one.
	settings := wxpaydSettings(t)
	env := map[string]string{}
	for _, in := range cf.chain(cf.stage("wxpayd")) {
		if in.Cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.Args) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
			if _, ok := settings[k]; !ok && strings.HasPrefix(k, "WXPAY") {
				t.Errorf("ENV %s is not a wxpayd setting (docs/configuration.md)", k)
			}
		}
	}
	_, port, _ := strings.Cut(env["WXPAYD_LISTEN"], ":")
	if !strings.HasPrefix(env["WXPAYD_LISTEN"], "0.0.0.0:") || cf.last(cf.stage("wxpayd"), "EXPOSE") != port {
		t.Errorf("ENV WXPAYD_LISTEN=%q and EXPOSE %q disagree (a container must listen on all interfaces)",
			env["WXPAYD_LISTEN"], cf.last(cf.stage("wxpayd"), "EXPOSE"))
	}
	if v := cf.last(cf.stage("wxpayd"), "VOLUME"); !strings.Contains(v, env["WXPAYD_DATA_DIR"]) || env["WXPAYD_DATA_DIR"] == "" {
		t.Errorf("VOLUME %s does not hold WXPAYD_DATA_DIR %q", v, env["WXPAYD_DATA_DIR"])
	}
}

// TestContainerfileBuilds runs the build stage's go build, on only the
// paths it COPYs, with CGO_ENABLED=1 (the default: dlopen of libcrypto)
// and 0 (static, pure-Go RSA), and checks the binaries: linkage,
// build settings, and that nothing of OpenSSL is linked.
func TestContainerfileBuilds(t *testing.T) {
	for _, tc := range []struct {
		cgo    string
		static bool
	}{{"1", false}, {"0", true}} {
		t.Run("CGO_ENABLED="+tc.cgo, func(t *testing.T) {
			out := containerBuild(t, tc.cgo)
			for _, bin := range []string{"wxpayd", "wxpaysink", "wxpaysim"} {
				p := filepath.Join(out, bin)
				info, err := buildinfo.ReadFile(p)
				if err != nil {
					t.Fatalf("%s: %v", bin, err)
				}
				s := map[string]string{}
				for _, kv := range info.Settings {
					s[kv.Key] = kv.Value
				}
				if s["CGO_ENABLED"] != tc.cgo || s["-trimpath"] != "true" {
					t.Errorf("%s: build settings %v", bin, s)
				}
				f, err := elf.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				// -trimpath keeps -ldflags out of the build info; -s shows
				// as a binary without a symbol table.
				if f.Section(".symtab") != nil {
					t.Errorf("%s has a symbol table: built without -ldflags=-s", bin)
				}
				interp := false
				for _, prog := range f.Progs {
					if prog.Type == elf.PT_INTERP {
						interp = true
					}
				}
				libs, _ := f.ImportedLibraries()
				if tc.static {
					if interp || len(libs) > 0 {
						t.Errorf("%s: CGO_ENABLED=0 must be static; interpreter %v, libraries %v", bin, interp, libs)
					}
					f.Close()
					continue
				}
				for _, l := range libs {
					if strings.Contains(l, "crypto") || strings.Contains(l, "ssl") {
						t.Errorf("%s links %s: OpenSSL must be loaded with dlopen at run time, not linked", bin, l)
					}
				}
				// glibc symbol versions: the runtime stage is Debian
				// bookworm (glibc 2.36).
				syms, _ := f.ImportedSymbols()
				maxv := ""
				for _, sym := range syms {
					if strings.HasPrefix(sym.Version, "GLIBC_") && versionLess(maxv, sym.Version) {
						maxv = sym.Version
					}
				}
				if versionLess("GLIBC_2.36", maxv) {
					t.Errorf("%s needs %s; debian:bookworm-slim has glibc 2.36", bin, maxv)
				}
				t.Logf("%s: dynamic, libraries %v, newest glibc symbol %s", bin, libs, maxv)
				f.Close()
			}
		})
	}
}

// versionLess compares GLIBC_x.y[.z] strings ("" is smallest).
func versionLess(a, b string) bool {
	parse := func(s string) []int {
		var out []int
		for _, p := range strings.Split(strings.TrimPrefix(s, "GLIBC_"), ".") {
			n, _ := strconv.Atoi(p)
			out = append(out, n)
		}
		return out
	}
	if a == "" {
		return b != ""
	}
	x, y := parse(a), parse(b)
	for i := 0; i < len(x) || i < len(y); i++ {
		var u, v int
		if i < len(x) {
			u = x[i]
		}
		if i < len(y) {
			v = y[i]
		}
		if u != v {
			return u < v
		}
	}
	return false
}
