package cpustat

import (
	"runtime"
	"testing"
)

func TestProcessGrowsWithWork(t *testing.T) {
	a, ok := Process()
	if !ok {
		if runtime.GOOS == "linux" {
			t.Fatal("no CPU time on linux")
		}
		t.Skip("no getrusage on " + runtime.GOOS)
	}
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i % 7
	}
	b, _ := Process()
	if b <= a || x == 0 {
		t.Fatalf("CPU time %v then %v after a busy loop", a, b)
	}
}
