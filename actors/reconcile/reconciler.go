package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

// Reconciler runs the daily reconciliation over a store: Run is the job,
// Request, Report and Resolve the admin API. It is safe for concurrent use;
// one date is reconciled at a time. Close stops Run and waits for it.
type Reconciler struct {
	cfg    Config
	st     *store.Store
	wc     WeChat
	orders Orders
	loader Loader
	m      *metrics

	runMu  sync.Mutex // held while a date is reconciled (Run's loop or RunDate)
	mu     sync.Mutex // guards active and the read-modify-write of run records
	active string     // the date being reconciled ("" when none)
	// metricsMu makes refreshMetrics' read and set one step, so that the
	// gauges end as the latest records say.
	metricsMu sync.Mutex

	wake      chan struct{}
	quit      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // Run

	// matchHook, when set (tests), is called after each order matched with
	// the count so far; an error stops the run there, as a crash would.
	matchHook func(n int) error
	// doneHook, when set (tests), is called after a run's last write and
	// before RunDate lets go of its date.
	doneHook func()
	// checkpoint is how many orders are matched between two saves of the
	// cursor (checkpointEvery; tests lower it).
	checkpoint int
}

// New builds a Reconciler. loader may be nil (nothing is loaded into an
// analytics store; results stay in the store).
func New(cfg Config, st *store.Store, wc WeChat, orders Orders, loader Loader) (*Reconciler, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil || wc == nil || orders == nil {
		return nil, errors.New("reconcile: a store, a WeChat client and the orders are required")
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Reconciler{cfg: cfg, st: st, wc: wc, orders: orders, loader: loader, m: m,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), checkpoint: checkpointEvery}, nil
}

// Run is the daily job: it indexes orders written before the day index
// existed (once), then reconciles every day of the last CatchUpDays
// without a finished reconciliation once its bill is due (At, Beijing
// time, the next day), every date an admin asked for, and retries failed
// attempts, until ctx ends or Close is called. A reconciliation cut off by
// the end resumes at the next start. Failures of a date are recorded in its
// run and retried; Run returns only a store failure at start.
func (r *Reconciler) Run(ctx context.Context) error {
	r.wg.Add(1)
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.wg.Add(1)
	go func() { // ends with Run (the deferred cancel)
		defer r.wg.Done()
		select {
		case <-r.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := r.st.BuildDayIndex(); err != nil {
		return fmt.Errorf("reconcile: day index: %w", err)
	}
	if err := r.refreshMetrics(); err != nil {
		r.cfg.Logger.Warn("reconcile: metrics", "err", err)
	}
	for {
		date, wait, err := r.next()
		if err != nil {
			r.cfg.Logger.Error("reconcile: read runs", "err", err)
			wait = time.Minute
		}
		if date != "" {
			if _, err := r.RunDate(ctx, date); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Warn("reconcile: attempt failed", "date", date, "err", err)
			}
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Close stops Run (a reconciliation in progress stops where it is and
// resumes at the next start) and waits for it until ctx ends. Idempotent.
func (r *Reconciler) Close(ctx context.Context) error {
	r.closeOnce.Do(func() { close(r.quit) })
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("reconcile: close: %w", ctx.Err())
	}
}

func (r *Reconciler) closed() bool {
	select {
	case <-r.quit:
		return true
	default:
		return false
	}
}

// today is the Beijing date now and the start of that day.
func (r *Reconciler) today() (string, time.Time) {
	now := r.cfg.Now().In(wxpay.BillLocation)
	y, m, d := now.Date()
	start := time.Date(y, m, d, 0, 0, 0, 0, wxpay.BillLocation)
	return start.Format(wxpay.BillDateLayout), start
}

// checkDate validates a date an admin asks for: a real date, not after
// today (Beijing) and at most MaxDays back.
func (r *Reconciler) checkDate(date string) error {
	t, err := wxpay.ParseBillDate(date)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadDate, err)
	}
	_, today := r.today()
	switch {
	case t.After(today):
		return fmt.Errorf("%w: %s is in the future", ErrBadDate, date)
	case t.Before(today.AddDate(0, 0, -MaxDays)):
		return fmt.Errorf("%w: %s is more than %d days back", ErrBadDate, date, MaxDays)
	}
	return nil
}

// next returns the date to reconcile now, or how long to wait for the next.
func (r *Reconciler) next() (string, time.Duration, error) {
	runs, err := r.runs()
	if err != nil {
		return "", 0, err
	}
	now := r.cfg.Now()
	nowMs := now.UnixMilli()
	_, today := r.today()
	oldest := today.AddDate(0, 0, -MaxDays).Format(wxpay.BillDateLayout)
	wait := 6 * time.Hour
	later := func(ms int64) {
		if d := time.Duration(ms-nowMs) * time.Millisecond; d < wait {
			wait = max(d, time.Second)
		}
	}
	var due []string
	have := map[string]bool{}
	for _, run := range runs {
		have[run.Date] = true
		if run.Date < oldest {
			continue
		}
		switch {
		case run.Status == StatusPending || run.Status == StatusRunning:
			due = append(due, run.Date)
		case run.Status == StatusWaiting || run.Status == StatusFailed,
			run.Status == StatusDone && !run.Loaded && r.loader != nil && run.NextMs > 0:
			if run.NextMs <= nowMs {
				due = append(due, run.Date)
			} else {
				later(run.NextMs)
			}
		}
	}
	for k := r.cfg.CatchUpDays; k >= 1; k-- {
		d := today.AddDate(0, 0, -k)
		date := d.Format(wxpay.BillDateLayout)
		if have[date] {
			continue
		}
		ready := d.AddDate(0, 0, 1).Add(r.cfg.At)
		if !now.Before(ready) {
			due = append(due, date)
		} else {
			later(ready.UnixMilli())
		}
	}
	if len(due) == 0 {
		return "", wait, nil
	}
	sort.Strings(due)
	return due[0], 0, nil
}

// runs reads every run record.
func (r *Reconciler) runs() ([]Run, error) {
	it, err := r.st.ReconIter(runPrefix())
	if err != nil {
		return nil, err
	}
	var out []Run
	for ok := it.First(); ok; ok = it.Next() {
		var run Run
		if err := json.Unmarshal(it.Value(), &run); err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("reconcile: decode run %q: %w", it.Key(), err)
		}
		out = append(out, run)
	}
	return out, it.Close()
}

// loadRun reads date's run record.
func (r *Reconciler) loadRun(date string) (Run, bool, error) {
	var run Run
	ok, err := r.st.GetRecon(runKey(date), func(b []byte) error { return json.Unmarshal(b, &run) })
	return run, ok, err
}

// putRun adds run's record to w.
func putRun(w *store.Write, run *Run) {
	b, _ := json.Marshal(run)
	w.PutRecon(runKey(run.Date), b)
}

// saveRun writes run's record durably (relaxed: not synced; for progress
// that a crash may lose without harm).
func (r *Reconciler) saveRun(run *Run, synced bool) error {
	run.UpdatedMs = r.cfg.Now().UnixMilli()
	w := r.st.NewWrite()
	putRun(w, run)
	if synced {
		return w.Commit()
	}
	return w.CommitRelaxed()
}

// Request asks for date's reconciliation (POST /admin/v1/reconciliations):
// durably, so a restart still runs it. A date never reconciled gets run 1;
// a date whose reconciliation finished, failed or waits is run again as the
// next run (a rerun finds the same discrepancies without doubling their
// events, and resolves the ones gone); a date pending or running is left
// as it is. It returns the run as recorded; ErrBadDate for a date out of
// range.
func (r *Reconciler) Request(date string) (Run, error) {
	if err := r.checkDate(date); err != nil {
		return Run{}, err
	}
	if r.closed() {
		return Run{}, ErrClosed
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	run, ok, err := r.loadRun(date)
	if err != nil {
		return Run{}, err
	}
	if ok && (run.Status == StatusPending || run.Status == StatusRunning) {
		return run, nil
	}
	// A run that is finishing has written StatusDone before it lets go of
	// its date: a request then is for a new run, not for the one ending.
	// Any other run of the active date is about to be recorded running.
	if r.active == date && !(ok && run.Status == StatusDone) {
		if !ok {
			run = Run{Date: date, Run: 1}
		}
		run.Status = StatusRunning
		return run, nil
	}
	next := Run{Date: date, Run: 1, Status: StatusPending, Requested: true}
	if ok {
		next.Run = run.Run
		if run.Status == StatusDone {
			next.Run++
		}
		next.Open, next.Repaired, next.Resolved = run.Open, run.Repaired, run.Resolved
	}
	if err := r.saveRun(&next, true); err != nil {
		return Run{}, err
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return next, nil
}

// Report is a date's reconciliation with its discrepancies.
type Report struct {
	Run
	Discrepancies []Discrepancy `json:"discrepancies"`
	// Truncated: more discrepancies exist than the report lists.
	Truncated bool `json:"truncated,omitempty"`
}

// Report returns date's run and up to limit of its discrepancies (in key
// order); ErrNotFound when the date was never asked for or reconciled.
func (r *Reconciler) Report(date string, limit int) (Report, error) {
	if _, err := wxpay.ParseBillDate(date); err != nil {
		return Report{}, fmt.Errorf("%w: %w", ErrBadDate, err)
	}
	run, ok, err := r.loadRun(date)
	if err != nil {
		return Report{}, err
	}
	if !ok {
		return Report{}, ErrNotFound
	}
	rep := Report{Run: run, Discrepancies: []Discrepancy{}}
	err = r.eachDiscrepancy(date, func(d *Discrepancy) (bool, error) {
		if len(rep.Discrepancies) == limit {
			rep.Truncated = true
			return false, nil
		}
		rep.Discrepancies = append(rep.Discrepancies, *d)
		return true, nil
	})
	return rep, err
}

// eachDiscrepancy calls fn with each discrepancy of date until it returns
// false or an error.
func (r *Reconciler) eachDiscrepancy(date string, fn func(*Discrepancy) (bool, error)) error {
	it, err := r.st.ReconIter(discPrefix(date))
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		var d Discrepancy
		if err := json.Unmarshal(it.Value(), &d); err != nil {
			_ = it.Close()
			return fmt.Errorf("reconcile: decode discrepancy %q: %w", it.Key(), err)
		}
		more, err := fn(&d)
		if err != nil || !more {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// refreshMetrics sets the gauges from the run records.
func (r *Reconciler) refreshMetrics() error {
	r.metricsMu.Lock()
	defer r.metricsMu.Unlock()
	runs, err := r.runs()
	if err != nil {
		return err
	}
	_, today := r.today()
	oldest := today.AddDate(0, 0, -MaxDays).Format(wxpay.BillDateLayout)
	open := map[string]int64{}
	last := ""
	for _, run := range runs {
		if run.Date < oldest {
			continue
		}
		for c, n := range run.Open {
			open[c] += n
		}
		if run.Status == StatusDone && run.Date > last {
			last = run.Date
		}
	}
	for _, c := range Classes {
		r.m.discrepancies.WithLabelValues(c).Set(float64(open[c]))
	}
	if last != "" {
		t, _ := wxpay.ParseBillDate(last)
		r.m.lastDate.Set(float64(t.Unix()))
	}
	return nil
}
