//go:build unix

package peers

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process has used, user plus system, over
// all its threads (cgo calls and the garbage collector included).
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
