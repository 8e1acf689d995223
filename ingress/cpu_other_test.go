//go:build !unix

package ingress

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
