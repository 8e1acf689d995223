//go:build !unix

// Package cpustat reads the CPU time of this process; not on this system.
package cpustat

import "time"

// Process reports ok=false: no getrusage here.
func Process() (d time.Duration, ok bool) { return 0, false }
