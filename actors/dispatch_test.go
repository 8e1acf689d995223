package actors

import (
	"sync"
	"testing"
	"time"
)

// Every batch runs, on a worker or (all busy, or closed) a goroutine of
// its own, and Schedule never waits for a worker.
func TestWorkersRunEveryBatchWithoutBlocking(t *testing.T) {
	w := newWorkers(2, 10)
	release := make(chan struct{})
	var wg sync.WaitGroup
	const n = 50
	wg.Add(n)
	start := time.Now()
	for range n { // more batches than workers, all blocked until released
		w.Schedule(func() { <-release; wg.Done() })
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Schedule waited %v for busy workers", d)
	}
	close(release)
	wg.Wait()

	w.close()
	done := make(chan struct{})
	w.Schedule(func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a batch scheduled after close never ran")
	}
	if w.Throughput() != 10 {
		t.Fatalf("throughput %d", w.Throughput())
	}
}
