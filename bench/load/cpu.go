package load

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/stat and /proc/PID/stat times
// (100 on every Linux this runs on).
const clockTicks = 100

// cpuSample is CPU time consumed so far, in seconds.
type cpuSample struct {
	at        time.Time
	self      float64            // this process (getrusage)
	machine   float64            // every core, busy time (/proc/stat)
	machineOK bool               // /proc/stat was readable
	wxpayd    float64            // process_cpu_seconds_total summed over the targets
	wxpaydOK  bool               // every target reported it
	pids      map[string]float64 // watched processes
}

func readCPU(targets []*endpoint, pids map[string]int) cpuSample {
	s := cpuSample{at: time.Now(), pids: map[string]float64{}}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = tv(ru.Utime) + tv(ru.Stime)
	}
	s.machine, s.machineOK = machineBusy()
	s.wxpaydOK = len(targets) > 0
	for _, ep := range targets {
		rep, err := ep.do("GET", "/metrics", "", nil, time.Now().Add(5*time.Second))
		if err != nil || rep.status != 200 {
			s.wxpaydOK = false
			continue
		}
		m := metricSet(parseMetrics(rep.body))
		found := false
		for _, x := range m {
			if x.name == "process_cpu_seconds_total" {
				s.wxpayd += x.value
				found = true
			}
		}
		s.wxpaydOK = s.wxpaydOK && found
	}
	for name, pid := range pids {
		if v, ok := procCPU(pid); ok {
			s.pids[name] = v
		}
	}
	return s
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// machineBusy is the non-idle CPU time of all cores from /proc/stat.
func machineBusy() (float64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] != "cpu" {
			continue
		}
		// user nice system idle iowait irq softirq steal ...
		var busy float64
		for i, v := range f[1:] {
			if i == 3 || i == 4 || i >= 8 { // idle, iowait, guest (already in user)
				continue
			}
			n, _ := strconv.ParseFloat(v, 64)
			busy += n
		}
		return busy / clockTicks, true
	}
	return 0, false
}

// procCPU is a process's user+system time from /proc/PID/stat.
func procCPU(pid int) (float64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseFloat(f[11], 64) // utime is field 14 overall
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks, true
}

// CPU is the CPU time spent during the timed window.
type CPU struct {
	WindowSeconds float64 `json:"window_s"`
	Cores         int     `json:"cores"`
	// Generator is wxpaybench's own CPU time, s.
	Generator float64 `json:"generator_s"`
	// Machine is every process's CPU time (busy, all cores), s; 0 if
	// unknown.
	Machine float64 `json:"machine_s"`
	// Wxpayd is the targets' process_cpu_seconds_total Δ; -1 if unknown.
	Wxpayd float64 `json:"wxpayd_s"`
	// Processes are the watched processes' CPU time, s.
	Processes []ProcCPU `json:"processes,omitempty"`
	// GeneratorShare is Generator / Machine: the generator's share of the
	// CPU the machine spent.
	GeneratorShare float64 `json:"generator_share"`
	// GeneratorCores is Generator / window: cores the generator kept busy.
	GeneratorCores float64 `json:"generator_cores"`
	// MachineUtilisation is Machine / (cores × window).
	MachineUtilisation float64 `json:"machine_utilisation"`
}

// ProcCPU is one watched process.
type ProcCPU struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"cpu_s"`
	Share   float64 `json:"share"` // of Machine
}

func cpuResult(a, b cpuSample) CPU {
	w := b.at.Sub(a.at).Seconds()
	c := CPU{WindowSeconds: round3(w), Cores: runtime.NumCPU(), Generator: round3(b.self - a.self), Wxpayd: -1}
	if a.machineOK && b.machineOK {
		c.Machine = round3(b.machine - a.machine)
	}
	if a.wxpaydOK && b.wxpaydOK {
		c.Wxpayd = round3(b.wxpayd - a.wxpayd)
	}
	if c.Machine > 0 {
		c.GeneratorShare = round3(c.Generator / c.Machine)
	}
	if w > 0 {
		c.GeneratorCores = round3(c.Generator / w)
		c.MachineUtilisation = round3(c.Machine / (w * float64(c.Cores)))
	}
	for name, v := range b.pids {
		if v0, ok := a.pids[name]; ok {
			p := ProcCPU{Name: name, Seconds: round3(v - v0)}
			if c.Machine > 0 {
				p.Share = round3(p.Seconds / c.Machine)
			}
			c.Processes = append(c.Processes, p)
		}
	}
	sort.Slice(c.Processes, func(i, j int) bool { return c.Processes[i].Name < c.Processes[j].Name })
	return c
}
