package actors

import (
	"context"
	"fmt"
	"sync"
)

// executor runs background WeChat calls on a fixed set of workers with a
// bounded queue. submit never blocks: a full queue is reported, and the
// order's timer tries again.
type executor struct {
	queue   chan func()
	wg      sync.WaitGroup
	metrics *Metrics
	mu      sync.RWMutex
	closed  bool
}

func newExecutor(workers, queue int, m *Metrics) *executor {
	e := &executor{queue: make(chan func(), queue), metrics: m}
	for i := 0; i < workers; i++ {
		e.wg.Add(1)
		go e.work()
	}
	return e
}

func (e *executor) work() {
	defer e.wg.Done()
	for fn := range e.queue {
		fn()
		e.metrics.CallsQueued.Add(-1)
	}
}

func (e *executor) submit(fn func()) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return false
	}
	select {
	case e.queue <- fn:
		e.metrics.CallsQueued.Add(1)
		return true
	default:
		e.metrics.CallsRejected.Add(1)
		return false
	}
}

// full tells whether a submit now would be refused.
func (e *executor) full() bool { return len(e.queue) >= cap(e.queue) }

// close stops intake and waits for queued calls to finish or ctx to end.
func (e *executor) close(ctx context.Context) error {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.queue)
	}
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("actors: background calls still running: %w", ctx.Err())
	}
}
