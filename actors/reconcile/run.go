package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

// checkpointEvery is how many orders the match phase matches between two
// saves of its cursor.
const checkpointEvery = 8192

// spillBatchBytes bounds one write of spilled bill rows.
const spillBatchBytes = 4 << 20

// RunDate reconciles date now, in the caller's goroutine: it resumes the
// date's unfinished run where it stopped, or starts run 1 of a date never
// reconciled; a finished run whose load into the analytics store failed is
// only loaded again, and one fully finished is returned as it is (Request
// asks for a rerun). It returns the run as it ended; an error means the
// attempt failed (the run records it and when it is tried again) or ctx
// ended (the run resumes at the next RunDate). Run calls it; tools and
// tests may call it when Run is not running.
func (r *Reconciler) RunDate(ctx context.Context, date string) (Run, error) {
	d, err := newDay(date)
	if err != nil {
		return Run{}, fmt.Errorf("%w: %w", ErrBadDate, err)
	}
	r.runMu.Lock()
	defer r.runMu.Unlock()
	r.mu.Lock()
	run, ok, err := r.loadRun(date)
	if err != nil {
		r.mu.Unlock()
		return Run{}, err
	}
	if !ok {
		run = Run{Date: date, Run: 1}
	}
	if run.Status == StatusDone {
		r.mu.Unlock()
		if r.loader != nil && !run.Loaded {
			return r.reload(ctx, d, run)
		}
		return run, nil
	}
	r.active = date
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.active = ""
		r.mu.Unlock()
	}()

	start := time.Now()
	if run.Status != StatusRunning {
		run.Phase = ""
	}
	run.Status, run.Error, run.NextMs = StatusRunning, "", 0
	run.Attempts++
	if run.StartedMs == 0 {
		run.StartedMs = r.cfg.Now().UnixMilli()
	}
	err = r.attempt(ctx, d, &run)
	var hookErr hookError
	switch {
	case err == nil:
		r.m.runs.WithLabelValues(StatusDone).Inc()
		r.m.duration.Set(time.Since(start).Seconds())
		if err := r.refreshMetrics(); err != nil {
			r.cfg.Logger.Warn("reconcile: metrics", "err", err)
		}
		r.cfg.Logger.Info("reconciled", "date", date, "run", run.Run, "bill_rows", run.BillRows,
			"matched", run.Matched, "discrepancies", run.Found, "took", time.Since(start).Round(time.Millisecond))
		if r.doneHook != nil {
			r.doneHook()
		}
		return run, nil
	case errors.As(err, &hookErr):
		return run, err // a test's crash: nothing more is written
	case ctx.Err() != nil:
		return run, err // stopped: the run resumes at the next start
	case errors.Is(err, ErrBillNotReady):
		run.Status, run.NextMs = StatusWaiting, r.cfg.Now().Add(r.cfg.RetryAfter).UnixMilli()
		r.m.runs.WithLabelValues(StatusWaiting).Inc()
	default:
		wait := min(time.Minute<<min(run.Attempts-1, 10), r.cfg.RetryAfter)
		run.Status, run.NextMs = StatusFailed, r.cfg.Now().Add(wait).UnixMilli()
		r.m.runs.WithLabelValues(StatusFailed).Inc()
	}
	run.Error = err.Error()
	if serr := r.saveRun(&run, true); serr != nil {
		return run, errors.Join(err, serr)
	}
	return run, err
}

// hookError is a test hook's stop (matchHook).
type hookError struct{ err error }

func (e hookError) Error() string { return "reconcile: stopped by a test hook: " + e.err.Error() }
func (e hookError) Unwrap() error { return e.err }

// attempt runs the run's phases from the one it is in.
func (r *Reconciler) attempt(ctx context.Context, d day, run *Run) error {
	if run.Phase == "" || run.Phase == phaseDownload {
		run.Phase = phaseDownload
		if err := r.saveRun(run, true); err != nil {
			return err
		}
		if err := r.download(ctx, d, run); err != nil {
			return err
		}
		run.Phase, run.Cursor, run.Matched, run.Ours, run.Found = phaseMatch, "", 0, Side{}, 0
		if err := r.saveRun(run, true); err != nil { // also makes the spill durable (one WAL)
			return err
		}
	}
	// The bill rows load into the analytics store while matching runs.
	var loaded chan error
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	if r.loader != nil && !run.Loaded {
		loaded = make(chan error, 1)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			loaded <- r.loadBill(lctx, d.date)
		}()
	}
	waitLoad := func() error {
		if loaded == nil {
			return nil
		}
		err := <-loaded
		loaded = nil
		return err
	}
	fail := func(err error) error {
		stopLoad()
		_ = waitLoad()
		return err
	}
	if run.Phase == phaseMatch {
		if err := r.match(ctx, d, run); err != nil {
			return fail(err)
		}
		run.Phase, run.Cursor = phaseRepair, ""
		if err := r.saveRun(run, true); err != nil {
			return fail(err)
		}
	}
	if run.Phase == phaseRepair {
		if err := r.repair(ctx, d, run); err != nil {
			return fail(err)
		}
		run.Phase = phaseComplete
		if err := r.saveRun(run, true); err != nil {
			return fail(err)
		}
	}
	billLoaded := false
	if r.loader != nil {
		if err := waitLoad(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			run.LoadError = err.Error()
			r.cfg.Logger.Warn("reconcile: loading the bill failed; retried later", "date", d.date, "err", err)
		} else {
			billLoaded = true
		}
	}
	return r.complete(ctx, d, run, billLoaded)
}

// download fetches the ALL trade bill and spills its rows; the spill is
// kept only if the whole bill arrived, its summary matched and its digest.
func (r *Reconciler) download(ctx context.Context, d day, run *Run) error {
	prefix := billPrefix(d.date)
	clear := func() error {
		w := r.st.NewWrite()
		w.DeleteReconPrefix(prefix)
		return w.CommitRelaxed()
	}
	if err := clear(); err != nil {
		return err
	}
	run.WeChat, run.BillRows = Side{}, 0
	info, err := r.wc.TradeBill(ctx, d.date, wxpay.BillTypeAll, !r.cfg.Plain)
	if err != nil {
		switch code, _ := wxpay.APIErrorCode(err); code {
		case wxpay.CodeStatementCreating:
			return fmt.Errorf("%w: %w", ErrBillNotReady, err)
		case wxpay.CodeNoStatementExist:
			return nil // no trade that day: an empty bill
		}
		return fmt.Errorf("reconcile: trade bill %s: %w", d.date, err)
	}
	rc, err := r.wc.DownloadBill(ctx, info)
	if err != nil {
		return fmt.Errorf("reconcile: download bill %s: %w", d.date, err)
	}
	defer rc.Close()
	p := wxpay.NewTradeBillReader(rc, wxpay.BillTypeAll)
	var side Side
	var rows int64
	w := r.st.NewWrite()
	key, val := make([]byte, 0, 128), make([]byte, 0, 256)
	for p.Next() {
		row := p.Row()
		if r.cfg.Skip != nil && r.cfg.Skip(row.OutTradeNo) {
			continue
		}
		side.addRow(row)
		rows++
		key = billKey(append(key[:0], prefix...), row)
		val = appendRow(val[:0], row)
		w.PutRecon(key, val)
		if w.Len() >= spillBatchBytes {
			if err := w.CommitRelaxed(); err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			w = r.st.NewWrite()
		}
	}
	if err := p.Err(); err != nil {
		w.Discard()
		_ = clear()
		return fmt.Errorf("reconcile: bill %s: %w", d.date, err)
	}
	if err := w.CommitRelaxed(); err != nil {
		return err
	}
	run.WeChat, run.BillRows = side, rows
	return nil
}

// match merges the spilled rows with the day index, from the cursor on.
func (r *Reconciler) match(ctx context.Context, d day, run *Run) error {
	spill, err := r.st.ReconIter(billPrefix(d.date))
	if err != nil {
		return err
	}
	defer spill.Close()
	idx, err := r.st.DayOrders(d.date)
	if err != nil {
		return err
	}
	defer idx.Close()
	if run.Cursor != "" {
		spill.SeekGE([]byte(run.Cursor + "\x01"))
		idx.SeekGE([]byte(run.Cursor + "\x00"))
	} else {
		spill.First()
		idx.First()
	}
	var rows []wxpay.TradeBillRow
	n := 0
	for {
		sv, iv := spill.Valid(), idx.Valid()
		if !sv && !iv {
			break
		}
		var otn string
		switch so := keyOTN(spillKey(spill, sv)); {
		case sv && iv && string(so) > string(idx.Key()):
			otn = string(idx.Key())
		case sv:
			otn = string(so)
		default:
			otn = string(idx.Key())
		}
		rows = rows[:0]
		for spill.Valid() && string(keyOTN(spill.Key())) == otn {
			rows = append(rows, wxpay.TradeBillRow{})
			if err := decodeRow(otn, spill.Value(), &rows[len(rows)-1]); err != nil {
				return fmt.Errorf("%w: %q", err, spill.Key())
			}
			spill.Next()
		}
		if idx.Valid() && string(idx.Key()) == otn {
			idx.Next()
		}
		o, found, err := r.st.GetOrder(otn)
		if err != nil {
			return err
		}
		var op *store.Order
		if found {
			op = &o
		}
		res := matchOrder(d, otn, rows, op)
		run.Ours.add(res.ours)
		if res.ok {
			run.Matched++
		}
		for i := range res.ds {
			if err := r.record(ctx, d, run, &res.ds[i]); err != nil {
				return err
			}
		}
		n++
		if n%r.checkpoint == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			run.Cursor = otn
			if err := r.saveRun(run, false); err != nil {
				return err
			}
		}
		if r.matchHook != nil {
			if err := r.matchHook(n); err != nil {
				return hookError{err}
			}
		}
	}
	if err := spill.Close(); err != nil {
		return err
	}
	return idx.Close()
}

func spillKey(it *store.Iter, valid bool) []byte {
	if !valid {
		return nil
	}
	return it.Key()
}

// record keeps a discrepancy: a new one is written with its
// reconcile.discrepancy event in one durable write; one already known (an
// earlier run, or this run before a crash) is updated, without an event,
// and open again unless an admin resolved it by hand.
func (r *Reconciler) record(ctx context.Context, d day, run *Run, x *Discrepancy) error {
	if x.confirm {
		keep, err := r.confirm(ctx, d, x)
		if err != nil || !keep {
			return err
		}
	}
	run.Found++
	now := r.cfg.Now().UnixMilli()
	var old Discrepancy
	known, err := r.st.GetRecon(discKey(d.date, x.Key), func(b []byte) error { return json.Unmarshal(b, &old) })
	if err != nil {
		return err
	}
	w := r.st.NewWrite()
	if known {
		old.SeenRun, old.UpdatedMs = run.Run, now
		old.OurState, old.OurAmount, old.WeChatState, old.WeChatAmount = x.OurState, x.OurAmount, x.WeChatState, x.WeChatAmount
		old.Detail = x.Detail
		// Found again: repaired or resolved by a run, it came back. One
		// an admin resolved was settled outside wxpayd: it stays so.
		if old.Status != DiscrepancyOpen && old.ResolvedBy == "" {
			old.Status = DiscrepancyOpen
		}
		b, _ := json.Marshal(&old)
		w.PutRecon(discKey(d.date, x.Key), b)
		return w.CommitRelaxed()
	}
	x.Status, x.FoundRun, x.SeenRun, x.FoundMs, x.UpdatedMs = DiscrepancyOpen, run.Run, run.Run, now, now
	b, _ := json.Marshal(x)
	w.PutRecon(discKey(d.date, x.Key), b)
	e := discrepancyEvent(event.ReconcileDiscrepancy, eventID(d.date, x.Key), d.date, x, now)
	e.Reason, e.Alert = x.Class, "reconciliation of "+d.date+": "+x.Detail
	w.Publish(e)
	if err := w.Commit(); err != nil {
		return err
	}
	r.cfg.Logger.Warn("reconcile: discrepancy", "date", d.date, "class", x.Class, "out_trade_no", x.OutTradeNo,
		"out_refund_no", x.OutRefundNo)
	return nil
}

// confirm asks WeChat about a payment or refund the bill lacks: one that
// WeChat has on another day (a notification or request across midnight)
// is no discrepancy. A definite answer is recorded with the discrepancy;
// an unknown outcome fails the attempt (it is retried), so that an outage
// never becomes a discrepancy.
func (r *Reconciler) confirm(ctx context.Context, d day, x *Discrepancy) (bool, error) {
	c, cancel := context.WithTimeout(ctx, r.cfg.RepairTimeout)
	defer cancel()
	var when string
	var err error
	if x.OutRefundNo == "" {
		var tx wxpay.Transaction
		if tx, err = r.wc.QueryByOutTradeNo(c, x.OutTradeNo); err == nil {
			x.WeChatState, x.WeChatAmount = tx.TradeState, tx.Amount.Total
			if tx.TradeState == wxpay.TradeStateSuccess || tx.TradeState == wxpay.TradeStateRefund {
				when = tx.SuccessTime
			}
		}
	} else {
		var rf wxpay.Refund
		if rf, err = r.wc.QueryRefund(c, x.OutRefundNo); err == nil {
			x.WeChatState, x.WeChatAmount, when = rf.Status, rf.Amount.Refund, rf.CreateTime
		}
	}
	if err != nil {
		code, definitive := client.Outcome(err)
		if !definitive {
			return false, fmt.Errorf("reconcile: confirm %s: %w", x.Key, err)
		}
		x.WeChatState = code
		x.Detail += "; WeChat answers " + code
		return true, nil
	}
	if when != "" {
		if t, perr := time.Parse(time.RFC3339, when); perr == nil {
			if other := wxpay.BillDate(t); other != d.date {
				return false, nil // on the bill of another day
			}
		}
	}
	x.Detail += "; WeChat has it (" + x.WeChatState + ") on " + d.date
	return true, nil
}

// repair sends every open payment_missing_here discrepancy of the date not
// yet tried in this run to its order (actors.Reconcile), RepairWorkers at a
// time, and records each outcome.
func (r *Reconciler) repair(ctx context.Context, d day, run *Run) error {
	var todo []Discrepancy
	err := r.eachDiscrepancy(d.date, func(x *Discrepancy) (bool, error) {
		if x.Class == ClassPaymentMissingHere && x.Status == DiscrepancyOpen && x.RepairRun < run.Run {
			todo = append(todo, *x)
		}
		return true, nil
	})
	if err != nil || len(todo) == 0 {
		return err
	}
	jobs := make(chan *Discrepancy)
	errs := make(chan error, r.cfg.RepairWorkers)
	var wg sync.WaitGroup
	for range min(r.cfg.RepairWorkers, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := range jobs {
				if err := r.repairOne(ctx, d, run, x); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range todo {
		select {
		case jobs <- &todo[i]:
		case err = <-errs:
		}
		if err != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// repairOne asks the order to query WeChat and apply the payment it finds.
func (r *Reconciler) repairOne(ctx context.Context, d day, run *Run, x *Discrepancy) error {
	msg := &actors.Reconcile{OutTradeNo: x.OutTradeNo, Reason: "bill " + d.date}
	outcome := ""
	for try := 0; ; try++ {
		c, cancel := context.WithTimeout(ctx, r.cfg.RepairTimeout)
		rep, err := r.orders.Request(c, msg)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil && rep.Status == actors.StatusConflict && try < 10 {
			// A WeChat call of the order is out: ask again when it is back.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		switch {
		case err != nil:
			outcome = "not repaired: " + err.Error()
		case paidHere(rep.Order.State):
			x.Status = DiscrepancyRepaired
			outcome = "repaired: the order is " + string(rep.Order.State) + " (transaction " + rep.Order.TransactionID + ")"
		default:
			outcome = "not repaired: the order is " + string(rep.Order.State)
		}
		break
	}
	x.Repair, x.RepairRun, x.UpdatedMs = outcome, run.Run, r.cfg.Now().UnixMilli()
	if x.Status == DiscrepancyRepaired {
		r.m.repairs.WithLabelValues("repaired").Inc()
	} else {
		r.m.repairs.WithLabelValues("failed").Inc()
		r.cfg.Logger.Warn("reconcile: repair failed", "date", d.date, "out_trade_no", x.OutTradeNo, "outcome", outcome)
	}
	b, _ := json.Marshal(x)
	w := r.st.NewWrite()
	w.PutRecon(discKey(d.date, x.Key), b)
	return w.Commit()
}

// complete resolves the date's discrepancies this run no longer found,
// counts them, loads them (with the bill rows already loaded), and
// finishes the run with its reconcile.completed event in one durable
// write; the spill goes once loaded (or with no loader).
func (r *Reconciler) complete(ctx context.Context, d day, run *Run, billLoaded bool) error {
	now := r.cfg.Now().UnixMilli()
	w := r.st.NewWrite()
	defer w.Discard()
	var all []Discrepancy
	run.Open, run.Repaired, run.Resolved = map[string]int64{}, 0, 0
	err := r.eachDiscrepancy(d.date, func(x *Discrepancy) (bool, error) {
		if x.Status == DiscrepancyOpen && x.SeenRun < run.Run {
			x.Status, x.UpdatedMs = DiscrepancyResolved, now
			b, _ := json.Marshal(x)
			w.PutRecon(discKey(d.date, x.Key), b)
		}
		switch x.Status {
		case DiscrepancyOpen:
			run.Open[x.Class]++
		case DiscrepancyRepaired:
			run.Repaired++
		case DiscrepancyResolved:
			run.Resolved++
		}
		if r.loader != nil {
			all = append(all, *x)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	run.Loaded = false
	if r.loader != nil && billLoaded {
		if err := r.loadDiscrepancies(ctx, d.date, all); err != nil {
			run.LoadError = err.Error()
			r.cfg.Logger.Warn("reconcile: loading discrepancies failed; retried later", "date", d.date, "err", err)
		} else {
			run.Loaded, run.LoadError = true, ""
		}
	}
	run.Status, run.Phase, run.Cursor, run.Error, run.NextMs = StatusDone, "", "", "", 0
	run.DoneMs, run.UpdatedMs = now, now
	if r.loader != nil && !run.Loaded {
		run.NextMs = r.cfg.Now().Add(r.cfg.RetryAfter).UnixMilli()
	}
	var open int64
	for _, n := range run.Open {
		open += n
	}
	w.Publish(&event.Event{
		EventID: eventID(d.date, "completed:"+fmt.Sprint(run.Run)), Type: event.ReconcileCompleted, TimeMs: now,
		BillDate: d.date, Amount: run.Ours.PaymentFen, WeChatAmount: run.WeChat.PaymentFen, Discrepancies: run.Found,
		Reason: fmt.Sprintf("run %d: %d bill rows, %d orders matched, %d discrepancies found, %d open",
			run.Run, run.BillRows, run.Matched, run.Found, open),
	})
	if run.Loaded || r.loader == nil {
		w.DeleteReconPrefix(billPrefix(d.date))
	}
	putRun(w, run)
	return w.Commit()
}

// reload loads a finished run's bill rows and discrepancies again, after a
// load that failed; past the catch-up window it gives up and drops the
// spill. It writes only the load's outcome, into the run record as it is
// then (an admin may have resolved a discrepancy meanwhile), and nothing
// when the record is no longer this finished run (a rerun was asked for).
func (r *Reconciler) reload(ctx context.Context, d day, run Run) (Run, error) {
	err := r.loadBill(ctx, d.date)
	if err == nil {
		var all []Discrepancy
		err = r.eachDiscrepancy(d.date, func(x *Discrepancy) (bool, error) { all = append(all, *x); return true, nil })
		if err == nil {
			err = r.loadDiscrepancies(ctx, d.date, all)
		}
	}
	w := r.st.NewWrite()
	_, today := r.today()
	switch {
	case err == nil:
		run.Loaded, run.LoadError, run.NextMs = true, "", 0
		w.DeleteReconPrefix(billPrefix(d.date))
	case ctx.Err() != nil:
		w.Discard()
		return run, err
	case today.AddDate(0, 0, -r.cfg.CatchUpDays).UnixMilli() > d.startMs:
		run.LoadError, run.NextMs = "gave up: "+err.Error(), 0
		w.DeleteReconPrefix(billPrefix(d.date))
	default:
		run.LoadError, run.NextMs = err.Error(), r.cfg.Now().Add(r.cfg.RetryAfter).UnixMilli()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, ok, cerr := r.loadRun(d.date)
	if cerr != nil {
		w.Discard()
		return run, errors.Join(err, cerr)
	}
	if ok && cur.Run == run.Run && cur.Status == StatusDone {
		cur.Loaded, cur.LoadError, cur.NextMs = run.Loaded, run.LoadError, run.NextMs
		cur.UpdatedMs = r.cfg.Now().UnixMilli()
		putRun(w, &cur)
		run = cur
	}
	if cerr := w.Commit(); cerr != nil {
		return run, errors.Join(err, cerr)
	}
	return run, err
}

// loadBill loads the spilled rows of date, LoadBatch at a time.
func (r *Reconciler) loadBill(ctx context.Context, date string) error {
	it, err := r.st.ReconIter(billPrefix(date))
	if err != nil {
		return err
	}
	defer it.Close()
	batch := make([]wxpay.TradeBillRow, 0, min(r.cfg.LoadBatch, 8192))
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := r.loader.LoadBill(ctx, date, batch)
		batch = batch[:0]
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		batch = append(batch, wxpay.TradeBillRow{})
		if err := decodeRow(string(keyOTN(it.Key())), it.Value(), &batch[len(batch)-1]); err != nil {
			return err
		}
		if len(batch) == r.cfg.LoadBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return it.Close()
}

func (r *Reconciler) loadDiscrepancies(ctx context.Context, date string, all []Discrepancy) error {
	for len(all) > 0 {
		n := min(len(all), r.cfg.LoadBatch)
		if err := r.loader.LoadDiscrepancies(ctx, date, all[:n]); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}
