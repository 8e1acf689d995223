package defaults

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// ceilings lists the ceilings of a Backoff's first n delays: lo,
// doubling, capped at hi.
func ceilings(lo, hi time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	c := lo
	for i := range out {
		out[i] = c
		c = min(2*c, hi)
	}
	return out
}

func TestBackoff(t *testing.T) {
	t.Parallel()

	t.Run("every delay lies between half its ceiling and the ceiling, which doubles up to Max and stays there", func(t *testing.T) {
		t.Parallel()
		const lo, hi = 100 * time.Millisecond, time.Second
		want := ceilings(lo, hi, 12) // 100, 200, 400, 800, 1000, 1000, ... ms
		for run := 0; run < 2000; run++ {
			b := Backoff{Min: lo, Max: hi}
			for i, c := range want {
				d := b.Next()
				if d < c/2 || d > c {
					t.Fatalf("run %d, delay %d: %v, want within [%v, %v]", run, i, d, c/2, c)
				}
				if d > hi {
					t.Fatalf("run %d, delay %d: %v exceeds Max %v", run, i, d, hi)
				}
			}
		}
	})

	t.Run("delays at the cap spread over the whole jitter range", func(t *testing.T) {
		t.Parallel()
		const hi = time.Second
		b := Backoff{Min: hi, Max: hi} // every ceiling is Max
		const n, buckets = 4000, 8
		var count [buckets]int
		lowest, highest := time.Duration(math.MaxInt64), time.Duration(0)
		for i := 0; i < n; i++ {
			d := b.Next()
			if d < hi/2 || d > hi {
				t.Fatalf("delay %v outside [%v, %v]", d, hi/2, hi)
			}
			lowest, highest = min(lowest, d), max(highest, d)
			count[min(int((d-hi/2)*buckets/(hi-hi/2)), buckets-1)]++
		}
		// Uniform: each eighth of [Max/2, Max] expects n/8 = 500 delays; fewer
		// than half of that is twelve standard deviations away.
		for _, c := range count {
			if c < n/buckets/2 {
				t.Errorf("delays per eighth of [%v, %v]: %v, want about %d each", hi/2, hi, count, n/buckets)
				break
			}
		}
		if highest-lowest < (hi/2)*9/10 {
			t.Errorf("delays span [%v, %v], want nearly all of [%v, %v]", lowest, highest, hi/2, hi)
		}
	})

	t.Run("back-offs that start together do not retry together", func(t *testing.T) {
		t.Parallel()
		seen := map[time.Duration]bool{}
		for i := 0; i < 100; i++ {
			b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
			seen[b.Next()] = true
		}
		if len(seen) < 90 {
			t.Errorf("100 first delays took only %d distinct values", len(seen))
		}
	})

	t.Run("the zero value backs off from RetryBackoff up to MaxRetryBackoff", func(t *testing.T) {
		t.Parallel()
		var b Backoff
		if d := b.Next(); d < RetryBackoff/2 || d > RetryBackoff {
			t.Fatalf("first delay %v, want within [%v, %v]", d, RetryBackoff/2, RetryBackoff)
		}
		for i := 0; i < 20; i++ {
			b.Next()
		}
		if d := b.Next(); d < MaxRetryBackoff/2 || d > MaxRetryBackoff {
			t.Fatalf("delay at the cap %v, want within [%v, %v]", d, MaxRetryBackoff/2, MaxRetryBackoff)
		}
	})

	t.Run("Reset starts over at Min", func(t *testing.T) {
		t.Parallel()
		b := Backoff{Min: 10 * time.Millisecond, Max: time.Second}
		for i := 0; i < 10; i++ {
			b.Next()
		}
		b.Reset()
		if d := b.Next(); d < 5*time.Millisecond || d > 10*time.Millisecond {
			t.Fatalf("first delay after Reset %v, want within [5ms, 10ms]", d)
		}
	})

	t.Run("a huge Max neither overflows nor exceeds the cap", func(t *testing.T) {
		t.Parallel()
		const hi = time.Duration(math.MaxInt64)
		b := Backoff{Min: time.Nanosecond, Max: hi}
		var d time.Duration
		for i := 0; i < 100; i++ {
			if d = b.Next(); d < 0 {
				t.Fatalf("delay %d is negative: %v", i, d)
			}
		}
		if d < hi/2 {
			t.Fatalf("after 100 delays %v, want at least %v", d, hi/2)
		}
	})

	t.Run("Sleep returns the context's error when it ends first", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		b := Backoff{Min: time.Hour}
		if err := b.Sleep(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep: %v, want context.Canceled", err)
		}
		if err := (&Backoff{Min: time.Millisecond}).Sleep(context.Background()); err != nil {
			t.Fatalf("Sleep: %v, want nil", err)
		}
	})
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                  string
		first, capped         time.Duration
		wantFirst, wantCapped time.Duration
	}{
		{"zero bounds take the shared defaults", 0, 0, RetryBackoff, MaxRetryBackoff},
		{"set bounds stay as they are", 20 * time.Millisecond, 200 * time.Millisecond, 20 * time.Millisecond, 200 * time.Millisecond},
		{"a negative first delay takes the default", -time.Second, time.Second, RetryBackoff, time.Second},
		{"a cap below the first delay takes the default cap", 200 * time.Millisecond, 10 * time.Millisecond, 200 * time.Millisecond, MaxRetryBackoff},
		{"a first delay above the default cap is its own cap", 10 * time.Second, 0, 10 * time.Second, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			first, capped := BackoffBounds(tc.first, tc.capped)
			if first != tc.wantFirst || capped != tc.wantCapped {
				t.Errorf("BackoffBounds(%v, %v) = %v, %v; want %v, %v", tc.first, tc.capped, first, capped, tc.wantFirst, tc.wantCapped)
			}
		})
	}
}
