package load

import (
	"sort"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Outcome classes of one request.
type class uint8

const (
	classOK        class = iota // the answer a buyer wants
	classRejected               // an expected business refusal (SOLD_OUT, LIMIT_EXCEEDED)
	classThrottled              // 429: load shedding, retried after Retry-After
	classError                  // anything else: 5xx, transport failure, timeout, wrong answer
)

// Histogram bounds: 1 µs to 5 min, in microseconds.
const (
	histMin = 1
	histMax = int64(5 * time.Minute / time.Microsecond)
)

// Step names, in report order.
const (
	stepLogin   = "login"
	stepPrepay  = "prepay"
	stepPay     = "pay"
	stepPoll    = "poll"
	stepPaid    = "paid"
	stepCheckot = "checkout"
	stepRefund  = "refund"
)

var stepDescriptions = map[string]string{
	stepLogin:   "POST /api/v1/login: wx.login code → session (wxpayd calls jscode2session on wxpaysim)",
	stepPrepay:  "POST /api/v1/orders: reserve stock, JSAPI prepay at wxpaysim, sign wx.requestPayment; one sample per attempt",
	stepPay:     "POST /sim/v1/pay: the buyer confirms wx.requestPayment; wxpaysim schedules the signed notification",
	stepPoll:    "GET /api/v1/orders/{out_trade_no}: one sample per poll while waiting for PAID",
	stepPaid:    "from the pay answer to the first poll that reads PAID: notification delivery, verification, fsync (resolution: the poll interval, 20 ms doubling to 80 ms by default)",
	stepCheckot: "a paying buyer's whole journey, from its (intended) arrival to PAID: the number a shopper feels",
	stepRefund:  "POST /admin/v1/orders/{out_trade_no}/refunds with an Idempotency-Key: wxpayd records the refund and asks WeChat (wxpaysim); one sample per attempt",
}

var stepOrder = []string{stepLogin, stepPrepay, stepPay, stepPoll, stepPaid, stepCheckot, stepRefund}

// recorder holds one histogram per step for the whole run plus one-tick
// windows for the time series. Safe for concurrent use.
type recorder struct {
	start time.Time
	steps map[string]*stepRec
}

type stepRec struct {
	mu        sync.Mutex
	name      string
	total     *hdrhistogram.Histogram
	window    *hdrhistogram.Histogram
	classes   [4]int64
	codes     map[string]*codeStat
	first     time.Time // earliest start
	last      time.Time // latest end
	winCount  int64
	winErrors int64
	series    []Point
}

type codeStat struct {
	c class
	n int64
}

// Point is one tick of a step's time series.
type Point struct {
	T      float64 `json:"t"`      // seconds since the run started, at the end of the tick
	Count  int64   `json:"count"`  // samples completed in the tick
	Errors int64   `json:"errors"` // of which errors (classError)
	P50    float64 `json:"p50_ms"` // latency of the tick's samples, ms
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

func newRecorder(start time.Time) *recorder {
	r := &recorder{start: start, steps: map[string]*stepRec{}}
	for _, n := range stepOrder {
		r.steps[n] = &stepRec{
			name:   n,
			total:  hdrhistogram.New(histMin, histMax, 3),
			window: hdrhistogram.New(histMin, histMax, 2),
			codes:  map[string]*codeStat{},
		}
	}
	return r
}

// observe records one sample of step: it started at start (the intended
// start for the first request of an open-loop arrival) and ended at end.
func (r *recorder) observe(step string, start, end time.Time, c class, code string) {
	s := r.steps[step]
	us := end.Sub(start).Microseconds()
	if us < histMin {
		us = histMin
	}
	if us > histMax {
		us = histMax
	}
	s.mu.Lock()
	_ = s.total.RecordValue(us)
	_ = s.window.RecordValue(us)
	s.classes[c]++
	if c != classOK {
		cs := s.codes[code]
		if cs == nil {
			cs = &codeStat{c: c}
			s.codes[code] = cs
		}
		cs.n++
	}
	if s.first.IsZero() || start.Before(s.first) {
		s.first = start
	}
	if end.After(s.last) {
		s.last = end
	}
	s.winCount++
	if c == classError {
		s.winErrors++
	}
	s.mu.Unlock()
}

// tick closes the current window of every step at now.
func (r *recorder) tick(now time.Time) {
	t := now.Sub(r.start).Seconds()
	for _, n := range stepOrder {
		s := r.steps[n]
		s.mu.Lock()
		p := Point{T: round3(t), Count: s.winCount, Errors: s.winErrors}
		if s.winCount > 0 {
			p.P50 = ms(s.window.ValueAtQuantile(50))
			p.P99 = ms(s.window.ValueAtQuantile(99))
			p.Max = ms(s.window.Max())
		}
		s.series = append(s.series, p)
		s.window.Reset()
		s.winCount, s.winErrors = 0, 0
		s.mu.Unlock()
	}
}

// live is a progress snapshot of one step.
type live struct {
	count, errors int64
	p99           float64 // ms, whole run so far
	lastRate      float64 // per second, over the last second's ticks
}

func (r *recorder) live(step string, tick time.Duration) live {
	s := r.steps[step]
	s.mu.Lock()
	defer s.mu.Unlock()
	l := live{count: s.total.TotalCount(), errors: s.classes[classError]}
	if l.count > 0 {
		l.p99 = ms(s.total.ValueAtQuantile(99))
	}
	k := max(1, int(time.Second/tick))
	var sum int64
	n := 0
	for i := len(s.series) - 1; i >= 0 && n < k; i-- {
		sum += s.series[i].Count
		n++
	}
	if n > 0 {
		l.lastRate = float64(sum) / (float64(n) * tick.Seconds())
	}
	return l
}

// StepResult is one step's numbers in the results.
type StepResult struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Count       int64   `json:"count"`
	OK          int64   `json:"ok"`
	Rejected    int64   `json:"rejected"`  // expected business refusals
	Throttled   int64   `json:"throttled"` // 429
	Errors      int64   `json:"errors"`
	SpanSeconds float64 `json:"span_s"`     // first start to last end
	Throughput  float64 `json:"throughput"` // samples per second over the span
	// Latency in milliseconds.
	Latency Latency `json:"latency_ms"`
	// Codes counts every answer that was not OK, by "status CODE" or the
	// transport failure.
	Codes        []CodeCount `json:"codes"`
	Series       []Point     `json:"series"`
	Distribution []Quantile  `json:"distribution"`
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// CodeCount is the number of answers with one code.
type CodeCount struct {
	Code  string `json:"code"`
	Class string `json:"class"`
	Count int64  `json:"count"`
}

// Quantile is one point of a latency distribution.
type Quantile struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

var distPercentiles = []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 98, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100}

// results returns the steps that have samples, in report order.
func (r *recorder) results() []StepResult {
	var out []StepResult
	for _, n := range stepOrder {
		s := r.steps[n]
		s.mu.Lock()
		cnt := s.total.TotalCount()
		if cnt == 0 {
			s.mu.Unlock()
			continue
		}
		sr := StepResult{
			Name: n, Description: stepDescriptions[n], Count: cnt,
			OK: s.classes[classOK], Rejected: s.classes[classRejected], Throttled: s.classes[classThrottled], Errors: s.classes[classError],
			Latency: Latency{
				Min: ms(s.total.Min()), Mean: round3(s.total.Mean() / 1000),
				P50: ms(s.total.ValueAtQuantile(50)), P90: ms(s.total.ValueAtQuantile(90)),
				P99: ms(s.total.ValueAtQuantile(99)), P999: ms(s.total.ValueAtQuantile(99.9)), Max: ms(s.total.Max()),
			},
			Series: append([]Point(nil), s.series...),
		}
		if span := s.last.Sub(s.first).Seconds(); span > 0 {
			sr.SpanSeconds = round3(span)
			sr.Throughput = round3(float64(cnt) / span)
		}
		for _, p := range distPercentiles {
			sr.Distribution = append(sr.Distribution, Quantile{p, ms(s.total.ValueAtQuantile(p))})
		}
		for c, k := range s.codes {
			sr.Codes = append(sr.Codes, CodeCount{Code: c, Class: k.c.String(), Count: k.n})
		}
		s.mu.Unlock()
		sort.Slice(sr.Codes, func(i, j int) bool {
			if sr.Codes[i].Count != sr.Codes[j].Count {
				return sr.Codes[i].Count > sr.Codes[j].Count
			}
			return sr.Codes[i].Code < sr.Codes[j].Code
		})
		out = append(out, sr)
	}
	return out
}

func (c class) String() string {
	switch c {
	case classOK:
		return "ok"
	case classRejected:
		return "rejected"
	case classThrottled:
		return "throttled"
	}
	return "error"
}

func ms(us int64) float64 { return round3(float64(us) / 1000) }

func round3(f float64) float64 {
	if f != f {
		return 0
	}
	return float64(int64(f*1000+0.5)) / 1000
}
