package main

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/sample-report.md")

// The samples in testdata are the real run behind bench/peers/RESULTS.md,
// captured by run-bench.sh on this machine kind: sample-bench.txt from
// `go test -run '^$' -bench . -count 6 -benchtime 1s ./...` in bench/peers,
// sample-openssl-speed.txt from `taskset -c 0 openssl speed -seconds 3
// rsa2048`, sample-load.txt the /proc/loadavg samples taken during the run,
// cpuinfo.txt from /proc/cpuinfo. sample-report.md is therefore the
// generated part of RESULTS.md.

func openSample(t *testing.T) *report {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "sample-bench.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := parseBench(f)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestMedian(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   []float64
		want float64
	}{
		{"an odd count gives the middle value", []float64{5, 1, 3}, 3},
		{"an even count gives the mean of the middle two", []float64{4, 1, 3, 2}, 2.5},
		{"NaN values are ignored", []float64{math.NaN(), 7, 9}, 8},
		{"a single value is its own median", []float64{42}, 42},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := median(c.in); got != c.want {
				t.Fatalf("median(%v) = %v, want %v", c.in, got, c.want)
			}
		})
	}
	if !math.IsNaN(median(nil)) {
		t.Fatal("median of nothing is not NaN")
	}
}

func TestParseBenchReadsTheCapturedSample(t *testing.T) {
	t.Parallel()
	rep := openSample(t)
	if got, want := strings.Join(rep.families, ","), "Authorization,PaySign,Notify,RSA,NotifyParts,V2Sign"; got != want {
		t.Errorf("families %s, want %s", got, want)
	}
	if rep.procs != 2 || rep.cpu != "AMD EPYC" || rep.goos != "linux" || rep.goarch != "amd64" {
		t.Errorf("header: procs %d cpu %q %s/%s", rep.procs, rep.cpu, rep.goos, rep.goarch)
	}
	b := rep.lookup("Notify", "wxpayd-openssl")
	if b == nil || len(b.runs) != 6 {
		t.Fatalf("Notify/wxpayd-openssl: %+v", b)
	}
	if got := b.medianNs(); got != (30916+31412)/2.0 {
		t.Errorf("median ns/op %v", got)
	}
	if got := b.medianAllocs(); got != 5 {
		t.Errorf("median allocs/op %v", got)
	}
	if got := b.medianCPU(); got != (29000+29563)/2.0 {
		t.Errorf("median cpu-ns/op %v", got)
	}
	if b := rep.lookup("Notify", "floor-verify+gcm-openssl"); b == nil {
		t.Error("a name with '+' was not read")
	}
	if b.pkg != "github.com/wxpayd/wxpayd/bench/peers" {
		t.Errorf("pkg %q", b.pkg)
	}
}

func TestParseBenchHandlesOddLines(t *testing.T) {
	t.Parallel()
	in := strings.Join([]string{
		"goos: linux",
		"BenchmarkTop-8   \t 1000\t 1500 ns/op",
		"BenchmarkTop-8   \t 1000\t 2500 ns/op",
		"BenchmarkX/with-dash-3-8 10 100 ns/op 3 B/op 1 allocs/op 7.5 custom/op",
		"BenchmarkLogs",
		"    bench_test.go:10: a log line",
		"--- FAIL: BenchmarkBroken",
		"ok  \tpkg\t1.0s",
	}, "\n")
	rep, err := parseBench(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if b := rep.lookup("Top", ""); b == nil || b.medianNs() != 2000 || !math.IsNaN(b.medianAllocs()) {
		t.Errorf("top-level benchmark: %+v", b)
	}
	if b := rep.lookup("X", "with-dash-3"); b == nil || b.medianAllocs() != 1 || b.medianBytes() != 3 {
		t.Errorf("only the GOMAXPROCS suffix is stripped: %v", rep.order)
	}
	if rep.procs != 8 {
		t.Errorf("procs %d", rep.procs)
	}
	if _, err := parseBench(strings.NewReader("PASS\n")); err == nil {
		t.Error("input without results was accepted")
	}
	if _, err := parseBench(strings.NewReader("BenchmarkA-2 10 1e-x ns/op\n")); err == nil {
		t.Error("a malformed value was accepted")
	}
}

func TestBarsAreComputedFromMedians(t *testing.T) {
	t.Parallel()
	rep := openSample(t)
	for _, b := range bars {
		res := evalBar(rep, b)
		if len(res.missing) > 0 {
			t.Errorf("bar %s %s: missing %v", b.id, b.statement, res.missing)
		}
	}
	res := evalBar(rep, bars[10]) // md5-gopay / md5-wxpayd
	want := ((3066 + 3088) / 2.0) / ((972.8 + 976.6) / 2.0)
	if math.Abs(res.value-want) > 1e-12 || res.pass != (want >= 4) {
		t.Errorf("V2 MD5 ratio %v pass %v, want %v", res.value, res.pass, want)
	}
	line := res.line(true)
	if !strings.Contains(line, "(bar ≥ 4×; short by ") || !strings.HasPrefix(line, "- **FAIL** (d)") {
		t.Errorf("line %q", line)
	}
	allocs := evalBar(rep, bars[6]) // Notify wxpayd-openssl allocs
	if allocs.value != 5 || !allocs.pass {
		t.Errorf("allocs bar %+v", allocs)
	}
	missing := evalBar(rep, bar{id: "z", family: "Nope", num: "a", den: "b", limit: 1})
	if len(missing.missing) != 2 || !strings.Contains(missing.line(true), "**NOT RUN**") {
		t.Errorf("missing bar %+v", missing)
	}
}

func TestParseOpenSSLSpeedReadsTheRSALine(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("testdata", "sample-openssl-speed.txt"))
	if err != nil {
		t.Fatal(err)
	}
	s := parseOpenSSLSpeed(string(raw))
	if !s.found || s.signS != 0.000245 || s.verifyS != 0.000017 || s.signPS != 4085.8 || s.verifyPS != 57884.4 {
		t.Fatalf("%+v", s)
	}
	if parseOpenSSLSpeed("nothing here").found {
		t.Fatal("found an rsa line in nothing")
	}
}

func TestRunRendersTheCapturedSample(t *testing.T) {
	t.Parallel()
	in, err := os.ReadFile(filepath.Join("testdata", "sample-bench.txt"))
	if err != nil {
		t.Fatal(err)
	}
	const cmd = "go test -run '^$' -bench . -count 6 -benchtime 1s ./..."
	var out bytes.Buffer
	err = run([]string{
		"-cmd", cmd,
		"-openssl-speed", filepath.Join("testdata", "sample-openssl-speed.txt"),
		"-openssl-cmd", "taskset -c 0 openssl speed -seconds 3 rsa2048",
		"-rev", "commit 6746891",
		"-load", filepath.Join("testdata", "sample-load.txt"),
		"-cpuinfo", filepath.Join("testdata", "cpuinfo.txt"),
		"-go", "go1.26.8",
	}, bytes.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"- Machine: AMD EPYC, 2 logical CPUs (GOMAXPROCS 2), linux/amd64, Go 1.26.8.",
		"- Code: commit 6746891.",
		"50 samples): min 1.97, median 3.75, max 5.18",
		"  " + cmd + "\n",
		"| `wxpayd-openssl` | 31.2 | 29.2–32.2 | 29.3 | 5 | 1656 | reference |",
		"| `md5-gopay` |",
		"× `md5-wxpayd`",
		"RSA-2048 sign 245.0 µs (4086/s), verify 17.0 µs (57884/s).",
		"rsa 2048 bits 0.000245s 0.000017s   4085.8  57884.4",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if n := strings.Count(got, "**PASS**") + strings.Count(got, "**FAIL**"); n != len(bars) {
		t.Errorf("%d verdicts, want %d", n, len(bars))
	}
	golden := filepath.Join("testdata", "sample-report.md")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("report differs from %s (go test -update to accept):\n%s", golden, got)
	}
}

func TestRunRejectsBadInvocations(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(nil, strings.NewReader(""), &out); err == nil {
		t.Error("empty input accepted")
	}
	if err := run([]string{"extra"}, strings.NewReader("BenchmarkA-2 1 1 ns/op\n"), &out); err == nil {
		t.Error("a positional argument accepted")
	}
	if err := run([]string{"-openssl-speed", filepath.Join("testdata", "cpuinfo.txt")}, strings.NewReader("BenchmarkA-2 1 1 ns/op\n"), &out); err == nil {
		t.Error("an openssl speed file without an rsa line accepted")
	}
}
