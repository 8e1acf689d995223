package actors

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// timers keeps one due time per order and sends Tick when it passes. One
// goroutine owns the heap; schedule and cancel are safe from any goroutine.
// It holds at most one entry per active order, so it is bounded by them.
type timers struct {
	now     func() time.Time
	fire    func(otn string) bool
	metrics *Metrics

	mu   sync.Mutex
	h    timerHeap
	due  map[string]int64 // otn → due (Unix ms) of its live entry
	wake chan struct{}
	done chan struct{}
	once sync.Once
}

type timerEntry struct {
	otn string
	due int64
}

type timerHeap []timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func newTimers(now func() time.Time, fire func(string) bool, m *Metrics) *timers {
	return &timers{now: now, fire: fire, metrics: m, due: map[string]int64{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// schedule sets otn's timer to t, replacing any earlier setting.
func (t *timers) schedule(otn string, at time.Time) {
	ms := at.UnixMilli()
	t.mu.Lock()
	if _, ok := t.due[otn]; !ok {
		t.metrics.Timers.Add(1)
	}
	t.due[otn] = ms
	heap.Push(&t.h, timerEntry{otn: otn, due: ms})
	first := t.h[0].due == ms
	t.mu.Unlock()
	if first {
		t.poke()
	}
}

// cancel removes otn's timer.
func (t *timers) cancel(otn string) {
	t.mu.Lock()
	if _, ok := t.due[otn]; ok {
		delete(t.due, otn)
		t.metrics.Timers.Add(-1)
	}
	t.mu.Unlock()
}

func (t *timers) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *timers) stop() { t.once.Do(func() { close(t.done) }) }

// run fires due timers until ctx ends or stop is called.
func (t *timers) run(ctx context.Context) error {
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	for {
		now := t.now().UnixMilli()
		var fire []string
		next := int64(-1)
		t.mu.Lock()
		for t.h.Len() > 0 {
			e := t.h[0]
			if cur, ok := t.due[e.otn]; !ok || cur != e.due {
				heap.Pop(&t.h) // stale: replaced or cancelled
				continue
			}
			if e.due > now {
				next = e.due
				break
			}
			heap.Pop(&t.h)
			delete(t.due, e.otn)
			t.metrics.Timers.Add(-1)
			fire = append(fire, e.otn)
			if len(fire) >= 1024 {
				next = now
				break
			}
		}
		t.mu.Unlock()
		for i, otn := range fire {
			if !t.fire(otn) {
				// Overloaded or stopping: try these again in a second.
				for _, o := range fire[i:] {
					t.schedule(o, time.UnixMilli(now).Add(time.Second))
				}
				break
			}
		}
		// Never sleep more than a second: a clock step (NTP, or a test's
		// clock) is then noticed within a second.
		wait := time.Second
		if next >= 0 && time.Duration(next-now)*time.Millisecond < wait {
			wait = time.Duration(next-now) * time.Millisecond
		}
		tm.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.done:
			return nil
		case <-t.wake:
		case <-tm.C:
		}
	}
}
