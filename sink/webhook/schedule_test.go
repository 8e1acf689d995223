package webhook

import (
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/store"
)

func TestDelayDoublesFromMinToMaxWithJitter(t *testing.T) {
	t.Parallel()
	lo, hi := 5*time.Second, time.Hour
	low := func(int64) int64 { return 0 }
	high := func(n int64) int64 { return n - 1 }
	ceil := lo
	for n := 1; n <= 60; n++ {
		if got := Delay(n, lo, hi, high); got != ceil {
			t.Fatalf("attempt %d: longest delay %v, want the ceiling %v", n, got, ceil)
		}
		if got := Delay(n, lo, hi, low); got != ceil/2 {
			t.Fatalf("attempt %d: shortest delay %v, want half the ceiling %v", n, got, ceil/2)
		}
		ceil = min(2*ceil, hi)
	}
	// 5 s, 10 s, 20 s ... 2560 s, then 1 h for ever.
	if Delay(10, lo, hi, high) != 2560*time.Second || Delay(11, lo, hi, high) != hi || Delay(1000, lo, hi, high) != hi {
		t.Fatal("the ceiling is not 5 s · 2^(n-1) capped at 1 h")
	}
}

// TestRetriesLastADayThenPark runs the default schedule on a fake clock,
// each attempt failing when it is due: the entry is retried for at least
// RetryFor and parked at the first failure past it, never later than one
// MaxBackoff after.
func TestRetriesLastADayThenPark(t *testing.T) {
	t.Parallel()
	for _, jitter := range []struct {
		name string
		rnd  func(int64) int64
	}{{"shortest delays", func(int64) int64 { return 0 }}, {"longest delays", func(n int64) int64 { return n - 1 }}} {
		t.Run(jitter.name, func(t *testing.T) {
			c := Config{}.withDefaults()
			start := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
			now := start
			var tries store.WebhookTries
			for {
				next, park := c.afterFailure(tries, now, "HTTP 503", jitter.rnd)
				if next.Attempts != tries.Attempts+1 || next.FirstMs != start.UnixMilli() || next.LastError != "HTTP 503" {
					t.Fatalf("state %+v after %+v", next, tries)
				}
				tries = next
				if park {
					break
				}
				wait := time.Duration(tries.NextMs-now.UnixMilli()) * time.Millisecond
				if wait <= 0 || wait > c.MaxBackoff {
					t.Fatalf("attempt %d: wait %v", tries.Attempts, wait)
				}
				now = time.UnixMilli(tries.NextMs)
			}
			span := now.Sub(start)
			if span < 24*time.Hour || span > 24*time.Hour+c.MaxBackoff {
				t.Fatalf("parked after %v", span)
			}
			t.Logf("%d attempts over %v", tries.Attempts, span)
		})
	}
}
