package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wxpayd/wxpayd/bench/sim"
)

// sample is one Prometheus text-format sample.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text exposition format (what wxpayd's
// /metrics serves); comments and malformed lines are skipped.
func parseMetrics(b []byte) []sample {
	var out []sample
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			s.name = line[:i]
			parseLabels(line[i+1:j], s.labels)
			rest = strings.TrimSpace(line[j+1:])
		} else {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			s.name, rest = f[0], f[1]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

func parseLabels(s string, into map[string]string) {
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return
		}
		key := strings.TrimSpace(strings.TrimPrefix(s[:eq], ","))
		var val strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			val.WriteByte(s[i])
		}
		into[key] = val.String()
		s = strings.TrimPrefix(s[min(i+1, len(s)):], ",")
	}
}

// metricSet is the samples of every target.
type metricSet []sample

// sum adds the samples of name whose labels include every pair of match.
func (m metricSet) sum(name string, match ...string) float64 {
	var t float64
next:
	for _, s := range m {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(match); i += 2 {
			if s.labels[match[i]] != match[i+1] {
				continue next
			}
		}
		t += s.value
	}
	return t
}

// snapshot is what the stack has counted at one moment.
type snapshot struct {
	at      time.Time
	sim     sim.Stats
	metrics metricSet
}

// snapshot reads wxpaysim's stats and every target's /metrics.
func (r *runner) snapshot(ctx context.Context) (snapshot, error) {
	s := snapshot{at: time.Now()}
	st, err := r.simStats(ctx)
	if err != nil {
		return s, err
	}
	s.sim = st
	for _, ep := range r.targets {
		rep, err := ep.do("GET", "/metrics", "", nil, r.deadline(ctx))
		if err != nil {
			return s, fmt.Errorf("GET %s/metrics: %w", ep.base, err)
		}
		if rep.status != 200 {
			return s, fmt.Errorf("GET %s/metrics: status %d", ep.base, rep.status)
		}
		s.metrics = append(s.metrics, parseMetrics(rep.body)...)
	}
	return s, nil
}

func (r *runner) simStats(ctx context.Context) (sim.Stats, error) {
	var st sim.Stats
	rep, err := r.sim.do("GET", "/sim/v1/stats", "", nil, r.deadline(ctx))
	if err != nil {
		return st, fmt.Errorf("GET %s/sim/v1/stats: %w", r.sim.base, err)
	}
	if rep.status != 200 {
		return st, fmt.Errorf("GET %s/sim/v1/stats: status %d", r.sim.base, rep.status)
	}
	if err := json.Unmarshal(rep.body, &st); err != nil {
		return st, fmt.Errorf("GET %s/sim/v1/stats: %w", r.sim.base, err)
	}
	return st, nil
}
