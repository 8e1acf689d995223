package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// workers is the protoactor Dispatcher of wxpayd's actors: it runs mailbox
// batches on long-lived goroutines instead of a new goroutine per batch.
// A fresh goroutine starts on a small stack that an order load (deep in
// Pebble) grows again by copying: that was 7% of the CPU of acknowledging
// notifications for passivated orders.
//
// Schedule hands the batch to an idle worker, or when every worker is busy
// starts a goroutine as protoactor would: it never queues, so a batch never
// waits behind another one, and never blocks its caller.
type workers struct {
	run        chan func()
	stop       chan struct{}
	wg         sync.WaitGroup
	throughput int
}

var _ actor.Dispatcher = (*workers)(nil)

func newWorkers(n, throughput int) *workers {
	w := &workers{run: make(chan func()), stop: make(chan struct{}), throughput: throughput}
	w.wg.Add(n)
	for range n {
		go w.loop()
	}
	return w
}

func (w *workers) loop() {
	defer w.wg.Done()
	for {
		select {
		case fn := <-w.run:
			fn()
		case <-w.stop:
			return
		}
	}
}

// Schedule implements actor.Dispatcher.
func (w *workers) Schedule(fn func()) {
	select {
	case w.run <- fn:
	default:
		go fn()
	}
}

// Throughput implements actor.Dispatcher: messages per batch before the
// mailbox yields.
func (w *workers) Throughput() int { return w.throughput }

// close stops the idle workers and waits for the busy ones to finish their
// batch. Later batches run on goroutines of their own.
func (w *workers) close() {
	close(w.stop)
	w.wg.Wait()
}
