package actors

import (
	"math"
	"sync"
	"time"
)

// budget is a token bucket for WeChat's per-merchant prepay rate: it grants
// a call now or after a short wait, and refuses when the wait would exceed
// maxWait, so buyers get 429 instead of WeChat answering
// FREQUENCY_LIMITED. Safe for concurrent use.
type budget struct {
	mu      sync.Mutex
	rate    float64 // tokens per second; 0 = unlimited
	burst   float64
	tokens  float64
	last    time.Time
	maxWait time.Duration
	now     func() time.Time
}

func newBudget(qps int, maxWait time.Duration, now func() time.Time) *budget {
	b := &budget{rate: float64(qps), burst: math.Max(1, float64(qps)/10), maxWait: maxWait, now: now}
	b.tokens = b.burst
	b.last = now()
	return b
}

// reserve takes a token. It returns how long to wait before using it, or
// ok=false with the time after which one will be free.
func (b *budget) reserve() (wait time.Duration, ok bool) {
	if b.rate <= 0 {
		return 0, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	need := 1 - b.tokens // tokens may go negative: that is the queue
	wait = time.Duration(math.Max(0, need) / b.rate * float64(time.Second))
	if wait > b.maxWait {
		return wait, false
	}
	b.tokens--
	return wait, true
}
