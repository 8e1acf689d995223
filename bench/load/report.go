package load

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"strings"
)

//go:embed report.html.tmpl
var reportTemplate string

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"ms":      fmtLatency,
	"pct":     func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	"f1":      func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"f0":      func(f float64) string { return fmt.Sprintf("%.0f", f) },
	"join":    strings.Join,
	"sub":     func(a, b float64) float64 { return a - b },
	"passTxt": passText,
}).Parse(reportTemplate))

func passText(c Check) string {
	switch {
	case c.Skipped:
		return "skipped"
	case c.Passed:
		return "pass"
	}
	return "FAIL"
}

// Files written into Config.Out.
const (
	FileJSON    = "results.json"
	FileHTML    = "report.html"
	FileSummary = "summary.md"
)

// writeReports writes results.json, report.html and summary.md into dir.
func writeReports(dir string, r *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("load: --out: %w", err)
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("load: encode results: %w", err)
	}
	h, err := HTML(r)
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{FileJSON: append(j, '\n'), FileHTML: h, FileSummary: []byte(Markdown(r))} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("load: write %s: %w", name, err)
		}
	}
	return nil
}

// HTML renders the self-contained report: inline CSS and SVG, no script,
// nothing fetched.
func HTML(r *Result) ([]byte, error) {
	var b bytes.Buffer
	err := reportTmpl.Execute(&b, struct {
		R      *Result
		Charts []template.HTML
	}{r, charts(r)})
	if err != nil {
		return nil, fmt.Errorf("load: render report: %w", err)
	}
	return b.Bytes(), nil
}

// Markdown is a short summary for docs/benchmarks.md and terminals: the
// per-step table, errors by code, the audit and the CPU shares.
func Markdown(r *Result) string {
	var b strings.Builder
	verdict := "PASSED"
	if !r.Audit.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "#### %s: %s\n\n", r.Scenario, scenarioLine(r))
	fmt.Fprintf(&b, "Timed window %.1f s. Outcome: %d buyers, %d orders, %d sold out, %d paid, %d saw PAID, %d unpaid. Audit **%s**.\n\n",
		r.Window.End-r.Window.Start, r.Outcome.Buyers, r.Outcome.Orders, r.Outcome.SoldOut, r.Outcome.Paid, r.Outcome.SeenPaid, r.Outcome.Unpaid, verdict)
	b.WriteString("| step | requests | ok | refused | 429 | errors | per s | p50 | p90 | p99 | p99.9 | max |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %.0f | %s | %s | %s | %s | %s |\n", s.Name, s.Count, s.OK, s.Rejected, s.Throttled, s.Errors,
			s.Throughput, fmtLatency(s.Latency.P50), fmtLatency(s.Latency.P90), fmtLatency(s.Latency.P99), fmtLatency(s.Latency.P999), fmtLatency(s.Latency.Max))
	}
	var codes []string
	for _, s := range r.Steps {
		for _, k := range s.Codes {
			codes = append(codes, fmt.Sprintf("%s `%s` × %d (%s)", s.Name, k.Code, k.Count, k.Class))
		}
	}
	if len(codes) > 0 {
		fmt.Fprintf(&b, "\nAnswers other than OK: %s.\n", strings.Join(codes, "; "))
	} else {
		b.WriteString("\nEvery answer was OK.\n")
	}
	b.WriteString("\nAudit:\n\n")
	for _, k := range r.Audit.Checks {
		fmt.Fprintf(&b, "- %s **%s**: %s\n", passText(k), k.Name, k.Detail)
	}
	b.WriteString("\n")
	b.WriteString(cpuLine(r))
	b.WriteString("\n")
	return b.String()
}

func scenarioLine(r *Result) string {
	c := r.Config
	switch r.Scenario {
	case ScenarioSteady:
		return fmt.Sprintf("%.0f new buyers/s for %s, pay share %.2f, %d connections per pool", c.Rate, c.Duration, c.PayShare, c.Connections)
	case ScenarioMixed:
		return fmt.Sprintf("%.0f buyers/s for %s plus a %s flash sale of %d buyers for %d units, pay share %.2f, %d connections per pool",
			c.Rate, c.Duration, c.Arrival, c.Buyers, c.Stock, c.PayShare, c.Connections)
	}
	arr := c.Arrival
	switch c.Arrival {
	case ArrivalRamp:
		arr = "ramp over " + c.Ramp
	case ArrivalRate:
		arr = fmt.Sprintf("%.0f/s", c.Rate)
	}
	return fmt.Sprintf("%d buyers for %d units (%s), pay share %.2f, %d connections per pool", c.Buyers, c.Stock, arr, c.PayShare, c.Connections)
}

func cpuLine(r *Result) string {
	c := r.CPU
	s := fmt.Sprintf("CPU during the window (%.1f s, %d cores): generator %.1f s (%.2f cores, %.0f%% of the %.1f CPU-s the machine spent)",
		c.WindowSeconds, c.Cores, c.Generator, c.GeneratorCores, c.GeneratorShare*100, c.Machine)
	watched := false
	for _, p := range c.Processes {
		watched = watched || p.Name == "wxpayd"
	}
	if c.Wxpayd >= 0 && !watched {
		s += fmt.Sprintf(", wxpayd %.1f s (its /metrics)", c.Wxpayd)
	}
	for _, p := range c.Processes {
		s += fmt.Sprintf(", %s %.1f s (%.0f%%)", p.Name, p.Seconds, p.Share*100)
	}
	return s + fmt.Sprintf("; machine utilisation %.0f%%.\n", c.MachineUtilisation*100)
}
