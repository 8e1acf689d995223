package reconcile_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/reconcile"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

// resolve calls POST .../discrepancies/{key}/resolve.
func (s *stack) resolve(date, key, note string) (int, reconcile.Discrepancy, []byte) {
	s.t.Helper()
	st, b := s.do("POST", "/admin/v1/reconciliations/"+date+"/discrepancies/"+url.PathEscape(key)+"/resolve", s.admin,
		map[string]string{"note": note})
	var d reconcile.Discrepancy
	if st == 200 {
		if err := json.Unmarshal(b, &d); err != nil {
			s.t.Fatal(err)
		}
	}
	return st, d, b
}

// eventsOf returns the outbox's events of type typ, failing on an
// event_id published twice.
func (s *stack) eventsOf(typ string) []event.Event {
	s.t.Helper()
	var out []event.Event
	ids := map[string]bool{}
	for _, e := range s.outbox() {
		if ids[e.EventID] {
			s.t.Fatalf("event %s twice in the outbox", e.EventID)
		}
		ids[e.EventID] = true
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// A refund booked at WeChat outside wxpayd can never go away by itself: an
// admin resolves it with a note. It is resolved by hand in the report, the
// run's counts and the gauge the alert reads, published once as
// reconcile.resolved and loaded into the analytics store; resolving it
// again changes nothing, and a rerun that finds it again keeps it resolved.
func TestAdminResolvesARefundBookedAtWeChat(t *testing.T) {
	loader := &memLoader{}
	s := newStack(t, stackOpts{loader: loader})
	s.putTea()
	otn, prepay, openid := s.buy("buyer", "tea")
	if _, err := s.sim.Pay(prepay, openid); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, otn+" PAID", func() bool { return s.order(otn).State == store.StatePaid })
	s.refundAtWeChat(otn, "R-elsewhere-1")
	date := wxpay.BillDate(time.Now())
	if _, err := s.sim.GenerateBill(date); err != nil {
		t.Fatal(err)
	}
	gauge := "wxpayd_reconcile_discrepancies/" + reconcile.ClassRefundMissingHere

	r := s.reconcileRun(date, 1)
	if len(r.Discrepancies) != 1 || r.Discrepancies[0].Class != reconcile.ClassRefundMissingHere ||
		r.Discrepancies[0].Status != reconcile.DiscrepancyOpen || r.Open[reconcile.ClassRefundMissingHere] != 1 {
		t.Fatalf("run 1: %+v %+v", r.Run, r.Discrepancies)
	}
	if g := s.gauges()[gauge]; g != 1 {
		t.Fatalf("gauge %v before the resolution, want 1", g)
	}
	key := r.Discrepancies[0].Key
	if key != reconcile.ClassRefundMissingHere+":"+otn+":R-elsewhere-1" {
		t.Fatalf("key %q", key)
	}

	const note = "WeChat ticket 2026-0412-88: refund made in the merchant platform, booked by finance"
	before := time.Now().UnixMilli()
	st, d, b := s.resolve(date, key, note)
	if st != 200 || d.Key != key || d.Status != reconcile.DiscrepancyResolved || d.ResolvedBy != reconcile.ResolvedByAdmin ||
		d.ResolvedNote != note || d.ResolvedMs < before || d.UpdatedMs != d.ResolvedMs {
		t.Fatalf("resolve: %d %s", st, b)
	}
	r = s.report(date)
	if len(r.Open) != 0 || r.Resolved != 1 || r.Repaired != 0 || r.Discrepancies[0] != d {
		t.Fatalf("the report after the resolution: %+v %+v", r.Run, r.Discrepancies)
	}
	if g := s.gauges()[gauge]; g != 0 {
		t.Fatalf("gauge %v after the resolution, want 0", g)
	}
	if got := loader.get(key); got != d {
		t.Fatalf("the analytics store has %+v, want the resolution %+v", got, d)
	}
	resolved := s.eventsOf(event.ReconcileResolved)
	if len(resolved) != 1 {
		t.Fatalf("%d reconcile.resolved events, want 1", len(resolved))
	}
	want := event.Event{V: event.Version, EventID: "reconcile:" + date + ":resolved:" + key, Type: event.ReconcileResolved,
		OutTradeNo: otn, TimeMs: d.ResolvedMs, OutRefundNo: "R-elsewhere-1", RefundAmount: d.OurAmount, TransactionID: d.TransactionID,
		Reason: note, BillDate: date, WeChatState: d.WeChatState, WeChatAmount: 700}
	if resolved[0] != want {
		t.Fatalf("reconcile.resolved %+v\nwant %+v", resolved[0], want)
	}

	// Again, with another note: answered as it is, nothing written.
	st, again, b := s.resolve(date, key, "second try")
	if st != 200 || again != d {
		t.Fatalf("resolving again: %d %s", st, b)
	}
	if n := len(s.eventsOf(event.ReconcileResolved)); n != 1 {
		t.Fatalf("%d reconcile.resolved events after a repeat, want 1", n)
	}

	// A rerun finds the refund again: it stays resolved, with its note.
	r = s.reconcileRun(date, 2)
	x := r.Discrepancies[0]
	if len(r.Discrepancies) != 1 || x.Status != reconcile.DiscrepancyResolved || x.ResolvedBy != reconcile.ResolvedByAdmin ||
		x.ResolvedNote != note || x.ResolvedMs != d.ResolvedMs || x.SeenRun != 2 || x.FoundRun != 1 {
		t.Fatalf("after run 2: %+v", x)
	}
	if len(r.Open) != 0 || r.Resolved != 1 || r.Found != 1 || !r.Loaded {
		t.Fatalf("run 2: %+v", r.Run)
	}
	if got := loader.get(key); got.Status != reconcile.DiscrepancyResolved || got.SeenRun != 2 {
		t.Fatalf("the analytics store after run 2: %+v", got)
	}
	if g := s.gauges()[gauge]; g != 0 {
		t.Fatalf("gauge %v after run 2, want 0", g)
	}
	completed := 0 // of date: the job reconciles the days before it too
	for _, e := range s.eventsOf(event.ReconcileCompleted) {
		if e.BillDate == date {
			completed++
		}
	}
	byType := countByType(s.outbox())
	if byType[event.ReconcileResolved] != 1 || byType[event.ReconcileDiscrepancy] != 1 || completed != 2 {
		t.Fatalf("events after run 2: %v, %d reconcile.completed of %s", byType, completed, date)
	}
	if st, _, b := s.resolve(date, "refund_missing_here:"+otn+":R-other", note); st != 404 || !strings.Contains(string(b), "NOT_FOUND") {
		t.Fatalf("an unknown key: %d %s", st, b)
	}
}

// syntheticRun reconciles yesterday's synthetic bill of rows orders
// wxpayd does not have (rows unknown_order discrepancies) as run 1; it
// returns the date and the discrepancies' keys.
func syntheticRun(t *testing.T, s *stack, rows int) (string, []string) {
	t.Helper()
	date := wxpay.BillDate(time.Now().AddDate(0, 0, -1))
	if _, err := s.sim.SyntheticBill(date, rows); err != nil {
		t.Fatal(err)
	}
	run, err := s.rec.RunDate(context.Background(), date)
	if err != nil || run.Open[reconcile.ClassUnknownOrder] != int64(rows) {
		t.Fatalf("run 1: %+v %v", run, err)
	}
	rep, err := s.rec.Report(date, rows)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(rep.Discrepancies))
	for i, d := range rep.Discrepancies {
		keys[i] = d.Key
	}
	return date, keys
}

// Twenty admins resolve the same discrepancy at once: every one gets 200
// and the same resolution, one note wins, and one event is published.
func TestConcurrentResolutionsPublishOneEvent(t *testing.T) {
	s := newStack(t, stackOpts{noRun: true})
	date, keys := syntheticRun(t, s, 10)
	const n = 20
	got := make([]reconcile.Discrepancy, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, d, b := s.resolve(date, keys[3], fmt.Sprintf("ticket %d", i))
			if st != 200 {
				t.Errorf("resolution %d: %d %s", i, st, b)
			}
			got[i] = d
		}()
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] || got[i].Status != reconcile.DiscrepancyResolved {
			t.Fatalf("resolution %d answered %+v, resolution 0 %+v", i, got[i], got[0])
		}
	}
	evs := s.eventsOf(event.ReconcileResolved)
	if len(evs) != 1 || evs[0].Reason != got[0].ResolvedNote {
		t.Fatalf("reconcile.resolved events %+v, want one with the note %q", evs, got[0].ResolvedNote)
	}
	rep, err := s.rec.Report(date, 0)
	if err != nil || rep.Open[reconcile.ClassUnknownOrder] != 9 || rep.Resolved != 1 {
		t.Fatalf("the run after the resolutions: %+v %v", rep.Run, err)
	}
}

// A resolution never races a run's writes: while a run of the date is
// pending or running (up to its last write) a resolution is refused with
// ErrRunInProgress and writes nothing; once done it goes through. An admin
// resolving every discrepancy while reruns come and go loses neither the
// resolutions nor the runs' updates, and the counts agree with the
// discrepancies.
func TestResolutionsRacingReruns(t *testing.T) {
	s := newStack(t, stackOpts{noRun: true})
	const rows = 30
	date, keys := syntheticRun(t, s, rows)
	ctx := context.Background()

	// Refused at every step of a run: pending, matching, finishing.
	if _, err := s.rec.Request(date); err != nil {
		t.Fatal(err)
	}
	if _, err := s.rec.Resolve(date, keys[0], "pending"); !errors.Is(err, reconcile.ErrRunInProgress) {
		t.Fatalf("resolving while the run is pending: %v", err)
	}
	if st, _, b := s.resolve(date, keys[0], "pending"); st != 409 || !strings.Contains(string(b), `"CONFLICT"`) {
		t.Fatalf("POST while the run is pending: %d %s", st, b)
	}
	var inRun []error
	reconcile.SetMatchHook(s.rec, func(n int) error {
		if n == 5 {
			_, err := s.rec.Resolve(date, keys[1], "matching")
			inRun = append(inRun, err)
		}
		return nil
	})
	reconcile.SetDoneHook(s.rec, func() {
		_, err := s.rec.Resolve(date, keys[1], "finishing")
		inRun = append(inRun, err)
	})
	if run, err := s.rec.RunDate(ctx, date); err != nil || run.Run != 2 {
		t.Fatalf("run 2: %+v %v", run, err)
	}
	reconcile.SetMatchHook(s.rec, nil)
	reconcile.SetDoneHook(s.rec, nil)
	if len(inRun) != 2 || !errors.Is(inRun[0], reconcile.ErrRunInProgress) || !errors.Is(inRun[1], reconcile.ErrRunInProgress) {
		t.Fatalf("resolving during run 2: %v", inRun)
	}
	if n := len(s.eventsOf(event.ReconcileResolved)); n != 0 {
		t.Fatalf("%d resolutions published during run 2", n)
	}

	// An admin resolves every discrepancy in turn, retrying on 409, while
	// reruns are asked for and run.
	resolved := make(chan string, rows)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, k := range keys {
			for {
				_, err := s.rec.Resolve(date, k, "ticket for "+k)
				if err == nil {
					resolved <- k
					break
				}
				if !errors.Is(err, reconcile.ErrRunInProgress) {
					t.Errorf("resolve %s: %v", k, err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	}()
	last := 2
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		if _, err := s.rec.Request(date); err != nil {
			t.Fatal(err)
		}
		run, err := s.rec.RunDate(ctx, date)
		if err != nil || run.Status != reconcile.StatusDone || run.Run != last+1 {
			t.Fatalf("run %d: %+v %v", last+1, run, err)
		}
		last = run.Run
		if last > 1000 {
			t.Fatal("the resolutions made no progress in 1000 runs")
		}
		time.Sleep(time.Millisecond) // a window for the admin between two runs
	}
	close(resolved)
	n := 0
	for range resolved {
		n++
	}
	if n != rows {
		t.Fatalf("%d of %d discrepancies resolved", n, rows)
	}

	// Every resolution is there, and so is every run's update.
	rep, err := s.rec.Report(date, rows)
	if err != nil {
		t.Fatal(err)
	}
	resolvedHere := 0
	for _, d := range rep.Discrepancies {
		if d.Status != reconcile.DiscrepancyResolved || d.ResolvedNote != "ticket for "+d.Key || d.SeenRun != last {
			t.Fatalf("after run %d: %+v", last, d)
		}
		resolvedHere++
	}
	if rep.Run.Run != last || len(rep.Open) != 0 || rep.Resolved != int64(resolvedHere) || rep.Found != rows {
		t.Fatalf("run %d: %+v", last, rep.Run)
	}
	if g := s.gauges()["wxpayd_reconcile_discrepancies/"+reconcile.ClassUnknownOrder]; g != 0 {
		t.Fatalf("gauge %v, want 0", g)
	}
	byType := countByType(s.outbox())
	if byType[event.ReconcileResolved] != rows || byType[event.ReconcileDiscrepancy] != rows || byType[event.ReconcileCompleted] != last {
		t.Fatalf("events %v after %d runs", byType, last)
	}
	t.Logf("%d runs", last)
	_ = s.eventsOf(event.ReconcileResolved) // no event_id twice
}

// A resolution made while a finished run is loaded into the analytics
// store again (after a load that failed) is kept: the load writes only its
// outcome into the run record, and the resolved version of the
// discrepancy is the one the analytics store keeps.
func TestResolutionDuringAReload(t *testing.T) {
	loader := &memLoader{}
	entered, release := make(chan struct{}), make(chan struct{})
	loader.hold = func(n int) {
		if n > 1 && !loader.fail.Load() { // the reload of every discrepancy
			close(entered)
			<-release
		}
	}
	s := newStack(t, stackOpts{noRun: true, loader: loader})
	loader.fail.Store(true)
	date, keys := syntheticRun(t, s, 10)
	rep, err := s.rec.Report(date, 0)
	if err != nil || rep.Loaded || rep.NextMs == 0 {
		t.Fatalf("run 1 with the analytics store down: %+v %v", rep.Run, err)
	}
	loader.fail.Store(false)
	reloaded := make(chan reconcile.Run, 1)
	go func() {
		run, err := s.rec.RunDate(context.Background(), date)
		if err != nil {
			t.Errorf("reload: %v", err)
		}
		reloaded <- run
	}()
	<-entered
	d, err := s.rec.Resolve(date, keys[0], "settled with WeChat support")
	if err != nil || d.Status != reconcile.DiscrepancyResolved {
		t.Fatalf("resolving during the reload: %+v %v", d, err)
	}
	close(release)
	run := <-reloaded
	if !run.Loaded || run.Open[reconcile.ClassUnknownOrder] != 9 || run.Resolved != 1 {
		t.Fatalf("the run after the reload: %+v", run)
	}
	rep, err = s.rec.Report(date, 0)
	if err != nil || !rep.Loaded || rep.NextMs != 0 || rep.Open[reconcile.ClassUnknownOrder] != 9 || rep.Resolved != 1 {
		t.Fatalf("the record after the reload: %+v %v", rep.Run, err)
	}
	if got := loader.get(keys[0]); got != d {
		t.Fatalf("the analytics store has %+v, want %+v", got, d)
	}
}

// A resolution whose own load fails marks the date for loading again.
func TestResolutionLoadFailureLoadsTheDateAgain(t *testing.T) {
	loader := &memLoader{}
	s := newStack(t, stackOpts{noRun: true, loader: loader})
	date, keys := syntheticRun(t, s, 3)
	loader.fail.Store(true)
	if _, err := s.rec.Resolve(date, keys[0], "ticket 7"); err != nil {
		t.Fatal(err)
	}
	rep, err := s.rec.Report(date, 0)
	if err != nil || rep.Loaded || rep.NextMs == 0 || !strings.Contains(rep.LoadError, errLoad.Error()) || rep.Resolved != 1 {
		t.Fatalf("after the failed load: %+v %v", rep.Run, err)
	}
	loader.fail.Store(false)
	run, err := s.rec.RunDate(context.Background(), date)
	if err != nil || !run.Loaded || run.Resolved != 1 {
		t.Fatalf("the load again: %+v %v", run, err)
	}
	if got := loader.get(keys[0]); got.Status != reconcile.DiscrepancyResolved {
		t.Fatalf("the analytics store has %+v", got)
	}
}

// The note's rules, and the errors of a date or key that is not there.
func TestResolveRefusals(t *testing.T) {
	s := newStack(t, stackOpts{noRun: true})
	date, keys := syntheticRun(t, s, 3)
	for _, tc := range []struct {
		name, date, key, note string
		want                  error
	}{
		{"no note", date, keys[0], "", reconcile.ErrBadNote},
		{"only spaces", date, keys[0], " \u3000 ", reconcile.ErrBadNote},
		{"a line break", date, keys[0], "ticket\n7", reconcile.ErrBadNote},
		{"a control character", date, keys[0], "ticket\x007", reconcile.ErrBadNote},
		{"a format character", date, keys[0], "ticket\u202e7", reconcile.ErrBadNote},
		{"not UTF-8", date, keys[0], "ticket \xff", reconcile.ErrBadNote},
		{"501 characters", date, keys[0], strings.Repeat("票", 501), reconcile.ErrBadNote},
		{"a bad date", "2026-02-30", keys[0], "ticket", reconcile.ErrBadDate},
		{"a date never reconciled", "2020-01-01", keys[0], "ticket", reconcile.ErrNotFound},
		{"an unknown key", date, "unknown_order:nobody", "ticket", reconcile.ErrNoDiscrepancy},
	} {
		if _, err := s.rec.Resolve(tc.date, tc.key, tc.note); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if d, err := s.rec.Resolve(date, keys[0], strings.Repeat("票", 500)); err != nil || d.Status != reconcile.DiscrepancyResolved {
		t.Fatalf("500 characters: %+v %v", d, err)
	}
	if n := len(s.eventsOf(event.ReconcileResolved)); n != 1 {
		t.Fatalf("%d reconcile.resolved events, want 1", n)
	}
}
