package memory_test

import (
	"context"
	"testing"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/sink/memory"
	"github.com/wxpayd/wxpayd/sink/sinktest"
)

func harness(testing.TB) sinktest.Harness {
	s := &memory.Sink{}
	return sinktest.Harness{Sink: s, Stored: func(context.Context) (map[string]event.Event, error) { return s.Events(), nil }}
}

func TestContract(t *testing.T) {
	sinktest.Run(t, sinktest.Features{HonoursCancel: true, Concurrent: true}, harness)
}

func BenchmarkWrite(b *testing.B) { sinktest.Bench(b, 50000, harness) }
