// Package memory is an in-memory Sink for order events: a map keyed on
// event_id, so rewriting an event replaces it, as ClickHouse's
// ReplacingMergeTree does. For tests, and for running the consumer without
// ClickHouse.
package memory

import (
	"context"
	"sync"

	"github.com/wxpayd/wxpayd/actors/event"
)

// Sink keeps events in memory. The zero value is ready; it is safe for
// concurrent use.
type Sink struct {
	mu     sync.Mutex
	events map[string]event.Event
	rows   int
}

// Write stores evs (copied), replacing events with the same event_id.
func (s *Sink) Write(ctx context.Context, evs []event.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.events == nil {
		s.events = make(map[string]event.Event, len(evs))
	}
	for _, e := range evs {
		s.events[e.EventID] = e
	}
	s.rows += len(evs)
	return nil
}

// Events returns a copy of the stored events by event_id.
func (s *Sink) Events() map[string]event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]event.Event, len(s.events))
	for k, v := range s.events {
		out[k] = v
	}
	return out
}

// Len is the number of distinct events stored.
func (s *Sink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// Rows is the number of events written, duplicates included.
func (s *Sink) Rows() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rows
}
