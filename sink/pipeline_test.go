package sink_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/sink/itest"
	"github.com/wxpayd/wxpayd/sink/relay"
)

// pipeline is a store whose outbox a relay publishes to the env's topic.
type pipeline struct {
	st    *store.Store
	relay *relay.Relay
}

func (e *env) startRelay(noSync bool) *pipeline {
	e.t.Helper()
	st, err := store.Open(e.t.TempDir(), store.Options{NoSync: noSync})
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := relay.New(relay.Config{Brokers: e.brokers, Topic: e.topic, RetryBackoff: 50 * time.Millisecond,
		MaxRetryBackoff: time.Second,
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}, st)
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	e.t.Cleanup(func() {
		_ = r.Close()
		if err := <-done; err != nil {
			e.t.Errorf("relay.Run: %v", err)
		}
		_ = st.Close()
	})
	return &pipeline{st: st, relay: r}
}

// commit writes evs into the store as order actors do (one durable Write
// per event, from several goroutines) and returns the slowest commit.
func (p *pipeline) commit(t testing.TB, evs []event.Event) time.Duration {
	t.Helper()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		slowest time.Duration
		failed  error
	)
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(evs); i += workers {
				ev := evs[i]
				t0 := time.Now()
				wr := p.st.NewWrite()
				wr.AddEvent(&ev)
				err := wr.Commit()
				d := time.Since(t0)
				mu.Lock()
				slowest = max(slowest, d)
				if err != nil && failed == nil {
					failed = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		t.Fatal(failed)
	}
	return slowest
}

func (p *pipeline) waitDrained(t testing.TB, timeout time.Duration) {
	t.Helper()
	itest.Eventually(t, timeout, 20*time.Millisecond, "outbox drained", func() (bool, string) {
		return p.st.OutboxBacklog() == 0, fmt.Sprintf("backlog %d", p.st.OutboxBacklog())
	})
}

// The whole path: events committed into wxpayd's store → relay → Kafka →
// sink → ClickHouse, exactly once in effect.
func TestPipelineStoreToClickHouse(t *testing.T) {
	e := newEnv(t)
	p := e.startRelay(false)
	e.runSink(e.config())
	evs, _ := events("P", 20000)
	p.commit(t, evs)
	p.waitDrained(t, time.Minute)
	e.waitExactly(evs, 2*time.Minute)
}
