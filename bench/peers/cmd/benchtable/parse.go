package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// sample is one result line of `go test -bench`.
type sample struct {
	nsPerOp     float64
	bytesPerOp  float64 // NaN without -benchmem/ReportAllocs
	allocsPerOp float64 // NaN without -benchmem/ReportAllocs
	cpuNsPerOp  float64 // the peers' cpu-ns/op metric (process CPU time); NaN without it
}

// bench collects every run of one benchmark.
type bench struct {
	family string // top-level name without "Benchmark": "Authorization"
	sub    string // sub-benchmark path below it, "" for a top-level benchmark
	pkg    string
	runs   []sample
}

func (b *bench) fullName() string {
	if b.sub == "" {
		return "Benchmark" + b.family
	}
	return "Benchmark" + b.family + "/" + b.sub
}

// report is everything read from the benchmark output.
type report struct {
	goos, goarch, cpu string
	procs             int      // GOMAXPROCS, from the -N name suffix
	pkgs              []string // in order of appearance
	families          []string // in order of appearance
	benches           map[string]*bench
	order             []string // full names in order of appearance
}

var procsSuffix = regexp.MustCompile(`-(\d+)$`)

// parseBench reads `go test -bench` output. Lines that are not results or
// the goos/goarch/pkg/cpu header are ignored, so several -count runs and
// several packages may be concatenated.
func parseBench(r io.Reader) (*report, error) {
	rep := &report{benches: map[string]*bench{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	pkg := ""
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, "Benchmark") {
			switch k {
			case "goos":
				rep.goos = v
			case "goarch":
				rep.goarch = v
			case "cpu":
				rep.cpu = v
			case "pkg":
				pkg = v
				if !slices.Contains(rep.pkgs, v) {
					rep.pkgs = append(rep.pkgs, v)
				}
			}
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		// Name, iterations, value unit pairs. A benchmark that logs or fails
		// prints its name alone; skip such lines.
		if len(f) < 4 || (len(f)-2)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		name := f[0]
		if m := procsSuffix.FindStringSubmatch(name); m != nil {
			n, _ := strconv.Atoi(m[1])
			rep.procs = n
			name = strings.TrimSuffix(name, m[0])
		}
		s := sample{nsPerOp: math.NaN(), bytesPerOp: math.NaN(), allocsPerOp: math.NaN(), cpuNsPerOp: math.NaN()}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: bad value %q: %w", lineNo, f[i], err)
			}
			switch f[i+1] {
			case "ns/op":
				s.nsPerOp = v
			case "B/op":
				s.bytesPerOp = v
			case "allocs/op":
				s.allocsPerOp = v
			case "cpu-ns/op":
				s.cpuNsPerOp = v
			}
		}
		if math.IsNaN(s.nsPerOp) {
			continue
		}
		b := rep.benches[name]
		if b == nil {
			family, sub, _ := strings.Cut(strings.TrimPrefix(name, "Benchmark"), "/")
			b = &bench{family: family, sub: sub, pkg: pkg}
			rep.benches[name] = b
			rep.order = append(rep.order, name)
			if !slices.Contains(rep.families, family) {
				rep.families = append(rep.families, family)
			}
		}
		b.runs = append(b.runs, s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rep.order) == 0 {
		return nil, fmt.Errorf("no benchmark results in the input")
	}
	return rep, nil
}

// median of the non-NaN values; NaN if there are none. An even count gives
// the mean of the two middle values.
func median(xs []float64) float64 {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func (b *bench) values(f func(sample) float64) []float64 {
	out := make([]float64, len(b.runs))
	for i, s := range b.runs {
		out[i] = f(s)
	}
	return out
}

func (b *bench) medianNs() float64 {
	return median(b.values(func(s sample) float64 { return s.nsPerOp }))
}
func (b *bench) medianCPU() float64 {
	return median(b.values(func(s sample) float64 { return s.cpuNsPerOp }))
}

func (b *bench) medianAllocs() float64 {
	return median(b.values(func(s sample) float64 { return s.allocsPerOp }))
}
func (b *bench) medianBytes() float64 {
	return median(b.values(func(s sample) float64 { return s.bytesPerOp }))
}

func (b *bench) minMaxNs() (float64, float64) {
	v := b.values(func(s sample) float64 { return s.nsPerOp })
	return slices.Min(v), slices.Max(v)
}

// lookup finds a benchmark of family by its sub-benchmark name.
func (r *report) lookup(family, sub string) *bench {
	if sub == "" {
		return r.benches["Benchmark"+family]
	}
	return r.benches["Benchmark"+family+"/"+sub]
}

// familyBenches returns a family's benchmarks in order of appearance.
func (r *report) familyBenches(family string) []*bench {
	var out []*bench
	for _, n := range r.order {
		if b := r.benches[n]; b.family == family {
			out = append(out, b)
		}
	}
	return out
}

// opensslSpeed is the rsa2048 line of `openssl speed rsa2048`.
type opensslSpeed struct {
	raw              string
	signS, verifyS   float64 // seconds per operation
	signPS, verifyPS float64 // operations per second
	found            bool
}

var rsa2048Line = regexp.MustCompile(`(?m)^rsa\s+2048\s+bits\s+([0-9.]+)s\s+([0-9.]+)s\s+([0-9.]+)\s+([0-9.]+)`)

func parseOpenSSLSpeed(raw string) opensslSpeed {
	o := opensslSpeed{raw: raw}
	m := rsa2048Line.FindStringSubmatch(raw)
	if m == nil {
		return o
	}
	vals := make([]float64, 4)
	for i := range vals {
		v, err := strconv.ParseFloat(m[i+1], 64)
		if err != nil {
			return o
		}
		vals[i] = v
	}
	o.signS, o.verifyS, o.signPS, o.verifyPS = vals[0], vals[1], vals[2], vals[3]
	o.found = true
	return o
}

// loadSummary summarises /proc/loadavg samples (one per line, first field
// = 1-minute load average).
type loadSummary struct {
	n             int
	min, med, max float64
}

func parseLoad(raw string) loadSummary {
	var v []float64
	for _, line := range strings.Split(raw, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		x, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		v = append(v, x)
	}
	if len(v) == 0 {
		return loadSummary{}
	}
	return loadSummary{n: len(v), min: slices.Min(v), med: median(v), max: slices.Max(v)}
}

// cpuInfo reads the model name and logical CPU count from /proc/cpuinfo text.
func cpuInfo(raw string) (model string, cpus int) {
	for _, line := range strings.Split(raw, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			cpus++
		case "model name":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		}
	}
	return model, cpus
}
