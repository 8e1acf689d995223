package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// loops runs wxpayd's background loops (HTTP serving, timers, certificate
// refresh, relay, sink, webhooks, cluster formation), each on a goroutine
// counted in one WaitGroup, and keeps their errors. A loop that returns an error
// other than context.Canceled has failed: before beginStop, the failure is
// logged and closes failed, which ends serving; from beginStop on, it is
// part of the shutdown's result. Safe for concurrent use.
type loops struct {
	log    *slog.Logger
	ctx    context.Context // every loop's; stop cancels it
	cancel context.CancelFunc
	wg     sync.WaitGroup
	failed chan struct{} // closed at the first failure before beginStop

	mu       sync.Mutex
	stopping bool
	errs     []error // failures before beginStop, in order
	stopErrs []error // failures from beginStop on
}

func newLoops(log *slog.Logger) *loops {
	ctx, cancel := context.WithCancel(context.Background())
	return &loops{log: log, ctx: ctx, cancel: cancel, failed: make(chan struct{})}
}

// spawn runs fn on its own counted goroutine with the loops' context.
// name prefixes its error.
func (l *loops) spawn(name string, fn func(context.Context) error) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := fn(l.ctx); err != nil && !errors.Is(err, context.Canceled) {
			l.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

func (l *loops) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping {
		l.stopErrs = append(l.stopErrs, err)
		return
	}
	l.log.Error("component failed", "err", err)
	l.errs = append(l.errs, err)
	if len(l.errs) == 1 {
		close(l.failed)
	}
}

// err is the first failure before beginStop, nil if there was none.
func (l *loops) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) == 0 {
		return nil
	}
	return l.errs[0]
}

// isStopping tells whether beginStop has been called.
func (l *loops) isStopping() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopping
}

// beginStop marks the start of the shutdown: from now on a failing loop
// makes the shutdown incomplete instead of ending serving.
func (l *loops) beginStop() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
}

// stop cancels the loops' context and waits for every loop to return. It
// returns the failures since beginStop, joined.
func (l *loops) stop() error {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.stopErrs...)
}
