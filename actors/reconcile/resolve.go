package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/wxpay"
)

// MaxNoteLen bounds a resolution's note, in characters.
const MaxNoteLen = 500

// Resolve resolves the discrepancy key of date by hand (POST
// /admin/v1/reconciliations/{date}/discrepancies/{key}/resolve): one no
// run can make go away, such as a refund booked at WeChat outside wxpayd
// or an amount the merchant settled with WeChat's support. One durable
// write makes it resolved with resolved_by "admin", the note and the time,
// counts it resolved instead of open in the date's run record and
// publishes a reconcile.resolved event (Reason the note); the gauges
// follow, and with a Loader the discrepancy is loaded again.
//
// A discrepancy that is not open (resolved by hand or by a run, or
// repaired) is returned as it is and nothing is written, so a repeat
// publishes nothing. A later run that finds it again keeps it resolved
// with its note (record), and a run that no longer finds it leaves it so.
//
// Resolve takes the lock Request and RunDate take to read and write run
// records, and refuses while a run of the date is pending or running
// (ErrRunInProgress): the run owns the date's records until it is done.
// Other errors: ErrBadDate, ErrBadNote, ErrNotFound (no run of the date),
// ErrNoDiscrepancy, ErrClosed.
func (r *Reconciler) Resolve(date, key, note string) (Discrepancy, error) {
	if _, err := wxpay.ParseBillDate(date); err != nil {
		return Discrepancy{}, fmt.Errorf("%w: %w", ErrBadDate, err)
	}
	if err := checkNote(note); err != nil {
		return Discrepancy{}, err
	}
	if r.closed() {
		return Discrepancy{}, ErrClosed
	}
	r.mu.Lock()
	x, changed, err := r.resolve(date, key, note)
	r.mu.Unlock()
	if err != nil || !changed {
		return x, err
	}
	r.cfg.Logger.Info("reconcile: discrepancy resolved by hand", "date", date, "key", key, "note", note)
	if err := r.refreshMetrics(); err != nil {
		r.cfg.Logger.Warn("reconcile: metrics", "err", err)
	}
	if r.loader != nil {
		r.loadResolved(date, x)
	}
	return x, nil
}

// resolve is Resolve's read-modify-write, under r.mu. changed reports a
// write.
func (r *Reconciler) resolve(date, key, note string) (x Discrepancy, changed bool, err error) {
	run, ok, err := r.loadRun(date)
	if err != nil {
		return x, false, err
	}
	if !ok {
		return x, false, ErrNotFound
	}
	if r.active == date || run.Status == StatusPending || run.Status == StatusRunning {
		return x, false, fmt.Errorf("%w: run %d of %s is %s", ErrRunInProgress, run.Run, date, run.Status)
	}
	found, err := r.st.GetRecon(discKey(date, key), func(b []byte) error { return json.Unmarshal(b, &x) })
	if err != nil {
		return x, false, err
	}
	if !found {
		return x, false, fmt.Errorf("%w: %q of %s", ErrNoDiscrepancy, key, date)
	}
	if x.Status != DiscrepancyOpen {
		return x, false, nil
	}
	// Later than the version loaded before, which the analytics store
	// keeps when two versions have the same updated_ms.
	now := max(r.cfg.Now().UnixMilli(), x.UpdatedMs+1)
	x.Status, x.ResolvedBy, x.ResolvedNote, x.ResolvedMs, x.UpdatedMs = DiscrepancyResolved, ResolvedByAdmin, note, now, now
	if n := run.Open[x.Class]; n > 1 {
		run.Open[x.Class] = n - 1
	} else {
		delete(run.Open, x.Class)
	}
	run.Resolved++
	run.UpdatedMs = now
	w := r.st.NewWrite()
	defer w.Discard()
	b, _ := json.Marshal(&x)
	w.PutRecon(discKey(date, key), b)
	putRun(w, &run)
	e := discrepancyEvent(event.ReconcileResolved, eventID(date, "resolved:"+key), date, &x, now)
	e.Reason = note
	w.Publish(e)
	if err := w.Commit(); err != nil {
		return Discrepancy{}, false, err
	}
	return x, true, nil
}

// loadResolved loads a discrepancy just resolved into the analytics store,
// where its newer updated_ms replaces the version loaded before. When that
// fails and the date was loaded, the run is marked for a load again, which
// the job retries after RetryAfter.
func (r *Reconciler) loadResolved(date string, x Discrepancy) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.RepairTimeout)
	err := r.loader.LoadDiscrepancies(ctx, date, []Discrepancy{x})
	cancel()
	if err == nil {
		return
	}
	r.cfg.Logger.Warn("reconcile: loading a resolved discrepancy failed; the date is loaded again later",
		"date", date, "key", x.Key, "err", err)
	r.mu.Lock()
	defer r.mu.Unlock()
	run, ok, rerr := r.loadRun(date)
	if rerr != nil || !ok || r.active == date || run.Status != StatusDone || !run.Loaded {
		return // a run or a load to come takes the discrepancy as it is now
	}
	run.Loaded, run.LoadError = false, err.Error()
	run.NextMs = r.cfg.Now().Add(r.cfg.RetryAfter).UnixMilli()
	if serr := r.saveRun(&run, true); serr != nil {
		r.cfg.Logger.Warn("reconcile: save run", "date", date, "err", serr)
	}
}

// discrepancyEvent is a reconcile.* event about discrepancy x of date:
// its order and refund, and both sides' amounts and WeChat's state.
func discrepancyEvent(typ, id, date string, x *Discrepancy, now int64) *event.Event {
	e := &event.Event{EventID: id, Type: typ, OutTradeNo: x.OutTradeNo, TimeMs: now,
		OutRefundNo: x.OutRefundNo, TransactionID: x.TransactionID, BillDate: date,
		WeChatState: x.WeChatState, WeChatAmount: x.WeChatAmount}
	if x.OutRefundNo != "" {
		e.RefundAmount = x.OurAmount
	} else {
		e.Amount = x.OurAmount
	}
	return e
}

// checkNote validates a resolution's note: 1 to MaxNoteLen characters of
// UTF-8, every one printable (letters, marks, numbers, punctuation,
// symbols, spaces: no control or format character, so no line break), and
// not only spaces.
func checkNote(note string) error {
	if note == "" {
		return fmt.Errorf("%w: a note is required", ErrBadNote)
	}
	if !utf8.ValidString(note) {
		return fmt.Errorf("%w: the note is not UTF-8", ErrBadNote)
	}
	if n := utf8.RuneCountInString(note); n > MaxNoteLen {
		return fmt.Errorf("%w: %d characters, at most %d", ErrBadNote, n, MaxNoteLen)
	}
	blank := true
	for _, c := range note {
		if !unicode.IsGraphic(c) {
			return fmt.Errorf("%w: %U is not printable", ErrBadNote, c)
		}
		blank = blank && unicode.IsSpace(c)
	}
	if blank {
		return fmt.Errorf("%w: the note is only spaces", ErrBadNote)
	}
	return nil
}
