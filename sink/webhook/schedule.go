package webhook

import (
	"time"

	"github.com/wxpayd/wxpayd/actors/store"
)

// Delay is the wait after the attempt-th failed attempt (attempt >= 1): a
// capped exponential back-off with equal jitter. Its ceiling is
// min(lo·2^(attempt-1), hi), and the delay is drawn from [ceiling/2,
// ceiling] with rnd(n), which returns a number in [0, n): deliveries that
// failed together spread apart, and none waits longer than hi.
func Delay(attempt int, lo, hi time.Duration, rnd func(n int64) int64) time.Duration {
	ceil := lo
	for i := 1; i < attempt && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	half := ceil / 2
	return half + time.Duration(rnd(int64(ceil-half)+1))
}

// afterFailure is an entry's delivery state after an attempt that failed
// at now for why, and whether it is parked: an entry is retried until a
// failure comes RetryFor or more after its first attempt. The state is
// what the store keeps, so a restart continues the schedule.
func (c *Config) afterFailure(t store.WebhookTries, now time.Time, why string, rnd func(int64) int64) (store.WebhookTries, bool) {
	ms := now.UnixMilli()
	t.Attempts++
	if t.FirstMs == 0 {
		t.FirstMs = ms
	}
	t.LastMs = ms
	t.LastError = why
	if ms-t.FirstMs >= c.RetryFor.Milliseconds() {
		return t, true
	}
	t.NextMs = ms + Delay(t.Attempts, c.MinBackoff, c.MaxBackoff, rnd).Milliseconds()
	return t, false
}
