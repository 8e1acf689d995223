package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func orderWrite(s *Store, otn string, st State, seq uint64) *Write {
	w := s.NewWrite()
	w.PutOrder(&Order{OutTradeNo: otn, State: st, Seq: seq, SKU: "sku-1", Total: 100})
	w.AddEvent(&event.Event{EventID: event.ID(otn, seq), Type: event.OrderCreated, OutTradeNo: otn, Seq: seq, TimeMs: 1})
	return w
}

func TestWriteIsDurableAcrossReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir)
	w := orderWrite(s, "A00001", StateCreated, 1)
	w.PutReservation("sku-1", "A00001", Reservation{OpenID: "o1", Quantity: 2})
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	o, ok, err := s.GetOrder("A00001")
	if err != nil || !ok || o.State != StateCreated || o.Total != 100 {
		t.Fatalf("order %+v %v %v", o, ok, err)
	}
	var active []string
	_ = s.ActiveOrders(func(otn string) error { active = append(active, otn); return nil })
	if len(active) != 1 || active[0] != "A00001" {
		t.Fatalf("active %v", active)
	}
	var resv []Reservation
	_ = s.Reservations("sku-1", func(otn string, r Reservation) error { resv = append(resv, r); return nil })
	if len(resv) != 1 || resv[0].Quantity != 2 {
		t.Fatalf("reservations %v", resv)
	}
	if s.OutboxBacklog() != 1 {
		t.Fatalf("backlog after reopen %d", s.OutboxBacklog())
	}
	h, err := s.History("A00001")
	if err != nil || len(h) != 1 || h[0].Type != event.OrderCreated {
		t.Fatalf("history %v %v", h, err)
	}
	// A final state leaves the active index.
	w = orderWrite(s, "A00001", StateClosed, 2)
	w.DeleteReservation("sku-1", "A00001")
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	active = nil
	_ = s.ActiveOrders(func(otn string) error { active = append(active, otn); return nil })
	if len(active) != 0 {
		t.Fatalf("closed order still active: %v", active)
	}
}

func TestOutboxNeverSkipsAnEventCommittedLate(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	defer s.Close()
	early := orderWrite(s, "EARLY1", StateCreated, 1) // seq 1, committed last
	late := orderWrite(s, "LATE01", StateCreated, 1)  // seq 2, committed first
	if err := late.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadOutbox(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("read past an uncommitted event: %d entries", len(got))
	}
	if err := early.Commit(); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ReadOutbox(0, 10)
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 2 {
		t.Fatalf("got %+v", got)
	}
	if err := s.AckOutbox(1, 2, 2); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ReadOutbox(0, 10); len(got) != 0 || s.OutboxBacklog() != 0 {
		t.Fatalf("acked entries remain: %d, backlog %d", len(got), s.OutboxBacklog())
	}
	// A discarded write leaves a gap, not a stall.
	orderWrite(s, "GONE01", StateCreated, 1).Discard()
	if err := orderWrite(s, "NEXT01", StateCreated, 1).Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ReadOutbox(2, 10); len(got) != 1 || got[0].Seq != 4 {
		t.Fatalf("after a gap: %+v", got)
	}
}

func TestConcurrentWritesAllReachTheOutbox(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	defer s.Close()
	const n = 200
	var wg sync.WaitGroup
	seen := map[uint64]bool{}
	var mu sync.Mutex
	var after uint64
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { // a relay reading while writers commit
		defer close(readerDone)
		for {
			// Look at stop before reading: only an empty read that began
			// after every writer finished means the outbox is drained.
			stopped := false
			select {
			case <-stop:
				stopped = true
			default:
			}
			es, err := s.ReadOutbox(after, 50)
			if err != nil {
				t.Error(err)
				return
			}
			for _, e := range es {
				mu.Lock()
				seen[e.Seq] = true
				mu.Unlock()
				after = e.Seq
			}
			if stopped && len(es) == 0 {
				return
			}
		}
	}()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			otn := "C" + string(rune('A'+i%26)) + string(rune('a'+i/26)) + "0000"
			if err := orderWrite(s, otn, StateCreated, 1).Commit(); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	close(stop)
	<-readerDone
	if len(seen) != n {
		all, _ := s.ReadOutbox(0, 1000)
		var missing []uint64
		for _, e := range all {
			if !seen[e.Seq] {
				missing = append(missing, e.Seq)
			}
		}
		t.Fatalf("relay saw %d of %d events; cursor %d; outbox holds %d; first missing %v", len(seen), n, after, len(all), missing[:min(10, len(missing))])
	}
}

// Pebble reserves its memtables' memory in the block cache; a cache no
// larger than them keeps nothing, and every order load after a flush reads
// and decompresses its block again. More than a memtable of orders, then
// each read twice: the second pass must hit the cache.
func TestBlockCacheSurvivesMemtables(t *testing.T) {
	s, err := Open(t.TempDir(), Options{NoSync: true, CacheBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	desc := strings.Repeat("d", 1000)
	n := 2 * memTableBytes / 1100
	for i := 0; i < n; i++ {
		w := s.NewWrite()
		w.PutOrder(&Order{OutTradeNo: fmt.Sprintf("o%08d", i), State: StatePrepaid, Description: desc})
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// Settle the tables first: a compaction running during the reads would
	// replace them, and new tables start uncached.
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Compact(context.Background(), []byte("o/"), []byte("o0"), false); err != nil {
		t.Fatal(err)
	}
	read := func() {
		for i := n - 4000; i < n; i++ {
			if _, ok, err := s.GetOrder(fmt.Sprintf("o%08d", i)); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
	}
	read()
	before := s.Metrics().BlockCache
	read()
	after := s.Metrics().BlockCache
	hits, misses := after.Hits-before.Hits, after.Misses-before.Misses
	t.Logf("second pass: %d cache hits, %d misses", hits, misses)
	if hits < 4*misses {
		t.Fatalf("second pass: %d cache hits, %d misses (cache %+v)", hits, misses, after)
	}
}

// Settle leaves nothing in the memtables to flush and no compaction
// running or owed.
func TestSettleFlushesAndWaitsForCompactions(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 2000; i++ {
		o := Order{OutTradeNo: fmt.Sprintf("00SETTLE%06d", i), OpenID: "o", State: StatePrepaid, Seq: 1, CreatedMs: int64(i)}
		w := s.NewWrite()
		w.PutOrder(&o)
		if err := w.CommitRelaxed(); err != nil {
			t.Fatal(err)
		}
	}
	before := s.Metrics().Flush.Count
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	m := s.Metrics()
	if m.Flush.Count <= before || m.Compact.NumInProgress != 0 || m.Compact.EstimatedDebt != 0 {
		t.Fatalf("after Settle: flushes %d (were %d), compactions in progress %d, debt %d",
			m.Flush.Count, before, m.Compact.NumInProgress, m.Compact.EstimatedDebt)
	}
}
