package webhook

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
)

// lifecycle is the events of one order, in seq order; the default
// subscription takes paid, closed, refunded and refund_failed.
var lifecycles = [][]string{
	{event.OrderCreated, event.OrderPrepaid, event.OrderPaid, event.OrderRefundRequested, event.OrderRefunded},
	{event.OrderCreated, event.OrderPrepaid, event.OrderClosed, event.OrderPaid},
	{event.OrderCreated, event.OrderPrepaid, event.OrderPaid, event.OrderRefundRequested, event.OrderRefundFailed,
		event.OrderRefundRequested, event.OrderRefunded},
	{event.OrderCreated, event.OrderPrepayFailed},
}

// TestEveryEventDeliveredInOrderThroughFailuresAndKills writes orders'
// transitions while a receiver answers 500, hangs past the timeout (after
// processing), answers slowly or cuts the connection at random, and the
// deliverer is killed mid-delivery three times and started again on the
// same store. Afterwards every subscribed event was accepted, none that
// was not subscribed, each order's events in order, every request signed.
func TestEveryEventDeliveredInOrderThroughFailuresAndKills(t *testing.T) {
	t.Parallel()
	sub, _ := NewSubscription(nil)
	st := openStore(t, t.TempDir(), sub)
	const timeout = 150 * time.Millisecond
	var calm sync.Once
	calmc := make(chan struct{})
	rcv := newReceiver(t, func(d delivery) (int, time.Duration, bool) {
		select {
		case <-calmc:
			return 204, 0, false
		default:
		}
		switch p := rand.IntN(100); {
		case p < 20:
			return 500, 0, false
		case p < 30:
			return 200, 3 * timeout, false // processed, but answers too late
		case p < 50:
			return 200, timeout / 3, false
		case p < 55:
			return 0, 0, true
		}
		return 204, 0, false
	})
	cfg := Config{URL: rcv.srv.URL + "/hooks", Timeout: timeout, Concurrency: 8, MaxBuffered: 32, PageSize: 8,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, PollInterval: 20 * time.Millisecond}

	// Writers: 240 orders, their transitions spread over time and four
	// goroutines, as order actors commit them.
	want := map[string][]uint64{}
	var wmu sync.Mutex
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 60 {
				otn := fmt.Sprintf("01W%d%05d", w, i)
				life := lifecycles[(w+i)%len(lifecycles)]
				for s, typ := range life {
					seq := uint64(s + 1)
					commit(t, st, otn, seq, typ)
					if sub.Match(&event.Event{Type: typ, OutTradeNo: otn}) {
						wmu.Lock()
						want[otn] = append(want[otn], seq)
						wmu.Unlock()
					}
					time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				}
			}
		}()
	}
	d, stop := runDeliverer(t, st, cfg)
	for k := range 3 {
		time.Sleep(time.Duration(150+rand.IntN(250)) * time.Millisecond)
		stop()
		t.Logf("kill %d: %+v", k+1, d.Stats())
		d, stop = runDeliverer(t, st, cfg)
	}
	writers.Wait()
	time.Sleep(300 * time.Millisecond)
	calm.Do(func() { close(calmc) })
	eventually(t, "the queue drains", 30*time.Second, func() bool { return st.WebhookBacklog() == 0 })
	stop()

	accepted, tried, bad, _ := rcv.snapshot()
	n := 0
	for _, s := range want {
		n += len(s)
	}
	t.Logf("%d events to deliver, %d requests, %d accepted (duplicates included); last run %+v", n, len(tried), len(accepted), d.Stats())
	if len(bad) > 0 {
		t.Errorf("%d requests failed the signature check: %v", len(bad), bad)
	}
	if len(tried) <= n {
		t.Errorf("only %d requests for %d events: the receiver's failures did not happen", len(tried), n)
	}
	checkOrder(t, accepted, want)
	if s := d.Stats(); s.Parked != 0 || s.Dead != 0 {
		t.Errorf("parked %+v", s)
	}
}

// TestParksAfterADayAndRedelivers fails one order's deliveries for a day on
// a fake clock while another order's go through: the first event is retried
// on the back-off, parked after 24 h, and only then is the order's next
// event sent; a redelivery from the dead letters succeeds.
func TestParksAfterADayAndRedelivers(t *testing.T) {
	t.Parallel()
	sub, _ := NewSubscription(nil)
	st := openStore(t, t.TempDir(), sub)
	clock := newFakeClock(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	failX := true
	rcv := newReceiver(t, func(d delivery) (int, time.Duration, bool) {
		mu.Lock()
		defer mu.Unlock()
		if d.otn == "01X" && failX {
			if d.id == "01X:2" {
				// Slowly: the 503 is on its way back while the test
				// would move the clock (see below).
				return 503, 200 * time.Millisecond, false
			}
			return 503, 0, false
		}
		return 204, 0, false
	})
	rcv.now, rcv.window = clock.now, 2*time.Hour // the test moves the clock while an attempt is out
	commit(t, st, "01X", 1, event.OrderPaid)
	commit(t, st, "01X", 2, event.OrderRefunded)
	commit(t, st, "01Y", 1, event.OrderPaid)
	d, _ := runDeliverer(t, st, Config{URL: rcv.srv.URL, Now: clock.now, PollInterval: 2 * time.Millisecond})
	eventually(t, "the other order is delivered", 5*time.Second, func() bool { return d.Stats().Delivered == 1 })

	start := clock.now()
	for seen := int64(0); d.Stats().Dead == 0; {
		eventually(t, "an attempt", 5*time.Second, func() bool { return d.Stats().FailedAttempts > seen })
		seen = d.Stats().FailedAttempts
		if clock.now().Sub(start) > 26*time.Hour {
			t.Fatal("not parked after 26 hours")
		}
		clock.advance(DefaultMaxBackoff) // the longest wait there is
	}
	_, tried, _, _ := rcv.snapshot()
	lastX1 := 0
	for i, x := range tried {
		if x.id == "01X:1" {
			lastX1 = i
		}
	}
	for _, x := range tried[:lastX1] {
		if x.id == "01X:2" {
			t.Fatal("01X:2 was sent before 01X:1 was parked")
		}
	}
	dead, err := d.DeadWebhooks(0, 10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters %v %v", dead, err)
	}
	dl := dead[0]
	if dl.EventID != "01X:1" || dl.LastError != "HTTP 503" || dl.FirstMs != start.UnixMilli() ||
		time.Duration(dl.LastMs-dl.FirstMs)*time.Millisecond < 24*time.Hour || dl.Attempts < 20 {
		t.Fatalf("dead letter %+v", dl)
	}
	t.Logf("parked after %d attempts over %v", dl.Attempts, time.Duration(dl.LastMs-dl.FirstMs)*time.Millisecond)

	// Now 01X:2 goes (and fails); the shop mends its endpoint. The clock
	// moves only once the deliverer has recorded that failure (every 01X
	// attempt so far failed): moved while the 503 is on its way back, it
	// would date the next attempt from the later time, which the clock
	// then never reaches.
	eventually(t, "01X:2 is tried and its failure recorded", 5*time.Second, func() bool {
		_, tried, _, _ := rcv.snapshot()
		var failed int64
		for _, x := range tried {
			if strings.HasPrefix(x.id, "01X:") {
				failed++
			}
		}
		return tried[len(tried)-1].id == "01X:2" && d.Stats().FailedAttempts >= failed
	})
	mu.Lock()
	failX = false
	mu.Unlock()
	clock.advance(DefaultMaxBackoff)
	eventually(t, "01X:2 is delivered", 5*time.Second, func() bool { return d.Stats().Delivered == 2 })
	if err := d.Redeliver(dl.ID); err != nil {
		t.Fatal(err)
	}
	if err := d.Redeliver(dl.ID); err == nil {
		t.Fatal("a second redelivery of the same dead letter succeeded")
	}
	eventually(t, "the redelivery", 5*time.Second, func() bool { return d.Stats().Delivered == 3 })
	if s := d.Stats(); s.Dead != 0 || s.Queued != 0 || s.Parked != 1 || s.Redelivered != 1 {
		t.Fatalf("stats %+v", s)
	}
	accepted, _, bad, _ := rcv.snapshot()
	if len(bad) > 0 || len(accepted) != 3 || accepted[2].id != "01X:1" || accepted[2].attempt != "1" {
		t.Fatalf("accepted %+v, bad signatures %v", accepted, bad)
	}
}

// TestScheduleSurvivesRestart: a deliverer started again on the same store
// continues an entry's back-off where it was, instead of starting over.
func TestScheduleSurvivesRestart(t *testing.T) {
	t.Parallel()
	sub, _ := NewSubscription(nil)
	st := openStore(t, t.TempDir(), sub)
	clock := newFakeClock(time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC))
	rcv := newReceiver(t, func(delivery) (int, time.Duration, bool) { return 500, 0, false })
	rcv.now, rcv.window = clock.now, 2*time.Hour // the test moves the clock while an attempt is out
	commit(t, st, "01R", 1, event.OrderPaid)
	cfg := Config{URL: rcv.srv.URL, Now: clock.now, PollInterval: 2 * time.Millisecond}
	d, stop := runDeliverer(t, st, cfg)
	for n := int64(1); n <= 6; n++ {
		eventually(t, "an attempt", 5*time.Second, func() bool { return d.Stats().FailedAttempts == n })
		clock.advance(DefaultMaxBackoff)
	}
	stop()
	q, _ := st.ReadWebhooks(0, 1)
	if len(q) != 1 || q[0].Tries.Attempts != 6 {
		t.Fatalf("persisted state %+v", q)
	}
	// Start again before the 7th attempt is due: nothing is sent.
	clock.ms.Store(q[0].Tries.NextMs - 1000)
	d, _ = runDeliverer(t, st, cfg)
	time.Sleep(100 * time.Millisecond)
	if _, tried, _, _ := rcv.snapshot(); len(tried) != 6 {
		t.Fatalf("%d attempts: the schedule started over", len(tried))
	}
	clock.advance(time.Second)
	eventually(t, "the 7th attempt", 5*time.Second, func() bool { return d.Stats().FailedAttempts == 1 })
	if _, tried, _, _ := rcv.snapshot(); tried[6].attempt != "7" {
		t.Fatalf("attempt header %q", tried[6].attempt)
	}
}

// TestADeadEndpointHoldsNoWriter: with the endpoint hanging on every
// request, transitions keep committing at full speed; the deliverer holds
// at most Concurrency requests open and at most MaxBuffered entries, and
// delivers everything once the endpoint answers.
func TestADeadEndpointHoldsNoWriter(t *testing.T) {
	t.Parallel()
	sub, _ := NewSubscription(nil)
	st := openStore(t, t.TempDir(), sub)
	release := make(chan struct{})
	rcv := newReceiver(t, func(delivery) (int, time.Duration, bool) {
		select {
		case <-release:
			return 204, 0, false
		default:
			return 204, time.Hour, false // until the client gives up
		}
	})
	cfg := Config{URL: rcv.srv.URL, Timeout: 300 * time.Millisecond, Concurrency: 4, MaxBuffered: 64, PageSize: 16,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, PollInterval: 10 * time.Millisecond}
	d, _ := runDeliverer(t, st, cfg)
	var maxFlight atomic.Int64
	stopSampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(time.Millisecond):
				maxFlight.Store(max(maxFlight.Load(), d.Stats().InFlight))
			}
		}
	}()
	start := time.Now()
	want := map[string][]uint64{}
	for i := range 2000 {
		otn := fmt.Sprintf("01D%05d", i)
		commit(t, st, otn, 1, event.OrderPaid)
		want[otn] = []uint64{1}
	}
	took := time.Since(start)
	t.Logf("2000 commits in %v while the endpoint hung", took)
	if took > 10*time.Second {
		t.Errorf("commits took %v", took)
	}
	if n := st.WebhookBacklog(); n < 1900 {
		t.Errorf("backlog %d: deliveries succeeded against a hanging endpoint?", n)
	}
	time.Sleep(2 * cfg.Timeout)
	close(release)
	eventually(t, "the queue drains", 30*time.Second, func() bool { return st.WebhookBacklog() == 0 })
	close(stopSampling)
	<-sampled
	if seen := maxFlight.Load(); seen != int64(cfg.Concurrency) {
		t.Errorf("at most %d attempts in flight, Concurrency %d", seen, cfg.Concurrency)
	}
	accepted, _, _, _ := rcv.snapshot()
	checkOrder(t, accepted, want)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{},
		{URL: "ftp://shop.example.com/hook", Secret: testSecret},
		{URL: "https:///hook", Secret: testSecret},
		{URL: "https://shop.example.com/hook", Secret: []byte("short")},
		{URL: "https://shop.example.com/hook", Secret: testSecret, Timeout: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v validated", c)
		}
	}
	if err := (Config{URL: "https://shop.example.com/hook?k=1", Secret: testSecret}).Validate(); err != nil {
		t.Error(err)
	}
	if _, err := NewSubscription([]string{"order.paid", "order.shipped"}); err == nil {
		t.Error("an unknown event subscribed")
	}
	s, err := NewSubscription([]string{PaidAfterClose})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		e    event.Event
		want bool
	}{
		{event.Event{Type: event.OrderPaid, OutTradeNo: "01A", Alert: "paid after CLOSED"}, true},
		{event.Event{Type: event.OrderPaid, OutTradeNo: "01A", Alert: "paid after FAILED; paid found by reconciliation: x"}, true},
		{event.Event{Type: event.OrderPaid, OutTradeNo: "01A"}, false},
		{event.Event{Type: event.OrderClosed, OutTradeNo: "01A"}, false},
		{event.Event{Type: event.OrderPaid, Alert: "paid after CLOSED"}, false},
	} {
		if got := s.Match(&c.e); got != c.want {
			t.Errorf("Match(%+v) = %v", c.e, got)
		}
	}
	var _ store.WebhookTries
}
