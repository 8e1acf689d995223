package store

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/wxpayd/wxpayd/actors/event"
)

// paidOnly queues order.paid events, as a subscription would.
func paidOnly(e *event.Event) bool { return e.Type == event.OrderPaid }

func openHooks(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{NoSync: true, Webhook: paidOnly})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// commitEvent commits one transition of otn with an event of type typ.
func commitEvent(t *testing.T, s *Store, otn string, seq uint64, typ string) {
	t.Helper()
	w := s.NewWrite()
	w.PutOrder(&Order{OutTradeNo: otn, State: StatePaid, Seq: seq, SKU: "sku-1", Total: 100})
	w.AddEvent(&event.Event{EventID: event.ID(otn, seq), Type: typ, OutTradeNo: otn, Seq: seq, TimeMs: 1})
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestWebhookQueueHoldsSubscribedEventsWithTheirBytes(t *testing.T) {
	t.Parallel()
	s := openHooks(t, t.TempDir())
	defer s.Close()
	commitEvent(t, s, "A1", 1, event.OrderCreated)
	commitEvent(t, s, "A1", 2, event.OrderPaid)
	commitEvent(t, s, "B1", 1, event.OrderPaid)
	if n := s.WebhookBacklog(); n != 2 {
		t.Fatalf("backlog %d, want 2", n)
	}
	select {
	case <-s.WebhookWake():
	default:
		t.Fatal("no wake after a queued commit")
	}
	got, err := s.ReadWebhooks(0, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("read %v %v", got, err)
	}
	hist, _ := s.History("A1")
	if got[0].OutTradeNo != "A1" || got[0].OrderSeq != 2 || string(got[0].Event) != string(event.Encode(&hist[1])) {
		t.Fatalf("first entry %+v %s", got[0], got[0].Event)
	}
	if got[1].OutTradeNo != "B1" || got[1].Seq <= got[0].Seq {
		t.Fatalf("second entry %+v", got[1])
	}
	if more, _ := s.ReadWebhooks(got[1].Seq, 10); len(more) != 0 {
		t.Fatalf("read past the end: %v", more)
	}
	if err := s.AckWebhooks([]uint64{got[0].Seq}); err != nil {
		t.Fatal(err)
	}
	if left, _ := s.ReadWebhooks(0, 10); len(left) != 1 || left[0].OutTradeNo != "B1" || s.WebhookBacklog() != 1 {
		t.Fatalf("after ack: %v, backlog %d", left, s.WebhookBacklog())
	}
}

func TestWebhookQueueIsEmptyWithoutASubscription(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	defer s.Close()
	commitEvent(t, s, "A1", 1, event.OrderPaid)
	if got, _ := s.ReadWebhooks(0, 10); len(got) != 0 || s.WebhookBacklog() != 0 {
		t.Fatalf("queued without a subscription: %v", got)
	}
}

func TestWebhookReaderNeverSkipsAnEntryCommittedLate(t *testing.T) {
	t.Parallel()
	s := openHooks(t, t.TempDir())
	defer s.Close()
	late := s.NewWrite()
	late.AddEvent(&event.Event{EventID: "L:1", Type: event.OrderPaid, OutTradeNo: "L", Seq: 1, TimeMs: 1})
	commitEvent(t, s, "E1", 1, event.OrderPaid)
	if got, _ := s.ReadWebhooks(0, 10); len(got) != 0 {
		t.Fatalf("read past an uncommitted entry: %v", got)
	}
	if err := late.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ReadWebhooks(0, 10); len(got) != 2 || got[0].OutTradeNo != "L" {
		t.Fatalf("after the late commit: %v", got)
	}
}

func TestWebhookStateSurvivesReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openHooks(t, dir)
	commitEvent(t, s, "A1", 1, event.OrderPaid)
	commitEvent(t, s, "A1", 2, event.OrderPaid)
	q, _ := s.ReadWebhooks(0, 10)
	tries := WebhookTries{Attempts: 3, FirstMs: 1000, LastMs: 5000, NextMs: 9000, LastError: "HTTP 500"}
	if err := s.SetWebhookTries(q[0].Seq, tries); err != nil {
		t.Fatal(err)
	}
	dead, err := s.ParkWebhook(q[1], WebhookTries{Attempts: 40, LastError: "HTTP 410"}, 7)
	if err != nil || dead.ID != 1 || dead.EventID != "A1:2" || !json.Valid(dead.Event) {
		t.Fatalf("park: %+v %v", dead, err)
	}
	// The relay drains the outbox meanwhile: the event sequence must not
	// start again below what is queued.
	if err := s.AckOutbox(0, math.MaxUint64, int(s.OutboxBacklog())); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	s = openHooks(t, dir)
	defer s.Close()
	if s.WebhookBacklog() != 1 || s.DeadWebhookCount() != 1 {
		t.Fatalf("after reopen: backlog %d dead %d", s.WebhookBacklog(), s.DeadWebhookCount())
	}
	q2, _ := s.ReadWebhooks(0, 10)
	if len(q2) != 1 || q2[0].Tries != tries {
		t.Fatalf("tries after reopen: %+v", q2)
	}
	commitEvent(t, s, "B1", 1, event.OrderPaid)
	q3, _ := s.ReadWebhooks(0, 10)
	if len(q3) != 2 || q3[1].OutTradeNo != "B1" || q3[1].Seq <= q3[0].Seq {
		t.Fatalf("a new entry after reopen did not go to the end: %+v", q3)
	}
	// Requeue the dead letter: it goes to the end, with a fresh state.
	if err := s.RequeueDeadWebhook(99); !errors.Is(err, ErrNoDeadWebhook) {
		t.Fatalf("requeue of an unknown id: %v", err)
	}
	if err := s.RequeueDeadWebhook(1); err != nil {
		t.Fatal(err)
	}
	if err := s.RequeueDeadWebhook(1); !errors.Is(err, ErrNoDeadWebhook) {
		t.Fatalf("second requeue: %v", err)
	}
	q4, _ := s.ReadWebhooks(0, 10)
	if len(q4) != 3 || q4[2].OutTradeNo != "A1" || q4[2].OrderSeq != 2 || q4[2].Tries.Attempts != 0 {
		t.Fatalf("after requeue: %+v", q4)
	}
	if d, _ := s.DeadWebhooks(0, 10); len(d) != 0 || s.DeadWebhookCount() != 0 || s.WebhookBacklog() != 3 {
		t.Fatalf("dead %v, count %d, backlog %d", d, s.DeadWebhookCount(), s.WebhookBacklog())
	}
	// Dead letter ids keep growing across reopen.
	d2, err := s.ParkWebhook(q4[0], WebhookTries{}, 8)
	if err != nil || d2.ID != 2 {
		t.Fatalf("second park: %+v %v", d2, err)
	}
}

func TestDeadWebhooksPage(t *testing.T) {
	t.Parallel()
	s := openHooks(t, t.TempDir())
	defer s.Close()
	for i := range 5 {
		commitEvent(t, s, "P"+string(rune('a'+i)), 1, event.OrderPaid)
	}
	q, _ := s.ReadWebhooks(0, 10)
	for _, e := range q {
		if _, err := s.ParkWebhook(e, WebhookTries{Attempts: 1}, 1); err != nil {
			t.Fatal(err)
		}
	}
	p1, _ := s.DeadWebhooks(0, 2)
	p2, _ := s.DeadWebhooks(p1[1].ID, 10)
	if len(p1) != 2 || len(p2) != 3 || p2[0].ID != 3 || p2[2].OutTradeNo != "Pe" {
		t.Fatalf("pages %+v %+v", p1, p2)
	}
}
