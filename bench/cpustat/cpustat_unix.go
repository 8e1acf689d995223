//go:build unix

// Package cpustat reads the CPU time of this process, for benchmarks that
// report CPU per operation: unlike wall-clock rates it does not depend on
// what else a shared machine runs.
package cpustat

import (
	"syscall"
	"time"
)

// Process is the CPU time this process has used, user plus system, over
// all its threads (cgo calls and the garbage collector included); ok is
// false where it cannot be read.
func Process() (d time.Duration, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
