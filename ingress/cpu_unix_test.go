//go:build unix

package ingress

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process has used, user plus system, over
// all its threads: server, load generator, Pebble and the garbage collector.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
