package rig

import (
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/sink/itest"
)

// Eventually polls cond every 100 ms until it holds; the test fails, naming
// what, if d passes first. It is itest.Eventually for a condition with no
// message of its own.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	itest.Eventually(t, d, 100*time.Millisecond, what, func() (bool, string) { return cond(), "" })
}
