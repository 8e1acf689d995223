// Command benchtable turns `go test -bench` output of bench/peers (several
// -count runs) into the Markdown section of docs/benchmarks.md: one table per
// benchmark family with median µs/op, allocs/op and the ratio to the
// family's reference, one PASS/FAIL line per bar of the benchmark issue,
// the machine, the load during the run, the exact command and, optionally,
// `openssl speed` output.
//
// Usage:
//
//	go test -run '^$' -bench . -count 6 -benchtime 1s ./... | tee /tmp/peers-bench.txt
//	go run ./cmd/benchtable -cmd "<that command>" -openssl-speed speed.txt -load load.txt < /tmp/peers-bench.txt
//
// The exit status is 0 even when a bar fails: the report says so. Only bad
// input (no results, unreadable files) is an error.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
)

type options struct {
	command     string
	speedFile   string
	speedCmd    string
	loadFile    string
	cpuinfoFile string
	goVersion   string
	title       string
	rev         string
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	fs.StringVar(&o.command, "cmd", "", "the exact command that produced the input (printed verbatim)")
	fs.StringVar(&o.speedFile, "openssl-speed", "", "file with `openssl speed` rsa2048 output to include")
	fs.StringVar(&o.speedCmd, "openssl-cmd", "openssl speed -seconds 3 rsa2048", "the command that produced -openssl-speed")
	fs.StringVar(&o.loadFile, "load", "", "file of /proc/loadavg samples taken during the run")
	fs.StringVar(&o.cpuinfoFile, "cpuinfo", "/proc/cpuinfo", "where to read the CPU model and count")
	fs.StringVar(&o.goVersion, "go", runtime.Version(), "Go version to report")
	fs.StringVar(&o.rev, "rev", "", "the commit benchmarked, printed if given")
	fs.StringVar(&o.title, "title", "Side by side with wechatpay-go and gopay (bench/peers)", "section title")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (the benchmark output is read from stdin)", fs.Args())
	}
	rep, err := parseBench(stdin)
	if err != nil {
		return err
	}
	var speed *opensslSpeed
	if o.speedFile != "" {
		raw, err := os.ReadFile(o.speedFile)
		if err != nil {
			return err
		}
		s := parseOpenSSLSpeed(string(raw))
		if !s.found {
			return fmt.Errorf("%s: no 'rsa 2048 bits' line", o.speedFile)
		}
		speed = &s
	}
	var load loadSummary
	if o.loadFile != "" {
		raw, err := os.ReadFile(o.loadFile)
		if err != nil {
			return err
		}
		load = parseLoad(string(raw))
	}
	model, cpus := "unknown", 0
	if raw, err := os.ReadFile(o.cpuinfoFile); err == nil {
		model, cpus = cpuInfo(string(raw))
	}
	_, err = io.WriteString(stdout, render(rep, o, model, cpus, load, speed))
	return err
}

// family describes a known benchmark family.
type family struct {
	title string
	// ref names the row each row is compared with.
	ref func(sub string) string
}

func fixedRef(name string) func(string) string { return func(string) string { return name } }

// prefixRef compares "<p>-x" with "<p>-<name>".
func prefixRef(name string) func(string) string {
	return func(sub string) string {
		p, _, _ := strings.Cut(sub, "-")
		return p + "-" + name
	}
}

var families = map[string]family{
	"Authorization": {"(a) APIv3 Authorization header of a JSAPI prepay request (POST, realistic JSON body)", fixedRef("wxpayd-openssl")},
	"Notify":        {"(b) APIv3 notification: verify + decrypt + decode a TRANSACTION.SUCCESS", fixedRef("wxpayd-openssl")},
	"NotifyParts":   {"(b) where wxpayd's notification time goes: each step of ParseTransaction alone", fixedRef("verify-openssl")},
	"PaySign":       {"(c) wx.requestPayment paySign (APIv3, RSA)", fixedRef("wxpayd-openssl")},
	"V2Sign":        {"(d) APIv2 signature of a 12-field unifiedorder map", prefixRef("wxpayd")},
	"RSA":           {"Raw RSA-2048 PKCS#1 v1.5 SHA-256 primitives (digest given)", prefixRef("openssl")},
}

// familyOrder lists the known families in the order of the bars;
// other families follow in order of appearance.
var familyOrder = []string{"Authorization", "Notify", "NotifyParts", "PaySign", "V2Sign", "RSA"}

func orderFamilies(seen []string) []string {
	var out []string
	for _, f := range familyOrder {
		if slices.Contains(seen, f) {
			out = append(out, f)
		}
	}
	for _, f := range seen {
		if !slices.Contains(familyOrder, f) {
			out = append(out, f)
		}
	}
	return out
}

func render(rep *report, o options, model string, cpus int, load loadSummary, speed *opensslSpeed) string {
	var sb strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&sb, format, a...) }
	w("## %s\n\n", o.title)
	runs := 0
	for _, b := range rep.benches {
		runs = max(runs, len(b.runs))
	}
	w("- Machine: %s, %d logical CPUs", model, cpus)
	if rep.procs > 0 {
		w(" (GOMAXPROCS %d)", rep.procs)
	}
	if rep.goos != "" {
		w(", %s/%s", rep.goos, rep.goarch)
	}
	w(", Go %s.\n", strings.TrimPrefix(o.goVersion, "go"))
	if o.rev != "" {
		w("- Code: %s.\n", o.rev)
	}
	if load.n > 0 {
		w("- Load during the run (1-minute load average, %d samples): min %.2f, median %.2f, max %.2f "+
			"on %d CPUs. The machine is shared with other work; the benchmark itself accounts for about 1.\n",
			load.n, load.min, load.med, load.max, cpus)
	}
	w("- Each figure is the median of %d runs; \"min–max\" shows their spread. Ratios divide medians of the same run. "+
		"Bars are judged on wall time (ns/op), as the issue states them. \"CPU µs/op\" is the process CPU time per "+
		"operation (cpu-ns/op, all threads): it grows less than wall time when other processes compete for the "+
		"CPU (not at all for time spent waiting), so each bar also shows its ratio on CPU time.\n", runs)
	if o.command != "" {
		w("- Command (in `bench/peers`):\n\n  ```\n  %s\n  ```\n", o.command)
	}
	w("\n")

	for _, fam := range orderFamilies(rep.families) {
		renderFamily(&sb, rep, fam)
	}

	w("### Bars\n\n")
	pass, fail, missing := 0, 0, 0
	for _, b := range bars {
		res := evalBar(rep, b)
		switch {
		case len(res.missing) > 0:
			missing++
		case res.pass:
			pass++
		default:
			fail++
		}
		w("%s\n", res.line(true))
	}
	w("\n%d passed, %d failed", pass, fail)
	if missing > 0 {
		w(", %d not run", missing)
	}
	w(".\n\nReported without a bar:\n\n")
	for _, b := range infos {
		w("%s\n", evalBar(rep, b).line(false))
	}
	w("\n")

	if speed != nil {
		w("### `openssl speed`, one core\n\n")
		w("`%s`: RSA-2048 sign %.1f µs (%.0f/s), verify %.1f µs (%.0f/s).", o.speedCmd,
			speed.signS*1e6, speed.signPS, speed.verifyS*1e6, speed.verifyPS)
		if b := rep.lookup("RSA", "sign-openssl"); b != nil {
			w(" Through golang-fips/openssl (`BenchmarkRSA/sign-openssl`) a sign takes %.2f× that.", b.medianNs()/1e9/speed.signS)
		}
		if b := rep.lookup("RSA", "verify-openssl"); b != nil {
			w(" A verify (`BenchmarkRSA/verify-openssl`) takes %.2f×.", b.medianNs()/1e9/speed.verifyS)
		}
		w("\n\n```\n%s\n```\n", strings.TrimRight(speed.raw, "\n"))
	}
	return sb.String()
}

func renderFamily(sb *strings.Builder, rep *report, fam string) {
	w := func(format string, a ...any) { fmt.Fprintf(sb, format, a...) }
	info, known := families[fam]
	title := fam
	if known {
		title = info.title
	}
	bs := rep.familyBenches(fam)
	w("### %s\n\n`Benchmark%s`", title, fam)
	if pkg := bs[0].pkg; pkg != "" {
		w(" in `%s`", pkg)
	}
	w("\n\n| benchmark | median µs/op | min–max µs/op | median CPU µs/op | allocs/op | B/op | median ÷ reference |\n")
	w("| --- | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, b := range bs {
		name := b.sub
		if name == "" {
			name = b.fullName()
		}
		lo, hi := b.minMaxNs()
		ratio := "–"
		refName := ""
		if known {
			refName = info.ref(b.sub)
		} else {
			refName = bs[0].sub
		}
		if ref := rep.lookup(fam, refName); ref != nil {
			if ref == b {
				ratio = "reference"
			} else {
				ratio = fmt.Sprintf("%.2f× `%s`", b.medianNs()/ref.medianNs(), refName)
			}
		}
		w("| `%s` | %s | %s–%s | %s | %s | %s | %s |\n", name, fmtMicros(b.medianNs()), fmtMicros(lo), fmtMicros(hi),
			fmtMicros(b.medianCPU()), fmtCount(b.medianAllocs()), fmtCount(b.medianBytes()), ratio)
	}
	w("\n")
}

// fmtMicros prints ns as µs with three significant figures or more.
func fmtMicros(ns float64) string {
	us := ns / 1e3
	switch {
	case math.IsNaN(us):
		return "–"
	case us >= 100:
		return fmt.Sprintf("%.0f", us)
	case us >= 10:
		return fmt.Sprintf("%.1f", us)
	case us >= 1:
		return fmt.Sprintf("%.2f", us)
	default:
		return fmt.Sprintf("%.3f", us)
	}
}
