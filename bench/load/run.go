package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrAuditFailed is returned by Run when the run completed but at least one
// audit check failed; the Result says which.
var ErrAuditFailed = errors.New("load: audit failed")

// ErrStack is returned when the stack cannot be used (unreachable, the
// catalogue set-up refused).
var ErrStack = errors.New("load: stack not usable")

// runner is one run's state.
type runner struct {
	cfg     Config
	targets []*endpoint // per node: polls, the audit's reads, /metrics, /admin
	shops   []*endpoint // per node: logins and prepays
	sim     *endpoint
	admin   string
	rec     *recorder
	start   time.Time
	skus    []skuPlan
	buyers  []*buyer // every buyer, flash and steady; written before the window, read after
	notes   []string
	phases  []Phase
	lag     *lagStat
	sem     chan struct{}
	stopped atomic.Bool
}

type skuPlan struct {
	name  string
	stock int
}

// Phase is a named part of the run, in seconds since it started.
type Phase struct {
	Name  string  `json:"name"`
	Start float64 `json:"start_s"`
	End   float64 `json:"end_s"`
}

// Run runs cfg's scenario against the stack, audits the end state, and
// writes the reports when cfg.Out is set. It returns the result with
// ErrAuditFailed when an audit check failed, an error wrapping ErrConfig or
// ErrStack when the run could not happen, or ctx's error. The run, audit
// included, ends within cfg.MaxTime.
func Run(parent context.Context, c Config) (*Result, error) {
	cfg := c.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	admin, err := cfg.adminToken()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(parent, cfg.MaxTime)
	defer cancel()
	r := &runner{cfg: cfg, admin: admin, start: time.Now(), lag: &lagStat{}, sem: make(chan struct{}, cfg.MaxInFlight)}
	r.rec = newRecorder(r.start)
	for _, t := range cfg.Targets {
		// Two pools per node, so a buyer's poll never waits behind other
		// buyers' prepays in the generator (each phone has its own
		// connection).
		shop, err := newEndpoint(t, cfg.Connections, cfg.Timeout)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		status, _ := newEndpoint(t, cfg.Connections, cfg.Timeout)
		r.shops = append(r.shops, shop)
		r.targets = append(r.targets, status)
	}
	if r.sim, err = newEndpoint(cfg.Sim, cfg.Connections, cfg.Timeout); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	res := &Result{Tool: "wxpaybench", RunID: cfg.RunID, Scenario: cfg.Scenario, Command: cfg.Command,
		Started: r.start, Config: viewConfig(&cfg), Machine: machineInfo()}

	// Before: what the stack has already counted, so the audit compares
	// this run's deltas.
	before, err := r.snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStack, err)
	}

	// Prepare: the catalogue and, for flash buyers, wx.login — what happens
	// before a sale opens. The time series start here.
	progress := r.progress(ctx)
	endPrep := r.phase("prepare")
	if err := r.prepare(ctx); err != nil {
		progress()
		return nil, fmt.Errorf("%w: %w", ErrStack, err)
	}
	endPrep()

	// The timed window, with wxpaysim's faults when asked for.
	restore, err := r.applySimFaults(ctx)
	if err != nil {
		progress()
		return nil, fmt.Errorf("%w: %w", ErrStack, err)
	}
	cpu0 := readCPU(r.targets, cfg.WatchPIDs)
	endWin := r.phase("window")
	r.window(ctx)
	endWin()
	restore()
	cpu1 := readCPU(r.targets, cfg.WatchPIDs)
	progress()
	res.CPU = cpuResult(cpu0, cpu1)
	res.Window = r.phases[len(r.phases)-1]

	// Drain and audit.
	endAudit := r.phase("audit")
	res.Audit = r.audit(ctx, before)
	endAudit()

	res.Finished = time.Now()
	res.Phases = r.phases
	res.Steps = r.rec.results()
	res.Outcome = r.outcome()
	res.Lag = r.lag.result()
	res.Notes = append(r.notes, r.methodNotes()...)
	switch {
	case parent.Err() != nil:
		res.Audit.Passed = false
		res.Audit.Checks = append(res.Audit.Checks, Check{Name: "ran to the end", Detail: "interrupted: " + parent.Err().Error(),
			Why: "An interrupted run leaves buyers half-way: its audit cannot be trusted."})
	case ctx.Err() != nil:
		res.Audit.Passed = false
		res.Audit.Checks = append(res.Audit.Checks, Check{Name: "ran to the end", Detail: "the run hit --max-time " + cfg.MaxTime.String(),
			Why: "A run cut short leaves buyers half-way: raise --max-time or shrink the run."})
	}
	if cfg.Out != "" {
		if err := writeReports(cfg.Out, res); err != nil {
			return res, err
		}
	}
	if parent.Err() != nil {
		return res, parent.Err()
	}
	if !res.Audit.Passed {
		return res, ErrAuditFailed
	}
	return res, nil
}

// phase opens a phase and returns the function that closes it.
func (r *runner) phase(name string) func() {
	r.phases = append(r.phases, Phase{Name: name, Start: round3(time.Since(r.start).Seconds())})
	i := len(r.phases) - 1
	return func() { r.phases[i].End = round3(time.Since(r.start).Seconds()) }
}

// prepare creates the run's SKUs and its buyers, and logs the flash buyers in.
func (r *runner) prepare(ctx context.Context) error {
	cfg := &r.cfg
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed))
	payer := func() bool { return rng.Float64() < cfg.PayShare }
	flash := cfg.RunID + "-flash"
	regular := cfg.RunID + "-regular"
	switch cfg.Scenario {
	case ScenarioFlashSale, ScenarioNotifyStorm:
		r.skus = []skuPlan{{flash, cfg.Stock}}
		for i := 0; i < cfg.Buyers; i++ {
			r.buyers = append(r.buyers, r.newBuyer(i, "f", flash, payer()))
		}
	case ScenarioSteady:
		r.skus = []skuPlan{{regular, cfg.Stock}}
		for i := 0; i < cfg.arrivals(); i++ {
			r.buyers = append(r.buyers, r.newBuyer(i, "s", regular, payer()))
		}
	case ScenarioMixed:
		n := cfg.arrivals()
		r.skus = []skuPlan{{regular, n}, {flash, cfg.Stock}}
		for i := 0; i < n; i++ {
			r.buyers = append(r.buyers, r.newBuyer(i, "s", regular, payer()))
		}
		for i := 0; i < cfg.Buyers; i++ {
			r.buyers = append(r.buyers, r.newBuyer(i, "f", flash, payer()))
		}
	}
	// Refunds draw from their own generator, so a seed picks the same payers
	// with or without them.
	if cfg.RefundShare > 0 {
		rr := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x7ef0d5))
		for _, b := range r.buyers {
			b.refunder = rr.Float64() < cfg.RefundShare
			b.refundFrac = 1
			if rr.IntN(2) == 0 {
				b.refundFrac = 0.1 + 0.8*rr.Float64()
			}
		}
	}
	for _, s := range r.skus {
		body, _ := json.Marshal(map[string]any{
			"description": "wxpaybench " + cfg.Scenario + " " + s.name, "price": cfg.Price,
			"stock": s.stock, "per_buyer_limit": cfg.PerBuyerLimit,
		})
		for _, ep := range r.targets[:1] { // the catalogue is shared by the nodes
			rep, err := ep.do("PUT", "/admin/v1/skus/"+s.name, r.admin, body, r.deadline(ctx))
			if err != nil {
				return fmt.Errorf("PUT /admin/v1/skus/%s on %s: %w", s.name, ep.host, err)
			}
			if rep.status != 200 {
				return fmt.Errorf("PUT /admin/v1/skus/%s on %s: %s", s.name, ep.host, answerCode(rep))
			}
		}
	}
	// Flash buyers open the Mini Program before the sale: log them in now,
	// closed-loop over Connections workers per target.
	var flashBuyers []*buyer
	for _, b := range r.buyers {
		if b.sku == flash {
			flashBuyers = append(flashBuyers, b)
		}
	}
	if len(flashBuyers) == 0 {
		return nil
	}
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(len(flashBuyers), cfg.Connections*len(r.targets)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(flashBuyers) {
					return
				}
				r.login(ctx, flashBuyers[i], time.Now())
			}
		}()
	}
	wg.Wait()
	ok := 0
	for _, b := range flashBuyers {
		if b.loggedIn {
			ok++
		}
	}
	r.notes = append(r.notes, fmt.Sprintf("Before the timed window: %d SKU(s) created through PUT /admin/v1/skus, and %d of %d flash-sale buyers logged in (wx.login code → POST /api/v1/login) in %.1f s over %d connections, as shoppers open the Mini Program before a sale starts. Their login latencies are in the login row; they are not part of the window's throughput.",
		len(r.skus), ok, len(flashBuyers), time.Since(t0).Seconds(), cfg.Connections*len(r.targets)))
	if ok == 0 {
		return errors.New("no flash-sale buyer could log in: is wxpayd pointed at this wxpaysim?")
	}
	return ctx.Err()
}

// window runs the scenario's arrivals and waits for every buyer to finish.
func (r *runner) window(ctx context.Context) {
	cfg := &r.cfg
	var wg sync.WaitGroup
	t0 := time.Now()
	var steady, flash []*buyer
	for _, b := range r.buyers {
		if b.sku == cfg.RunID+"-flash" {
			flash = append(flash, b)
		} else {
			steady = append(steady, b)
		}
	}
	flashArrival := func(i int) time.Duration {
		switch cfg.Arrival {
		case ArrivalRamp:
			return time.Duration(float64(cfg.Ramp) * float64(i) / float64(max(1, len(flash))))
		case ArrivalRate:
			return time.Duration(float64(time.Second) * float64(i) / cfg.Rate)
		}
		return 0
	}
	steadyArrival := func(i int) time.Duration {
		return time.Duration(float64(time.Second) * float64(i) / cfg.Rate)
	}
	var schedules sync.WaitGroup
	launch := func(list []*buyer, offset time.Duration, at func(int) time.Duration) {
		schedules.Add(1)
		go func() {
			defer schedules.Done()
			for i, b := range list {
				if b.sku == cfg.RunID+"-flash" && !b.loggedIn {
					continue // its login failed before the window
				}
				intended := t0.Add(offset + at(i))
				if d := time.Until(intended); d > 0 && !sleep(ctx, d) {
					return
				}
				select { // bounded in-flight; waiting here counts in latency, from intended
				case r.sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				r.lag.add(time.Since(intended))
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-r.sem }()
					r.shop(ctx, b, intended)
				}()
			}
		}()
	}
	switch cfg.Scenario {
	case ScenarioFlashSale, ScenarioNotifyStorm:
		launch(flash, 0, flashArrival)
	case ScenarioSteady:
		launch(steady, 0, steadyArrival)
	case ScenarioMixed:
		launch(steady, 0, steadyArrival)
		launch(flash, cfg.Duration/3, flashArrival)
	}
	schedules.Wait()
	wg.Wait()
}

// progress ticks the recorder every Tick and prints a line; the returned
// function stops it and takes a last tick.
func (r *runner) progress(ctx context.Context) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.cfg.Tick)
		defer t.Stop()
		var printed time.Time
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				r.rec.tick(now)
				if now.Sub(printed) >= time.Second-r.cfg.Tick/2 {
					r.printProgress(now)
					printed = now
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		r.rec.tick(time.Now())
		if r.cfg.Progress != nil && r.cfg.ProgressTTY {
			fmt.Fprintln(r.cfg.Progress)
		}
	}
}

func (r *runner) printProgress(now time.Time) {
	w := r.cfg.Progress
	if w == nil {
		return
	}
	line := fmt.Sprintf("%6.1fs", now.Sub(r.start).Seconds())
	for _, s := range []string{stepLogin, stepPrepay, stepPay, stepPoll, stepPaid} {
		l := r.rec.live(s, r.cfg.Tick)
		if l.count == 0 {
			continue
		}
		line += fmt.Sprintf(" | %s %5.0f/s n=%d err=%d p99=%s", s, l.lastRate, l.count, l.errors, fmtMs(l.p99))
	}
	line += " | in flight " + strconv.Itoa(len(r.sem))
	if r.cfg.ProgressTTY {
		fmt.Fprint(w, "\r\033[K"+line)
	} else {
		fmt.Fprintln(w, line)
	}
}

func fmtMs(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + "s"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 0, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
}

// lagStat is how late the scheduler started arrivals behind their intended
// times (a generator that falls behind shows here; latencies count from the
// intended time anyway).
type lagStat struct {
	mu    sync.Mutex
	n     int64
	late  int64 // more than 10 ms late
	max   time.Duration
	total time.Duration
}

func (l *lagStat) add(d time.Duration) {
	l.mu.Lock()
	l.n++
	l.total += d
	if d > 10*time.Millisecond {
		l.late++
	}
	if d > l.max {
		l.max = d
	}
	l.mu.Unlock()
}

// Lag summarises the scheduler's lateness.
type Lag struct {
	Arrivals int64   `json:"arrivals"`
	Late10ms int64   `json:"late_over_10ms"`
	MeanMs   float64 `json:"mean_ms"`
	MaxMs    float64 `json:"max_ms"`
}

func (l *lagStat) result() Lag {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := Lag{Arrivals: l.n, Late10ms: l.late, MaxMs: round3(float64(l.max) / 1e6)}
	if l.n > 0 {
		out.MeanMs = round3(float64(l.total) / float64(l.n) / 1e6)
	}
	return out
}

// Outcome counts what happened to the buyers.
type Outcome struct {
	Buyers   int `json:"buyers"`
	LoggedIn int `json:"logged_in"`
	Orders   int `json:"orders"`   // got prepay parameters
	SoldOut  int `json:"sold_out"` // SOLD_OUT or LIMIT_EXCEEDED
	Payers   int `json:"payers"`   // held an order and chose to pay
	Paid     int `json:"paid"`     // wxpaysim accepted the payment
	SeenPaid int `json:"seen_paid"`
	Unpaid   int `json:"unpaid"` // held an order and did not pay
}

func (r *runner) outcome() Outcome {
	o := Outcome{Buyers: len(r.buyers)}
	for _, b := range r.buyers {
		if b.loggedIn {
			o.LoggedIn++
		}
		if b.soldOut {
			o.SoldOut++
		}
		if b.otn == "" {
			continue
		}
		o.Orders++
		if b.payer {
			o.Payers++
		} else {
			o.Unpaid++
		}
		if b.paid {
			o.Paid++
		}
		if b.seenPaid {
			o.SeenPaid++
		}
	}
	return o
}

// methodNotes explain how the numbers were taken.
func (r *runner) methodNotes() []string {
	cfg := &r.cfg
	var n []string
	switch cfg.Scenario {
	case ScenarioFlashSale, ScenarioNotifyStorm:
		switch cfg.Arrival {
		case ArrivalBurst:
			n = append(n, fmt.Sprintf("Arrival: burst. All %d buyers tap \"buy\" the instant the sale opens. Their first prepay is measured from that instant, so time spent waiting for one of the %d login/prepay connections per node counts as latency (it is where a shopper behind a saturated front end would wait too; raise --connections to move that queue into wxpayd).", cfg.Buyers, cfg.Connections))
		case ArrivalRamp:
			n = append(n, fmt.Sprintf("Arrival: ramp. %d buyers spread evenly over %v; each first prepay is measured from its intended arrival time (open loop, no coordinated omission).", cfg.Buyers, cfg.Ramp))
		case ArrivalRate:
			n = append(n, fmt.Sprintf("Arrival: open loop at %.0f buyers/s; each first prepay is measured from its intended arrival time, so a slow answer cannot hide the queue behind it (no coordinated omission).", cfg.Rate))
		}
	case ScenarioSteady:
		n = append(n, fmt.Sprintf("Arrival: open loop at %.0f new buyers/s for %v (%d arrivals). Each arrival logs in, prepays and pays; its first request is measured from its intended arrival time (no coordinated omission).", cfg.Rate, cfg.Duration, cfg.arrivals()))
	case ScenarioMixed:
		n = append(n, fmt.Sprintf("Mixed: %.0f new buyers/s for %v on a regular SKU (log in, prepay, pay), and at %v a flash sale of %d pre-logged-in buyers (%s) for %d units.", cfg.Rate, cfg.Duration, cfg.Duration/3, cfg.Buyers, cfg.Arrival, cfg.Stock))
	}
	if cfg.RefundShare > 0 {
		n = append(n, fmt.Sprintf("Refunds: the admin refunds each paid order with probability %.2f once its buyer saw PAID, half in full and half in part (10–90%%), through POST /admin/v1/orders/{out_trade_no}/refunds with one Idempotency-Key per order, retried after 429, 5xx or no answer; the audit waits for the refunds to settle and compares them with wxpaysim's, order by order.", cfg.RefundShare))
	}
	n = append(n,
		fmt.Sprintf("Buyers who hold an order pay with probability %.2f (seed %d). Paying is wxpaysim's POST /sim/v1/pay with the openid derived locally from the login code and the prepay's appId (no extra request). The buyer then polls its order every %v, doubling to %v, until PAID.", cfg.PayShare, cfg.Seed, cfg.PollInterval, 4*cfg.PollInterval),
		"Notifications are signed, encrypted and delivered by wxpaysim itself (with its fault flags for a notify-storm); the generator signs nothing, so no signing work falls in the timed window.",
		fmt.Sprintf("Prepay answers 429/503 are retried up to %d times after Retry-After, each attempt a sample; 409 SOLD_OUT and LIMIT_EXCEEDED are expected refusals, not errors.", cfg.Retries),
		"Latency histograms are HDR (1 µs – 5 min, 3 significant digits); percentiles are exact to 0.1%.",
	)
	return n
}
