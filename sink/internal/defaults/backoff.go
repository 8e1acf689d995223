package defaults

import (
	"context"
	"math/rand/v2"
	"time"
)

// BackoffBounds applies the defaults to a back-off's bounds: a first delay
// of zero or less becomes RetryBackoff, and a cap below the first delay
// becomes MaxRetryBackoff (or the first delay, if that is larger). Configs
// call it in their withDefaults, Backoff on every Next.
func BackoffBounds(first, capped time.Duration) (time.Duration, time.Duration) {
	if first <= 0 {
		first = RetryBackoff
	}
	if capped < first {
		capped = max(first, MaxRetryBackoff)
	}
	return first, capped
}

// Backoff is a capped exponential back-off with equal jitter. Its ceiling
// starts at Min and doubles after each delay up to Max; each delay is drawn
// uniformly from [ceiling/2, ceiling], so it never exceeds Max and never
// falls below half of Min, while retries that failed together spread
// apart. The zero value backs off from RetryBackoff (100 ms) to
// MaxRetryBackoff (5 s); BackoffBounds says how Min and Max default.
//
// A Backoff is not safe for concurrent use: give each retry loop its own.
type Backoff struct {
	Min, Max time.Duration
	ceil     time.Duration // the last delay's ceiling; 0 before the first
}

// Next returns the next delay and raises the ceiling for the one after.
func (b *Backoff) Next() time.Duration {
	lo, hi := BackoffBounds(b.Min, b.Max)
	switch {
	case b.ceil < lo:
		b.ceil = lo
	case b.ceil > hi/2: // also keeps ceil*2 from overflowing
		b.ceil = hi
	default:
		b.ceil *= 2
	}
	half := b.ceil / 2
	return half + rand.N(b.ceil-half+1) // [ceil/2, ceil]
}

// Reset starts over at Min.
func (b *Backoff) Reset() { b.ceil = 0 }

// Sleep waits for the next delay or ctx, whichever comes first, and
// returns ctx.Err() if ctx ended.
func (b *Backoff) Sleep(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
