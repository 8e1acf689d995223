package load

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Result is everything a run measured and concluded; results.json is its
// JSON encoding.
type Result struct {
	Tool     string       `json:"tool"`
	RunID    string       `json:"run_id"`
	Scenario string       `json:"scenario"`
	Command  string       `json:"command"`
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	Config   ConfigView   `json:"config"`
	Machine  Machine      `json:"machine"`
	Phases   []Phase      `json:"phases"`
	Window   Phase        `json:"window"`
	Steps    []StepResult `json:"steps"`
	Outcome  Outcome      `json:"outcome"`
	Lag      Lag          `json:"scheduler_lag"`
	CPU      CPU          `json:"cpu"`
	Audit    AuditResult  `json:"audit"`
	Notes    []string     `json:"notes"`
}

// Step returns the named step's result, or nil.
func (r *Result) Step(name string) *StepResult {
	for i := range r.Steps {
		if r.Steps[i].Name == name {
			return &r.Steps[i]
		}
	}
	return nil
}

// ConfigView is the configuration as run, with defaults applied and
// without secrets.
type ConfigView struct {
	Targets      []string `json:"targets"`
	Sim          string   `json:"sim"`
	ClickHouse   string   `json:"clickhouse,omitempty"`
	Scenario     string   `json:"scenario"`
	Buyers       int      `json:"buyers"`
	Stock        int      `json:"stock"`
	PayShare     float64  `json:"pay_share"`
	Rate         float64  `json:"rate"`
	Duration     string   `json:"duration"`
	Connections  int      `json:"connections"`
	Arrival      string   `json:"arrival"`
	Ramp         string   `json:"ramp"`
	MaxTime      string   `json:"max_time"`
	Timeout      string   `json:"timeout"`
	Retries      int      `json:"retries"`
	PaidTimeout  string   `json:"paid_timeout"`
	AwaitTTL     bool     `json:"await_ttl"`
	PerBuyerLim  int      `json:"per_buyer_limit"`
	RefundShare  float64  `json:"refund_share,omitempty"`
	SimFaults    string   `json:"sim_faults,omitempty"`
	SimOutcomes  string   `json:"sim_refund_outcomes,omitempty"`
	Price        int64    `json:"price_fen"`
	Seed         int64    `json:"seed"`
	MaxInFlight  int      `json:"max_in_flight"`
	AuditTimeout string   `json:"audit_timeout"`
}

func viewConfig(c *Config) ConfigView {
	return ConfigView{
		Targets: c.Targets, Sim: c.Sim, ClickHouse: c.ClickHouse, Scenario: c.Scenario, Buyers: c.Buyers,
		Stock: c.Stock, PayShare: c.PayShare, Rate: c.Rate, Duration: c.Duration.String(), Connections: c.Connections,
		Arrival: c.Arrival, Ramp: c.Ramp.String(), MaxTime: c.MaxTime.String(), Timeout: c.Timeout.String(),
		Retries: c.Retries, PaidTimeout: c.PaidTimeout.String(), AwaitTTL: c.AwaitTTL, PerBuyerLim: c.PerBuyerLimit,
		RefundShare: c.RefundShare, SimFaults: c.SimFaults, SimOutcomes: c.SimRefundOutcomes,
		Price: c.Price, Seed: c.Seed, MaxInFlight: c.MaxInFlight, AuditTimeout: c.AuditTimeout.String(),
	}
}

// Machine describes where the run happened.
type Machine struct {
	Hostname string  `json:"hostname"`
	OS       string  `json:"os"`
	Kernel   string  `json:"kernel"`
	CPUModel string  `json:"cpu_model"`
	Cores    int     `json:"cores"`
	MemGiB   float64 `json:"mem_gib"`
	Go       string  `json:"go"`
	LoadAvg  string  `json:"loadavg_at_start"`
}

func machineInfo() Machine {
	m := Machine{OS: runtime.GOOS + "/" + runtime.GOARCH, Cores: runtime.NumCPU(), Go: runtime.Version()}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fs := strings.Fields(sc.Text()); len(fs) >= 2 && fs[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(fs[1], 64)
				m.MemGiB = round3(kb / (1 << 20))
				break
			}
		}
		f.Close()
	}
	return m
}
